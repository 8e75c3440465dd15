import Foundation
import Hummingbird
import TriplineCore
import TriplineStore

public struct RuleStats: Sendable {
    public var firing = 0
    public var resolved = 0
    public var useful = 0
    public var falsePositive = 0
    /// Per alert with feedback: first feedback time minus alert creation time.
    public var firstFeedbackDelays: [Millis] = []
}

extension AlertStore {
    public func ruleStats(_ rule: String) throws -> RuleStats {
        var q = AlertQuery()
        q.rule = rule
        q.limit = Int.max
        var st = RuleStats()
        var created: [Int64: Millis] = [:]
        for a in try alerts(q) {
            if a.firing { st.firing += 1 } else { st.resolved += 1 }
            created[a.id] = a.createdAt
        }
        var first: [Int64: Millis] = [:]
        for f in try feedback(alertId: nil) where created[f.alertId] != nil {
            if f.verdict == "useful" { st.useful += 1 } else { st.falsePositive += 1 }
            first[f.alertId] = min(first[f.alertId] ?? .max, f.at)
        }
        st.firstFeedbackDelays = first.map { $0.value - created[$0.key]! }.sorted()
        return st
    }
}

extension EngineHost {
    /// Finds the logged lines of evidence ids: assigned ids (`<entity>#<n>`) through the
    /// timeline index, given ids by reading the candidate entities' events.
    public func resolveEvidence(_ ids: [String], candidates: [String]) async throws -> [String: (Int64, String)] {
        let plan: ([String: Int64], [Int64]) = try await perform { s in
            var direct: [String: Int64] = [:]
            var scan: [Int64] = []
            for id in ids {
                if let hash = id.lastIndex(of: "#"), let n = Int(id[id.index(after: hash)...]), n >= 1,
                   let e = s.pipeline.entityNumber(String(id[..<hash])), Int(e) < s.timeline.count, n <= s.timeline[Int(e)].count {
                    direct[id] = s.timeline[Int(e)][n - 1].seq
                }
            }
            if direct.count < ids.count {
                for c in candidates {
                    if let e = s.pipeline.entityNumber(c), Int(e) < s.timeline.count { scan += s.timeline[Int(e)].map(\.seq) }
                }
            }
            return (direct, scan)
        }
        let lines = try store.logLines(Array(plan.0.values) + plan.1)
        var out: [String: (Int64, String)] = [:]
        for (id, seq) in plan.0 { if let l = lines[seq] { out[id] = (seq, l) } }
        let wanted = Set(ids).subtracting(out.keys)
        if !wanted.isEmpty {
            for seq in plan.1 {
                guard let l = lines[seq], case .success(let doc) = JSONDocumentParser.parse(l, file: "log"),
                      let given = doc["id"]?.stringValue, wanted.contains(given) else { continue }
                out[given] = (seq, l)
            }
        }
        return out
    }
}

extension TriplineHTTP {
    /// The rule version's text, the evidence events, the numbers and the window of an alert.
    var explainAlert: Handler {
        { [self] _, ctx, tok in
            guard let id = Int64(try param(ctx)), let alert = try store.alert(id: id) else { throw APIError.notFound("no alert with this id") }
            guard let version = try store.ruleVersions(alert.rule).first(where: { $0.version == alert.version }),
                  case .success(let ruleDoc) = JSONDocumentParser.parse(version.json, file: "rule") else {
                throw APIError.notFound("the rule version of this alert is no longer stored")
            }
            var reader = DocReader(file: "rule")
            guard let rule = RuleCodec.decodeRule(ruleDoc, "", &reader, SensitiveTags()) else {
                throw APIError(status: .internalServerError, code: "internal", message: "the stored rule version does not decode")
            }
            let line = try JSONDocumentParser.parse(alert.line, file: "alert").get()
            let evidence = (line["evidence"]?.elements ?? []).compactMap(\.stringValue)
            var numbers: [String: String] = [:]
            var members: [String] = []
            for m in line["details"]?.members ?? [] {
                switch m.node.value {
                case .number(let d, _):
                    var b: [UInt8] = []
                    JSONText.appendNumber(d, to: &b)
                    numbers[m.key] = String(decoding: b, as: UTF8.self)
                case .array(let a):
                    members = a.compactMap(\.stringValue)
                    numbers[m.key] = members.joined(separator: ", ")
                case .null: numbers[m.key] = "infinite"
                default: break
                }
            }
            var keyText = ""
            if let e = alert.entity { keyText = e }
            if let a = alert.pairA, let b = alert.pairB { keyText = "\(a) and \(b)" }
            if keyText.isEmpty, let z = alert.zone { keyText = "zone \(z)" }
            let explanation = AlertExplanation(rule: rule, firing: alert.firing, time: alert.time, keyText: keyText, details: numbers)
            let candidates = [alert.entity, alert.pairA, alert.pairB].compactMap { $0 } + members
            let resolved = try await host.resolveEvidence(evidence, candidates: candidates)
            let events: [J] = evidence.map { eid in
                if let (seq, l) = resolved[eid] { return .obj([("id", .str(eid)), ("seq", .int(seq)), ("event", .raw(l))]) }
                return .obj([("id", .str(eid)), ("event", .null), ("note", .str("no longer stored (retention or erasure)"))])
            }
            try audit.record(actor: who(tok), action: "alert.explain", target: "alert \(id)", detail: .obj([("evidence_events", .int(resolved.count))]))
            return API.json(.obj([
                ("alert", alert.json),
                ("rule", .obj([("id", .str(alert.rule)), ("version", .int(alert.version)), ("kind", .str(rule.kind.rawValue)), ("text", .raw(version.json))])),
                ("explanation", .str(explanation.sentence)),
                ("window", explanation.windowFrom.map { .obj([("from_exclusive", .time($0)), ("to", .time(explanation.windowTo!))]) } ?? .null),
                ("numbers", line["details"].map { .raw(DocJSON.encode($0)) } ?? .obj([])),
                ("evidence", .arr(events)),
            ]))
        }
    }

    var ruleStats: Handler {
        { [self] _, ctx, _ in
            let id = try param(ctx)
            guard try store.ruleVersions(id).last != nil else { throw APIError.notFound("no rule \"\(id)\"") }
            let st = try store.ruleStats(id)
            let judged = st.useful + st.falsePositive
            let median: J = st.firstFeedbackDelays.isEmpty ? .null : .num(Double(st.firstFeedbackDelays[st.firstFeedbackDelays.count / 2]) / 1000)
            return API.json(.obj([
                ("rule", .str(id)), ("firings", .int(st.firing)), ("resolutions", .int(st.resolved)),
                ("feedback", .obj([("useful", .int(st.useful)), ("false_positive", .int(st.falsePositive))])),
                ("precision", judged == 0 ? .null : .num(Double(st.useful) / Double(judged))),
                ("median_seconds_to_first_feedback", median),
            ]))
        }
    }

    /// Evaluates a draft rule over stored history (or uploaded events) without enabling it,
    /// and compares with the current version of the rule it would replace.
    var backtest: Handler {
        { [self] req, _, tok in
            let doc = try await jsonBody(req)
            guard let ruleNode = doc["rule"] else { throw APIError.badRequest("send {\"rule\": <rule object or YAML text>, \"last\": \"24h\" | \"since\": T, \"until\": T, \"events\": \"<NDJSON>\"}") }
            var node = ruleNode
            if let text = ruleNode.stringValue {
                node = try Submissions.parse(Array(text.utf8), contentType: "application/yaml", file: "rule").get()
            }
            let draft = try Submissions.rules(node, file: "rule", pathId: nil, sensitive: settings.options.sensitive).get()
            guard draft.count == 1 else { throw APIError.badRequest("backtest one rule at a time") }
            let rule = draft[0].0
            let (catalog, watermark) = try await host.perform { s in (s.catalog, s.pipeline.watermark) }
            var since = try timeField(doc, "since")
            if let last = doc["last"]?.stringValue {
                guard case .success(let ms) = DurationText.parse(last) else { throw APIError.badRequest("/last must be a duration such as 24h, at most 36525d") }
                since = watermark == .min ? nil : watermark - ms
            }
            let until = try timeField(doc, "until")
            var current: Rule?
            var currentVersion: Int?
            if let v = try store.ruleVersions(rule.id).last, !v.deleted, case .success(let cd) = JSONDocumentParser.parse(v.json, file: "rule") {
                var r = DocReader(file: "rule")
                current = RuleCodec.decodeRule(cd, "", &r, settings.options.sensitive)
                currentVersion = v.version
            }
            let uploaded = doc["events"]?.stringValue
            let store = self.store
            let sensitive = settings.options.sensitive
            let lateness = settings.options.allowedLateness
            let dedupWindow = settings.options.dedupWindow
            let from = since, currentRule = current
            // Run beside the engine, on the events as they were stored (or uploaded).
            let result = try await Task.detached { () throws -> (Int, [String], [String]?) in
                func run(_ r: Rule) throws -> (Int, [String]) {
                    let pipeline = Pipeline(zones: catalog.zones, entities: catalog.entities, rules: [r],
                                            options: PipelineOptions(allowedLateness: lateness, dedupWindow: dedupWindow, sensitive: sensitive))
                    var n = 0
                    func take(_ ev: Event) {
                        if let from, ev.time < from { return }
                        if let until, ev.time > until { return }
                        pipeline.ingest(ev)
                        n += 1
                    }
                    if let uploaded {
                        // Uploaded NDJSON: every line must be an event (records and blank lines aside).
                        var k = 0
                        for l in uploaded.split(separator: "\n", omittingEmptySubsequences: false) {
                            k += 1
                            var s = String(l)
                            try s.withUTF8 { line in
                                if line.isEmpty || LogRecord.isRecord(line) || line.allSatisfy({ $0 == 32 }) { return }
                                switch pipeline.decode(line, number: k) {
                                case .success(let ev): take(ev)
                                case .failure(let e): throw ValidationFailure(e)
                                }
                            }
                        }
                    } else {
                        try store.forEachLogBatch { b in
                            b.forEachLine { line, seq in
                                switch pipeline.read(logLine: line, number: Int(seq)) {
                                case .event(let ev): take(ev)
                                case .advance(let t):
                                    // A logged watermark advance (operator or idle advance): the
                                    // live engine's timers fired there, so the backtest's fire there too.
                                    if let from, t < from { return }
                                    pipeline.advance(until: until.map { min($0, t) } ?? t)
                                case .skip: break
                                }
                            }
                        }
                    }
                    pipeline.finish(until: until)
                    var alerts: [NamedAlert] = []
                    pipeline.drainAlerts(into: &alerts)
                    return (n, alerts.map(\.line))
                }
                let (n, d) = try run(rule)
                let c = try currentRule.map { try run($0).1 }
                return (n, d, c)
            }.value
            let (scanned, drafted, currentAlerts) = result
            var fields: [(String, J)] = [
                ("rule", .str(rule.id)), ("events_scanned", .int(scanned)),
                ("since", since.map { .time($0) } ?? .null), ("until", until.map { .time($0) } ?? .null),
                ("count", .int(drafted.count)), ("alerts", .arr(drafted.prefix(1000).map { .raw($0) })),
            ]
            if let currentAlerts {
                let a = Set(drafted), b = Set(currentAlerts)
                fields.append(("current", .obj([("version", .int(currentVersion!)), ("count", .int(currentAlerts.count))])))
                fields.append(("diff", .obj([
                    ("added", .arr(drafted.filter { !b.contains($0) }.prefix(200).map { .raw($0) })),
                    ("removed", .arr(currentAlerts.filter { !a.contains($0) }.prefix(200).map { .raw($0) })),
                    ("unchanged", .int(drafted.filter { b.contains($0) }.count)),
                ])))
            } else {
                fields.append(("current", .null))
            }
            try audit.record(actor: who(tok), action: "rule.backtest", target: rule.id,
                             detail: .obj([("events", .int(scanned)), ("alerts", .int(drafted.count)), ("uploaded", .bool(uploaded != nil))]))
            return API.json(.obj(fields))
        }
    }
}

// MARK: - Map and dashboard support
extension TriplineHTTP {
    /// Latest positions of every entity seen, compact: one array per entity.
    var positions: Handler {
        { [self] _, _, _ in
            let (list, wm) = try await host.perform { s in (s.positions(), s.pipeline.watermark) }
            var out: [UInt8] = Array(#"{"fields":["id","kind","lon","lat","time"],"watermark":"#.utf8)
            J.time(wm).append(to: &out)
            out += Array(#","entities":["#.utf8)
            for (i, p) in list.enumerated() {
                if i > 0 { out.append(44) }
                out.append(91)
                JSONText.appendString(p.0, to: &out)
                out.append(44)
                JSONText.appendString(p.1, to: &out)
                out.append(44)
                JSONText.appendNumber(p.2, to: &out)
                out.append(44)
                JSONText.appendNumber(p.3, to: &out)
                out.append(44)
                out += Array(String(p.4).utf8)
                out.append(93)
            }
            out += Array("]}\n".utf8)
            return Response(status: .ok, headers: [.contentType: "application/json"], body: ResponseBody(byteBuffer: ByteBuffer(bytes: out)))
        }
    }

    /// Who is inside a zone now (by latest position).
    var zoneInside: Handler {
        { [self] _, ctx, _ in
            let id = try param(ctx)
            let inside: [(String, String, Double, Double, Millis)]? = try await host.perform { s in
                guard let z = s.pipeline.zones.first(where: { $0.id == id }) else { return nil }
                return s.positions().filter { z.shape.covers($0.2, $0.3) }
            }
            guard let inside else { throw APIError.notFound("no zone \"\(id)\"") }
            return API.json(.obj([("zone", .str(id)), ("entities", .arr(inside.map {
                .obj([("id", .str($0.0)), ("kind", .str($0.1)), ("lon", .num($0.2)), ("lat", .num($0.3)), ("time", .time($0.4))])
            }))]))
        }
    }

    /// The dashboard: static files bundled with the binary (no data in them, so no token).
    var dashboardIndex: Handler {
        { _, _, _ in try Self.asset("index.html") }
    }

    var dashboardAsset: Handler {
        { _, ctx, _ in
            guard let name = ctx.parameters.get("file") else { throw APIError.notFound("no such file") }
            return try Self.asset(name)
        }
    }

    static func asset(_ name: String) throws -> Response {
        guard name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "." || $0 == "-" || $0 == "_" }), !name.hasPrefix("."),
              let dir = Bundle.module.url(forResource: "dashboard", withExtension: nil),
              let data = FileManager.default.contents(atPath: dir.appendingPathComponent(name).path) else {
            throw APIError.notFound("no dashboard file \"\(name)\"")
        }
        let type: String
        switch (name as NSString).pathExtension {
        case "html": type = "text/html; charset=utf-8"
        case "js": type = "text/javascript; charset=utf-8"
        case "css": type = "text/css; charset=utf-8"
        case "svg": type = "image/svg+xml"
        default: type = "application/octet-stream"
        }
        return Response(status: .ok, headers: [.contentType: type, .cacheControl: "no-cache"], body: ResponseBody(byteBuffer: ByteBuffer(bytes: [UInt8](data))))
    }
}
