import ArgumentParser
import Foundation
import TriplineCore
import TriplineNotify
import TriplineYAML

/// `tripline test FILE...`: rule unit tests in the manner of `promtool test rules`. Each file
/// names zones, entities and rules (files or inline), and lists tests: input events (inline
/// NDJSON, a file, or compact series) and the alerts expected. A test whose alerts differ prints
/// a diff naming each alert and the run exits 1; a file with errors exits 2.
struct TestCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "test",
        abstract: "Run rule unit tests (YAML files of inputs and expected alerts); exit 1 when one fails.",
        discussion: """
        A test file:

          zones: zones.geojson            # a file (relative to the test file) or an inline FeatureCollection
          entities: entities.ndjson       # a file, or an inline list of {id, kind, tags}
          rules: rules.yaml               # a file, or an inline list of rules
          start: 2026-03-01T08:00:00Z     # origin of relative times (default 2026-03-02T00:00:00Z)
          tests:
            - name: a hazmat truck enters the plant
              series:
                - {entity: truck-17, type: position, from: 0s, every: 1m, values: "4.3,51.9 4.5,51.91x2"}
              events: |                   # inline NDJSON (absolute times)
                {"entity":"meter-1","time":"2026-03-01T08:00:00Z","type":"reading","metric":"kwh","value":3}
              events_file: more.ndjson
              until: 2h                   # advance to here at the end (fires timers)
              mode: exact                 # or include: other alerts are allowed
              expect:
                - {rule: hazmat-enters-restricted, key: {entity: truck-17, zone: chem-plant}, state: firing, time: 1m}

        Series values: positions "lon,lat", readings a number, contacts a counterpart; "VxN" repeats
        V N times, "_" is a step without an event. Expected alerts compare rule, key, state and
        time, and details and evidence when given. A test may instead hold `policy` (a file) and
        `notifications` (a scenario, docs/notifications.md) to test a notification policy.
        """
    )

    @Argument(help: "Test files (YAML).") var files: [String]
    @Option(name: .customLong("sensitive-tag"), help: "Extra tag key to refuse (repeatable).") var sensitiveTags: [String] = []

    func run() throws {
        var passed = 0, failed = 0, broken = 0
        for file in files {
            switch TestFile.load(file, sensitive: SensitiveTags(extra: sensitiveTags)) {
            case .failure(let errs):
                broken += 1
                errs.messages.forEach { CLI.printErr($0) }
                print("ERROR \(file): \(errs.messages.count) problem(s); its tests were not run")
            case .success(let tf):
                for t in tf.tests {
                    let diff = t.run(tf)
                    if diff.isEmpty {
                        passed += 1
                        print("ok    \(file): \(t.name)")
                    } else {
                        failed += 1
                        print("FAIL  \(file): \(t.name)")
                        for d in diff { print("      " + d) }
                    }
                }
            }
        }
        print("tripline test: \(passed) passed, \(failed) failed\(broken > 0 ? ", \(broken) file(s) with errors" : "")")
        if broken > 0 { throw ExitCode(2) }
        if failed > 0 { throw ExitCode(1) }
    }
}

/// One expected alert.
struct ExpectedAlert {
    var rule: String
    var key: [String: String]   // entity, zone, group; pair as "a,b"
    var state: String
    var time: Millis
    var details: DocNode?
    var evidence: [String]?
    var line: Int

    func describe() -> String {
        TestFile.describe(rule: rule, key: key, state: state, time: time)
    }
}

struct UnitTest {
    var name: String
    var lines: [(time: Millis, order: Int, text: String)] = []
    var until: Millis?
    var include = false
    var expect: [ExpectedAlert] = []
    var policy: NotificationPolicy?
    var scenario: NotifyScenario?

    /// The differences, as lines naming each alert (empty: the test passes).
    func run(_ tf: TestFile) -> [String] {
        if let policy, let scenario { return scenario.check(policy) }
        let p = Pipeline(zones: tf.zones, entities: tf.entities, rules: tf.rules, options: PipelineOptions(sensitive: tf.sensitive))
        var out: [String] = []
        for (i, l) in lines.sorted(by: { ($0.time, $0.order) < ($1.time, $1.order) }).enumerated() {
            var bytes = Array(l.text.utf8)
            let r = bytes.withUnsafeMutableBufferPointer { p.decode(UnsafeBufferPointer($0), number: i + 1) }
            switch r {
            case .failure(let e): out.append("input event \(i + 1) is invalid: \(e.description)")
            case .success(let ev):
                if case .late = p.ingest(ev) { out.append("input event at \(EventTime.format(l.time)) arrived after the watermark had passed it and was dropped: \(l.text)") }
            }
            bytes.removeAll()
        }
        p.finish(until: until)
        var text: [UInt8] = []
        _ = p.drainAlertLines(into: &text)
        var got: [(rule: String, key: [String: String], state: String, time: Millis, doc: DocNode)] = []
        for line in String(decoding: text, as: UTF8.self).split(separator: "\n") {
            guard case .success(let doc) = JSONDocumentParser.parse(String(line), file: "alert") else { continue }
            var key: [String: String] = [:]
            for m in doc["key"]?.members ?? [] {
                if let s = m.node.stringValue { key[m.key] = s } else if let a = m.node.elements { key[m.key] = a.compactMap(\.stringValue).joined(separator: ",") }
            }
            let t = (try? EventTime.parseRFC3339(doc["time"]?.stringValue ?? "").get()) ?? 0
            got.append((doc["rule"]?.stringValue ?? "", key, doc["state"]?.stringValue ?? "", t, doc))
        }
        var unmatched = Array(got.indices)
        for e in expect {
            guard let k = unmatched.firstIndex(where: { g in got[g].rule == e.rule && got[g].key == e.key && got[g].state == e.state && got[g].time == e.time }) else {
                out.append("missing (line \(e.line)):    \(e.describe())")
                continue
            }
            let g = got[unmatched[k]]
            unmatched.remove(at: k)
            if let d = e.details, let gd = g.doc["details"], !TestFile.same(d, gd) {
                out.append("different details (line \(e.line)): \(e.describe()): expected \(d.jsonText), got \(gd.jsonText)")
            }
            if let ev = e.evidence, let ge = g.doc["evidence"]?.elements?.compactMap(\.stringValue), ev != ge {
                out.append("different evidence (line \(e.line)): \(e.describe()): expected \(ev), got \(ge)")
            }
        }
        if !include {
            for g in unmatched { out.append("unexpected: \(TestFile.describe(rule: got[g].rule, key: got[g].key, state: got[g].state, time: got[g].time))") }
        }
        return out
    }
}

struct TestFile {
    var zones: [Zone] = []
    var entities: [EntityInfo] = []
    var rules: [Rule] = []
    var sensitive: SensitiveTags
    var tests: [UnitTest] = []

    static func describe(rule: String, key: [String: String], state: String, time: Millis) -> String {
        let k = ["entity", "zone", "pair", "group"].compactMap { n in key[n].map { "\(n): \($0)" } }.joined(separator: ", ")
        return "\(rule) {\(k)} \(state) at \(EventTime.format(time))"
    }

    /// Equal as JSON values (members in any order; numbers by value).
    static func same(_ a: DocNode, _ b: DocNode) -> Bool {
        switch (a.value, b.value) {
        case (.null, .null): return true
        case (.bool(let x), .bool(let y)): return x == y
        case (.number(let x, _), .number(let y, _)): return x == y
        case (.string(let x), .string(let y)): return x == y
        case (.array(let x), .array(let y)): return x.count == y.count && zip(x, y).allSatisfy { same($0, $1) }
        case (.object(let x), .object(let y)):
            return x.count == y.count && x.allSatisfy { m in y.contains { $0.key == m.key && same(m.node, $0.node) } }
        default: return false
        }
    }

    static func load(_ path: String, sensitive: SensitiveTags) -> Result<TestFile, TestFileErrors> {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return .failure(TestFileErrors(["\(path): cannot read the test file"])) }
        let doc: DocNode
        switch YAMLDocument.parse(text, file: path) {
        case .failure(let e): return .failure(TestFileErrors(e.errors.map(\.description)))
        case .success(let d): doc = d
        }
        let dir = URL(fileURLWithPath: path).deletingLastPathComponent()
        func resolve(_ p: String) -> String { p.hasPrefix("/") ? p : dir.appendingPathComponent(p).path }
        var r = DocReader(file: path)
        var extra: [String] = []
        var tf = TestFile(sensitive: sensitive)
        guard let top = r.object(doc, "", allowed: ["zones", "entities", "rules", "start", "tests"], what: "test file") else {
            return .failure(TestFileErrors(r.errors.map(\.description)))
        }
        var start = NotifyScenario.defaultStart
        if let (n, p) = top["start"], let s = r.string(n, p, what: "start") {
            switch EventTime.parseRFC3339(s) {
            case .success(let t): start = t
            case .failure(.malformed(let why)): r.fail(n, p, "start must be an RFC 3339 time such as 2026-03-01T08:00:00Z: \(why)")
            }
        }
        func time(_ n: DocNode, _ p: String, what: String) -> Millis? {
            guard let s = n.stringValue else {
                r.fail(n, p, "\(what) must be a duration after start (such as 90s) or an RFC 3339 time, found \(n.typeName)")
                return nil
            }
            if case .success(let t) = EventTime.parseRFC3339(s) { return t }
            if case .success(let d) = DurationText.parse(s) { return start + d }
            r.fail(n, p, "\(what) \"\(s)\" is neither a duration after start (such as 90s or 1h5m) nor an RFC 3339 time")
            return nil
        }
        func loadFile<T>(_ key: String, _ body: (String) -> Result<T, TriplineErrors>) -> T? {
            guard let (n, p) = top[key], let s = n.stringValue else { return nil }
            let full = resolve(s)
            guard FileManager.default.fileExists(atPath: full) else {
                r.fail(n, p, "\(key): no file \(full)")
                return nil
            }
            switch body(full) {
            case .success(let v): return v
            case .failure(let e):
                extra += e.errors.map(\.description)
                return nil
            }
        }
        if let (n, p) = top["zones"] {
            if n.stringValue != nil {
                tf.zones = loadFile("zones") { f in ZoneCodec.decode((try? String(contentsOfFile: f, encoding: .utf8)) ?? "", file: f, sensitive: sensitive) } ?? []
            } else {
                switch ZoneCodec.decode(n, file: path, sensitive: sensitive) {
                case .success(let z): tf.zones = z
                case .failure(let e): extra += e.errors.map { "\($0.description) (under \(p))" }
                }
            }
        }
        if let (n, p) = top["entities"] {
            if n.stringValue != nil {
                tf.entities = loadFile("entities") { f in EntityCodec.decode((try? String(contentsOfFile: f, encoding: .utf8)) ?? "", file: f, sensitive: sensitive) } ?? []
            } else if let items = n.elements {
                for item in items { if let e = EntityCodec.entity(item, &r, sensitive) { tf.entities.append(e) } }
            } else {
                r.fail(n, p, "entities must be a file name or a list of {id, kind, tags}, found \(n.typeName)")
            }
        }
        if let (n, p) = top["rules"] {
            if n.stringValue != nil {
                tf.rules = loadFile("rules") { f in RuleFile.decode((try? String(contentsOfFile: f, encoding: .utf8)) ?? "", file: f, sensitive: sensitive) } ?? []
            } else if let items = n.elements {
                for (i, item) in items.enumerated() { if let rule = RuleCodec.decodeRule(item, p + "/\(i)", &r, sensitive) { tf.rules.append(rule) } }
            } else {
                r.fail(n, p, "rules must be a file name or a list of rules, found \(n.typeName)")
            }
        }
        guard let (tn, tp) = r.require(top, "tests", parent: doc, pointer: "", what: "test file", hint: "a list of {name, series | events | events_file, expect}") else {
            return .failure(TestFileErrors(r.errors.map(\.description) + extra))
        }
        guard let items = tn.elements, !items.isEmpty else {
            r.fail(tn, tp, "tests must be a non-empty list, found \(tn.typeName)")
            return .failure(TestFileErrors(r.errors.map(\.description) + extra))
        }
        for (i, item) in items.enumerated() {
            let p = tp + "/\(i)"
            guard let f = r.object(item, p, allowed: ["name", "series", "events", "events_file", "until", "mode", "expect", "policy", "notifications"], what: "test") else { continue }
            var t = UnitTest(name: f["name"]?.0.stringValue ?? "test \(i + 1)")
            var order = 0
            func add(_ text: String, _ at: Millis) {
                t.lines.append((at, order, text))
                order += 1
            }
            if let (n, np) = f["events_file"], let s = r.string(n, np, what: "events_file") {
                if let data = FileManager.default.contents(atPath: resolve(s)) {
                    for l in String(decoding: data, as: UTF8.self).split(separator: "\n") where !l.trimmingCharacters(in: .whitespaces).isEmpty {
                        add(String(l), TestFile.eventTime(String(l)))
                    }
                } else {
                    r.fail(n, np, "events_file: no file \(resolve(s))")
                }
            }
            if let (n, np) = f["events"], let s = r.string(n, np, what: "events") {
                for l in s.split(separator: "\n") where !l.trimmingCharacters(in: .whitespaces).isEmpty { add(String(l), TestFile.eventTime(String(l))) }
            }
            if let (n, np) = f["series"] {
                for (k, sn) in (n.elements ?? []).enumerated() {
                    let sp = np + "/\(k)"
                    guard let sf = r.object(sn, sp, allowed: ["entity", "type", "metric", "from", "every", "values"], what: "series") else { continue }
                    guard let en = sf["entity"]?.0.stringValue, let ty = sf["type"]?.0.stringValue, ["position", "reading", "contact"].contains(ty),
                          let vs = sf["values"]?.0.stringValue else {
                        r.fail(sn, sp, "a series needs entity, type (position, reading or contact) and values")
                        continue
                    }
                    if ty == "reading" && sf["metric"] == nil { r.fail(sn, sp, "a reading series needs a metric") }
                    let from = sf["from"].flatMap { time($0.0, $0.1, what: "from") } ?? start
                    var every: Millis = 60_000
                    if let (dn, dp) = sf["every"] { every = r.duration(dn, dp, what: "every") ?? every }
                    var step = 0
                    for token in vs.split(separator: " ") {
                        var value = String(token), count = 1
                        if let x = token.lastIndex(of: "x"), let c = Int(token[token.index(after: x)...]), c >= 1 {
                            value = String(token[..<x])
                            count = c
                        }
                        for _ in 0..<count {
                            let at = from + Millis(step) * every
                            step += 1
                            if value == "_" { continue }
                            var fields = "\"entity\":\(JSONText.quoted(en)),\"time\":\(at),\"type\":\"\(ty)\""
                            switch ty {
                            case "position":
                                let ll = value.split(separator: ",")
                                guard ll.count == 2, let lon = Double(ll[0]), let lat = Double(ll[1]) else {
                                    r.fail(sf["values"]!.0, sf["values"]!.1, "position value \"\(value)\" is not lon,lat such as 4.3,51.9")
                                    continue
                                }
                                fields += ",\"lon\":\(lon),\"lat\":\(lat)"
                            case "reading":
                                guard let v = Double(value) else {
                                    r.fail(sf["values"]!.0, sf["values"]!.1, "reading value \"\(value)\" is not a number")
                                    continue
                                }
                                fields += ",\"metric\":\(JSONText.quoted(sf["metric"]?.0.stringValue ?? "")),\"value\":\(v)"
                            default:
                                fields += ",\"counterpart\":\(JSONText.quoted(value))"
                            }
                            add("{" + fields + "}", at)
                        }
                    }
                }
            }
            if let (n, np) = f["until"] { t.until = time(n, np, what: "until") }
            if let (n, np) = f["mode"], let m = r.string(n, np, what: "mode") {
                if m == "include" { t.include = true } else if m != "exact" { r.fail(n, np, "mode must be exact (the default) or include") }
            }
            for (k, en) in (f["expect"]?.0.elements ?? []).enumerated() {
                let ep = (f["expect"]?.1 ?? p) + "/\(k)"
                guard let ef = r.object(en, ep, allowed: ["rule", "key", "state", "time", "details", "evidence"], what: "expected alert") else { continue }
                guard let rule = ef["rule"]?.0.stringValue, let (timeNode, timePointer) = ef["time"] else {
                    r.fail(en, ep, "an expected alert needs rule, key, state and time")
                    continue
                }
                var key: [String: String] = [:]
                for m in ef["key"]?.0.members ?? [] {
                    if let s = m.node.stringValue { key[m.key] = s } else if let a = m.node.elements { key[m.key] = a.compactMap(\.stringValue).joined(separator: ",") }
                }
                let state = ef["state"]?.0.stringValue ?? "firing"
                if state != "firing" && state != "resolved" { r.fail(en, ep + "/state", "state must be firing or resolved") }
                guard let at = time(timeNode, timePointer, what: "time") else { continue }
                t.expect.append(ExpectedAlert(rule: rule, key: key, state: state, time: at, details: ef["details"]?.0,
                                              evidence: ef["evidence"]?.0.elements?.compactMap(\.stringValue), line: en.line))
            }
            if let (pn, pp) = f["policy"], let s = r.string(pn, pp, what: "policy") {
                let full = resolve(s)
                if let ptext = try? String(contentsOfFile: full, encoding: .utf8), case .success(let pdoc) = YAMLDocument.parse(ptext, file: full) {
                    switch NotificationPolicy.decode(pdoc, file: full) {
                    case .success(let pol): t.policy = pol
                    case .failure(let e): extra += e.errors.map(\.description)
                    }
                } else {
                    r.fail(pn, pp, "policy: cannot read or parse \(full)")
                }
                if let (sn, sp) = f["notifications"], let st = r.string(sn, sp, what: "notifications") {
                    switch NotifyScenario.parse(st, file: path, firstLine: sn.line + 1) {
                    case .success(let sc): t.scenario = sc
                    case .failure(let e): extra += e.errors.map(\.description)
                    }
                } else {
                    r.fail(item, p, "a policy test needs notifications: a scenario (docs/notifications.md)")
                }
            } else if f["expect"] == nil {
                r.fail(item, p, "a test needs expect: the alerts it should produce (write expect: [] for none)", code: .missingField)
            }
            tf.tests.append(t)
        }
        let all = r.errors.map(\.description) + extra
        return all.isEmpty ? .success(tf) : .failure(TestFileErrors(all))
    }

    /// The time of an NDJSON event line, for ordering (0 when it has none readable).
    static func eventTime(_ line: String) -> Millis {
        guard case .success(let d) = JSONDocumentParser.parse(line, file: "event"), let n = d["time"] else { return 0 }
        if let s = n.stringValue, case .success(let t) = EventTime.parseText(s) { return t }
        if let v = n.numberValue { return Millis(v) }
        return 0
    }
}

struct TestFileErrors: Error {
    var messages: [String]
    init(_ m: [String]) { messages = m }
}
