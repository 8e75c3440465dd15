import Testing
import TriplineYAML
import TriplineTesting
@testable import TriplineCore

@Suite struct TimeAndDurationTests {
    @Test func rfc3339ParsesOffsetsCaseAndTruncatesBeyondMilliseconds() throws {
        #expect(try EventTime.parseRFC3339("2026-03-01T08:00:00Z").get() == 1_772_352_000_000)
        #expect(try EventTime.parseRFC3339("2026-03-01t08:00:00z").get() == 1_772_352_000_000)
        #expect(try EventTime.parseRFC3339("2026-03-01T09:30:00+01:30").get() == 1_772_352_000_000)
        #expect(try EventTime.parseRFC3339("2026-03-01T08:00:00.1239Z").get() == 1_772_352_000_123)
        #expect(try EventTime.parseRFC3339("2026-03-01T08:00:00.5Z").get() == 1_772_352_000_500)
        #expect(try EventTime.parseRFC3339("2024-02-29T00:00:00Z").get() == 1_709_164_800_000)
    }

    @Test(arguments: ["2026-02-30T00:00:00Z", "2026-03-01T08:00:00", "2026-03-01 08:00:00Z", "2026-13-01T00:00:00Z", "2026-03-01T24:00:00Z", "yesterday"])
    func invalidTimesAreRefused(_ text: String) {
        guard case .failure = EventTime.parseRFC3339(text) else {
            Issue.record("\(text) was accepted")
            return
        }
    }

    @Test func formattingHasExactlyThreeFractionDigits() {
        #expect(EventTime.format(1_772_352_000_000) == "2026-03-01T08:00:00.000Z")
        #expect(EventTime.format(1_772_352_000_007) == "2026-03-01T08:00:00.007Z")
        #expect(EventTime.format(0) == "1970-01-01T00:00:00.000Z")
    }

    @Test func durations() throws {
        #expect(try DurationText.parse("500ms").get() == 500)
        #expect(try DurationText.parse("1h30m").get() == 5_400_000)
        #expect(try DurationText.parse("7d").get() == 604_800_000)
        #expect(try DurationText.parse("0s").get() == 0)
        for bad in ["30", "1m1h", "5x", "", "1h1h", "-5m", "1.5h"] {
            if case .success = DurationText.parse(bad) { Issue.record("\(bad) was accepted") }
        }
    }
}

@Suite struct EventDecoderTests {
    func decode(_ line: String) -> Result<Event, TriplineError> {
        var symbols = Symbols()
        var d = EventDecoder(file: "events.ndjson")
        var l = line
        return l.withUTF8 { d.decode($0, line: 7, symbols: &symbols) }
    }

    func error(_ line: String) -> TriplineError? {
        if case .failure(let e) = decode(line) { return e }
        return nil
    }

    @Test func decodesEveryEventType() throws {
        let p = try decode(#"{"entity":"truck-1","time":"2026-03-01T08:00:00Z","type":"position","lon":4.5,"lat":52.25,"id":"a\"b"}"#).get()
        #expect(p.isPosition && p.lon == 4.5 && p.lat == 52.25 && p.time == 1_772_352_000_000 && p.givenId == 0)
        let r = try decode(#"{"entity":"m","time":5,"type":"reading","metric":"water_l","value":-1.5e2}"#).get()
        #expect(r.type == Symbols.readingType && r.value == -150 && r.time == 5)
        let c = try decode(#"{"entity":"a","time":5,"type":"payment","attrs":{"tier":"high","amount":12,"new":true}}"#).get()
        #expect(c.attrs.count == 3)
    }

    @Test func numbersParseExactly() throws {
        for text in ["0.1", "52.370216", "-179.999999999", "1e-7", "123456789.123456789", "4.940656458412465e-324"] {
            let e = try decode(#"{"entity":"x","time":1,"type":"reading","metric":"m","value":\#(text)}"#).get()
            #expect(e.value == Double(text)!, "\(text)")
        }
    }

    @Test func badLinesGetOneLocatedMessage() {
        let truncated = error(#"{"entity":"t","time":1,"type":"position","lon":4.5,"la"#)
        #expect(truncated?.location?.line == 7)
        #expect(truncated?.code == .syntax)
        let nan = error(#"{"entity":"t","time":1,"type":"position","lon":NaN,"lat":1}"#)
        #expect(nan?.location?.pointer == "/lon" && nan?.message.contains("NaN") == true)
        let lon = error(#"{"entity":"t","time":1,"type":"position","lon":200,"lat":1}"#)
        #expect(lon?.location?.pointer == "/lon" && lon?.message.contains("200") == true)
        let unknown = error(#"{"entity":"t","time":1,"type":"position","lng":2,"lat":1}"#)
        #expect(unknown?.location?.pointer == "/lng" && unknown?.code == .unknownField)
        let missing = error(#"{"entity":"t","time":1,"type":"position","lat":1}"#)
        #expect(missing?.message.contains("lon") == true)
        let quoted = error(#"{"entity":"t","time":1,"type":"position","lon":"2","lat":1}"#)
        #expect(quoted?.message.contains("not a string") == true)
        let sensitive = error(#"{"entity":"t","time":1,"type":"visit","attrs":{"Health":"flu"}}"#)
        #expect(sensitive?.code == .sensitiveTag && sensitive?.location?.pointer == "/attrs/Health")
        let badTime = error(#"{"entity":"t","time":"2026-03-01","type":"x"}"#)
        #expect(badTime?.location?.pointer == "/time")
        let negative = error(#"{"entity":"t","time":-5,"type":"x"}"#)
        #expect(negative?.location?.pointer == "/time")
        #expect(error(#"{"entity":"t","time":1,"type":"reading","metric":"m","value":1,"lon":2}"#)?.location?.pointer == "/lon")
        #expect(error(#"["not an object"]"#) != nil)
        #expect(error(#"{"entity":"","time":1,"type":"x"}"#)?.location?.pointer == "/entity")
    }
}

/// Member names read as one word (`EventDecoder.quickField`) against reading every name with
/// `scanString`: the same events and the same errors, on generated lines of every type with
/// names at every place, spacing, escapes, near-miss names and cut or altered bytes.
@Suite struct EventDecoderQuickFieldTests {
    static func line(_ rng: inout SplitMix64) -> [UInt8] {
        func pick<T>(_ a: [T]) -> T { a[Int(rng.next() % UInt64(a.count))] }
        var members: [String] = []
        members.append(#""entity":"\#(pick(["truck-1", "van-22", "a\\u0041b", "e\\\"q"]))""#)
        members.append(#""time":\#(pick(["1772352000000", "5", "\"2026-03-01T08:00:00Z\"", "-1", "1.5"]))"#)
        switch rng.next() % 4 {
        case 0: members += [#""type":"position""#, #""lon":\#(pick(["4.5", "-179.25", "200", "\"1\""]))"#, #""lat":\#(pick(["52.25", "-0.5", "1e1"]))"#]
        case 1: members += [#""type":"reading""#, #""metric":"\#(pick(["water_l", "m"]))""#, #""value":\#(pick(["-1.5e2", "3", "0.125"]))"#]
        case 2: members += [#""type":"contact""#, #""counterpart":"\#(pick(["payee-1", "x"]))""#]
        default: members += [#""type":"\#(pick(["login", "password_reset"]))""#, #""attrs":{"tier":"high","n":\#(pick(["1", "true", "\"x\""]))}"#]
        }
        if rng.next() % 3 == 0 { members.append(#""id":"\#(pick(["e1", "truck-1#2"]))""#) }
        // Near misses and oddities: names one letter off, longer, escaped, repeated, unknown.
        if rng.next() % 4 == 0 {
            members.append(pick([#""ids":"x""#, #""tim":1"#, #""lonx":1"#, #""metricx":"m""#, #""entit\u0079":"x""#,
                                 #""attrs2":{}"#, #""value":1"#, #""i":1"#, #""Time":1"#, #""typ":"x""#, #""latt":2"#]))
        }
        members.shuffle(using: &rng)
        let space = rng.next() % 3 == 0 ? " " : ""
        var bytes = Array(("{" + space + members.joined(separator: "," + space) + space + "}").utf8)
        switch rng.next() % 6 {
        case 0: bytes = Array(bytes[0..<Int(rng.next() % UInt64(bytes.count))])
        case 1: bytes[Int(rng.next() % UInt64(bytes.count))] = pick([34, 58, 44, 125, 92, 0x65, 0x74, 0x20, 0xC3])
        default: break
        }
        return bytes
    }

    static func describe(_ r: Result<Event, TriplineError>, _ symbols: Symbols) -> String {
        switch r {
        case .success(let e):
            return "event \(symbols.entities.string(e.entity)) \(e.time) \(symbols.names.string(e.type)) \(e.givenId) \(e.lon) \(e.lat) \(e.metric) \(e.value) \(e.counterpart) \(e.attrs)"
        case .failure(let e): return "error \(e.description)"
        }
    }

    @Test(arguments: Array(1...4) as [UInt64])
    func quickNamesDecodeAsScannedNames(seed: UInt64) {
        var rng = SplitMix64(seed: seed)
        var quick = EventDecoder(file: "e.ndjson"), plain = EventDecoder(file: "e.ndjson")
        plain.fastPaths = false
        var qs = Symbols(), ps = Symbols()
        var decoded = 0
        for n in 0..<3000 {
            let bytes = Self.line(&rng)
            let a = bytes.withUnsafeBufferPointer { quick.decode($0, line: n + 1, symbols: &qs) }
            let b = bytes.withUnsafeBufferPointer { plain.decode($0, line: n + 1, symbols: &ps) }
            let da = Self.describe(a, qs), db = Self.describe(b, ps)
            #expect(da == db, "\(String(decoding: bytes, as: UTF8.self))")
            if case .success = a { decoded += 1 }
        }
        // Both outcomes are common.
        #expect(decoded > 600 && decoded < 2700, "\(decoded) of 3000 decoded")
    }

    /// Position, reading and contact events in the usual form (`EventDecoder.fastEvent`),
    /// with values at and past every limit it checks, and cut or altered: the same events and
    /// errors as the general loop; the lines it may read take the fast path.
    @Test(arguments: Array(1...4) as [UInt64])
    func fastEventsDecodeAsTheGeneralLoop(seed: UInt64) {
        var rng = SplitMix64(seed: seed)
        func pick<T>(_ a: [T]) -> T { a[Int(rng.next() % UInt64(a.count))] }
        var quick = EventDecoder(file: "e.ndjson"), plain = EventDecoder(file: "e.ndjson")
        plain.fastPaths = false
        var qs = Symbols(), ps = Symbols()
        var fast = [0, 0, 0], decoded = 0
        for n in 0..<6000 {
            let entity = pick(["truck-\(rng.next() % 50)", "v", "é", "a\\u0041", "", String(repeating: "x", count: 256),
                               String(repeating: "y", count: 257), "tab\there"])
            let time = pick(["1772352000000", "0", "5", "0123", "-1", "1.5", "1e3", "253402300799999", "253402300800000",
                             "1234567890123456", "\"2026-03-01T08:00:00Z\"", "99999999999999"])
            let head = #"{"entity":"\#(entity)","time":\#(time),"type":"#
            let kind = Int(rng.next() % 3)
            var text: String
            switch kind {
            case 0:
                let lon = pick(["4.984494", "-180", "180", "180.0000001", "-0", "1e2", "-", "01.5", "\"1\"", "179.99999999999999999",
                                "-26.587896", "1e999"])
                let lat = pick(["52.25", "-90", "90", "90.5", "-0.000001", "0", "NaN", "4e1"])
                text = head + #""position","lon":\#(lon),"lat":\#(lat)}"#
            case 1:
                let metric = pick(["water_l", "m", "", "é", String(repeating: "k", count: 128), String(repeating: "k", count: 129), "a\\nb"])
                let value = pick(["3", "-1.5e2", "0.125", "-0", "1e999", "NaN", "\"3\"", "-", "01", "true"])
                text = head + #""reading","metric":"\#(metric)","value":\#(value)}"#
            default:
                let counterpart = pick(["payee-\(rng.next() % 20)", "x", "", "ü", String(repeating: "c", count: 256),
                                        String(repeating: "c", count: 257), "q\\\"q"])
                text = head + #""contact","counterpart":"\#(counterpart)"}"#
            }
            if rng.next() % 10 == 0 { text = text.replacingOccurrences(of: pick(["position", "reading", "contact"]), with: pick(["positions", "Reading", "login"])) }
            var bytes = Array(text.utf8)
            switch rng.next() % 8 {
            case 0: bytes = Array(bytes[0..<Int(rng.next() % UInt64(bytes.count))])
            case 1: bytes[Int(rng.next() % UInt64(bytes.count))] = pick([34, 58, 44, 125, 92, 32, 0x30, 0x2D, 0xC3])
            case 2: bytes.append(pick([32, 13, 125, 10]))
            default: break
            }
            var probe = EventDecoder(file: "e.ndjson"), ps2 = Symbols()
            if bytes.withUnsafeBufferPointer({ probe.fastEvent($0, symbols: &ps2) }) != nil { fast[kind] += 1 }
            let a = bytes.withUnsafeBufferPointer { quick.decode($0, line: n + 1, symbols: &qs) }
            let b = bytes.withUnsafeBufferPointer { plain.decode($0, line: n + 1, symbols: &ps) }
            #expect(Self.describe(a, qs) == Self.describe(b, ps), "\(String(decoding: bytes, as: UTF8.self))")
            if case .success = b { decoded += 1 }
        }
        // The fast path reads lines of every kind, and only lines that decode.
        #expect(fast.allSatisfy { $0 > 10 } && fast.reduce(0, +) <= decoded, "\(fast) read fast, \(decoded) decoded")
    }
}

@Suite struct RuleCodecTests {
    func errors(_ yaml: String) -> [TriplineError] {
        switch RuleFile.decode(yaml, file: "rules.yaml") {
        case .success: return []
        case .failure(let e): return e.errors
        }
    }

    let header = """
    rules:
      - id: r1
        purpose: test
        owner: me
        severity: low
        match: {}

    """

    @Test func theSpecExampleDecodes() throws {
        let yaml = """
        rules:
          - id: hazmat-depot-crowding
            kind: gathering
            purpose: Site safety limit of three hazmat trucks per depot
            owner: safety-desk
            severity: high
            match: {kind: truck, tags: {cargo: hazmat}}
            zones: {category: depot}
            min_count: 4
            window: 30m
            cooldown: 1h
            expires: 2027-06-30T00:00:00Z
          - id: meter-over-baseline
            kind: threshold
            purpose: Leak detection on water meters
            owner: network-ops
            severity: medium
            match: {kind: meter}
            metric: water_l
            baseline: {window: 28d, factor: 3, min_samples: 48}
          - id: takeover-pattern
            kind: sequence
            purpose: Account takeover pattern on the payments desk
            owner: fraud-desk
            severity: critical
            match: {kind: account}
            steps:
              - event: {type: login_failed}
              - event: {type: password_reset}
              - event: {type: payment, attrs: {tier: high}}
            within: 30m
        """
        let rules = try RuleFile.decode(yaml, file: "rules.yaml").get()
        #expect(rules.count == 3)
        #expect(rules[0].parameters == .gathering(minCount: 4, window: 1_800_000))
        #expect(rules[0].cooldown == 3_600_000)
        #expect(rules[0].expires == (try EventTime.parseRFC3339("2027-06-30T00:00:00Z").get()))
        #expect(rules[1].parameters == .threshold(metric: "water_l", condition: .baseline(window: 28 * 86_400_000, factor: 3, minSamples: 48)))
        #expect(rules[0].line == 2)
    }

    @Test func jsonRuleFilesDecodeToo() throws {
        let json = #"{"rules":[{"id":"a","kind":"enter","purpose":"p","owner":"o","severity":"low","match":{},"zones":{"category":"depot"}}]}"#
        let rules = try RuleFile.decode(json, file: "rules.json").get()
        #expect(rules.first?.zones?.classes == ["depot"])
    }

    @Test func everyErrorOfAFileIsReportedWithItsLocation() {
        let yaml = """
        rules:
          - id: a
            kind: teleport
            purpose: p
            owner: o
            severity: low
            match: {}
          - id: b
            kind: frequency
            purpose: p
            owner: o
            severity: low
            match: {tags: {health: flu}}
            count: 3
            window: 0s
            event: {type: payment}
          - id: c
            kind: enter
            owner: o
            severity: urgent
            match: {}
            zonez: {category: depot}
        """
        let errs = errors(yaml)
        let text = errs.map(\.description).joined(separator: "\n")
        #expect(errs.count >= 5, "\(text)")
        #expect(errs.contains { $0.location?.pointer == "/rules/0/kind" && $0.message.contains("teleport") })
        #expect(errs.contains { $0.location?.pointer == "/rules/1/match/tags/health" && $0.code == .sensitiveTag })
        #expect(errs.contains { $0.location?.pointer == "/rules/1/window" && $0.message.contains("greater than zero") })
        #expect(errs.contains { $0.location?.pointer == "/rules/2" && $0.message.contains("purpose") })
        #expect(errs.contains { $0.location?.pointer == "/rules/2/severity" })
        #expect(errs.contains { $0.location?.pointer == "/rules/2/zonez" && $0.message.contains("did you mean \"zones\"") })
        #expect(errs.allSatisfy { ($0.location?.line ?? 0) > 0 })
    }

    @Test(arguments: [
        ("kind: gathering\n    zones: {}\n    min_count: 1\n    window: 5m", "/rules/0/min_count"),
        ("kind: sequence\n    within: 5m\n    steps:\n      - event: {type: a}", "/rules/0/steps"),
        ("kind: threshold\n    metric: m\n    baseline: {window: 1d, factor: 0, min_samples: 3}", "/rules/0/baseline/factor"),
        ("kind: proximity\n    distance_m: 10\n    within: -5m", "/rules/0/within"),
        ("kind: speed\n    max_kmh: 90\n    zones: {category: depot}", "/rules/0/zones"),
        ("kind: threshold\n    metric: m\n    above: 5\n    below: 2", "/rules/0"),
        ("kind: dwell\n    min: 0s", "/rules/0/min"),
        ("kind: frequency\n    count: 2\n    window: 5m\n    event: {type: reading, attrs: {religion: x}}", "/rules/0/event/attrs/religion"),
        ("kind: enter\n    zones: {category: []}", "/rules/0/zones/category"),
        ("kind: enter\n    zones: {tags: {level: 8}}", "/rules/0/zones/tags/level"),
    ])
    func unsatisfiableOrContradictoryRulesAreRefused(body: String, pointer: String) {
        let errs = errors(header + "    " + body + "\n")
        #expect(errs.contains { $0.location?.pointer == pointer }, "\(errs.map(\.description))")
    }

    @Test func tagValuesMustBeStrings() {
        let errs = errors(header + "    kind: enter\n    match: {tags: {cargo: yes}}\n")
        // `match` given twice is itself an error; either way nothing is accepted.
        #expect(!errs.isEmpty)
        let ok = errors(header.replacingOccurrences(of: "match: {}", with: "match: {tags: {cargo: 'yes'}}") + "    kind: enter\n")
        #expect(ok.isEmpty, "\(ok)")
    }

    @Test func yamlSyntaxErrorsAreLocated() {
        let errs = errors("rules:\n  - id: [unclosed\n")
        #expect(errs.count == 1 && errs[0].code == .syntax && (errs[0].location?.line ?? 0) >= 2)
    }
}

@Suite struct ZoneCodecTests {
    func errors(_ features: String) -> [TriplineError] {
        let text = #"{"type":"FeatureCollection","features":[\#(features)]}"#
        switch ZoneCodec.decode(text, file: "zones.geojson") {
        case .success: return []
        case .failure(let e): return e.errors
        }
    }
    func feature(_ id: String, _ geometry: String, extra: String = "") -> String {
        #"{"type":"Feature","properties":{"id":"\#(id)","category":"depot"\#(extra)},"geometry":\#(geometry)}"#
    }
    let square = #"{"type":"Polygon","coordinates":[[[0,0],[1,0],[1,1],[0,1],[0,0]]]}"#

    @Test func validZonesDecode() throws {
        let text = #"{"type":"FeatureCollection","features":[\#(feature("a", square)),\#(feature("b", #"{"type":"Point","coordinates":[4,52]}"#, extra: #","radius_m":250"#))]}"#
        let zones = try ZoneCodec.decode(text, file: "z").get()
        #expect(zones.count == 2)
    }

    @Test func allBadZonesAreReportedAtOnce() {
        let errs = errors([
            feature("a", square),
            feature("a", square),
            feature("bow", #"{"type":"Polygon","coordinates":[[[0,0],[1,1],[1,0],[0,1],[0,0]]]}"#),
            feature("open", #"{"type":"Polygon","coordinates":[[[0,0],[1,0],[1,1],[0,1]]]}"#),
            feature("far", #"{"type":"Polygon","coordinates":[[[200,0],[1,0],[1,1],[0,1],[200,0]]]}"#),
            feature("c", #"{"type":"Point","coordinates":[4,52]}"#),
            feature("t", square, extra: #","tags":{"ethnicity":"x"}"#),
        ].joined(separator: ","))
        let pointers = errs.compactMap { $0.location?.pointer }
        #expect(pointers.contains("/features/1/properties/id"), "\(errs)")
        #expect(pointers.contains("/features/2/geometry"))
        #expect(pointers.contains("/features/3/geometry/coordinates/0"))
        #expect(pointers.contains("/features/4/geometry/coordinates/0/0/0"))
        #expect(pointers.contains("/features/5/properties"))
        #expect(pointers.contains("/features/6/properties/tags/ethnicity"))
        #expect(errs.count == 6)
    }

    /// A file of many features is decoded on all cores (`ParallelMap`); its errors, and the
    /// duplicates found between features of different stripes, come out exactly as a
    /// one-feature-after-another reading gives them, in document order.
    @Test func manyFeaturesGiveTheErrorsOfAReadingInOrder() throws {
        var rng = SplitMix64(seed: 18)
        let bad = [
            #"{"type":"Polygon","coordinates":[[[0,0],[1,1],[1,0],[0,1],[0,0]]]}"#,
            #"{"type":"Polygon","coordinates":[[[0,0],[1,0],[1,1],[0,1]]]}"#,
            #"{"type":"Polygon","coordinates":[[[200,0],[1,0],[1,1],[0,1],[200,0]]]}"#,
            #"{"type":"Point","coordinates":[4,52]}"#,
        ]
        var features: [String] = []
        for i in 0..<300 {
            let id = rng.next() % 10 == 0 ? "z\(rng.next() % UInt64(i + 1))" : "z\(i)"
            switch rng.next() % 8 {
            case 0: features.append(feature(id, bad[Int(rng.next() % 4)]))
            case 1: features.append(feature(id, square, extra: #","tags":{"religion":"x"}"#))
            default: features.append(feature(id, square))
            }
        }
        let text = #"{"type":"FeatureCollection","features":[\#(features.joined(separator: ","))]}"#
        // The reference: each feature read in turn, a repeated id reported where it repeats.
        let doc = try JSONDocumentParser.parse(text, file: "zones.geojson").get()
        var r = DocReader(file: "zones.geojson")
        var seen: [String: Int] = [:]
        var expectedZones: [String] = []
        for (i, f) in doc["features"]!.elements!.enumerated() {
            guard let z = ZoneCodec.feature(f, "/features/\(i)", &r, SensitiveTags()) else { continue }
            if let first = seen[z.id] {
                r.fail(f, "/features/\(i)/properties/id", "duplicate zone id \"\(z.id)\" (first used by feature \(first)); zone ids must be unique", code: .duplicateId)
            } else {
                seen[z.id] = i
                expectedZones.append(z.id)
            }
        }
        let got = errors(features.joined(separator: ","))
        #expect(r.errors.count > 30)
        #expect(got.map(\.description) == r.errors.map(\.description))
        // And a file with no error gives its zones in order.
        let good = (0..<200).map { feature("g\($0)", square) }.joined(separator: ",")
        let zones = try ZoneCodec.decode(#"{"type":"FeatureCollection","features":[\#(good)]}"#, file: "z").get()
        #expect(zones.map(\.id) == (0..<200).map { "g\($0)" })
    }

    @Test func longitudesJustPastTheAntimeridianAreClamped() throws {
        let text = #"{"type":"FeatureCollection","features":[\#(feature("a", #"{"type":"Polygon","coordinates":[[[179,0],[180.0000000001,0],[180.0000000001,1],[179,1],[179,0]]]}"#))]}"#
        let zones = try ZoneCodec.decode(text, file: "z").get()
        #expect(zones[0].shape.covers(180, 0.5))
    }
}

@Suite struct RuleEncoderTests {
    @Test func encodedRulesDecodeToTheSameRules() throws {
        var rules = TriplineTesting.Workload.mixedRules(count: 60)
        rules[3].cooldown = 90_000
        rules[4].expires = 1_800_000_000_123
        rules[5].match = Selector(classes: ["truck", "van"], tags: ["cargo": ["hazmat", "fuel"]], ids: ["a\"b", "c"])
        let text = RuleEncoder.file(rules)
        let back = try RuleCodec.decodeJSON(text, file: "enc.json").get()
        #expect(back.count == rules.count)
        for (a, var b) in zip(rules, back) {
            b.line = a.line
            #expect(a == b, "\(a.id)")
        }
    }
}

@Suite struct UTF8TextTests {
    /// `UTF8Text.decode` takes the standard library's validation first and scans for the
    /// located error only on failure: on random mutations of valid text (stray continuation
    /// bytes, truncated sequences, overlongs, surrogates, bytes past U+10FFFF) the two must agree.
    @Test(arguments: Array(1...4) as [UInt64])
    func fastValidationAgreesWithTheLocatedScan(seed: UInt64) {
        var rng = SplitMix64(seed: seed)
        let base = Array(#"{"id":"zöne-1","name":"Zürich €","pts":[[1.5,2],[3,4]]} 𝄞 ok"#.utf8)
        let nasty: [UInt8] = [0x80, 0xBF, 0xC0, 0xC1, 0xC2, 0xDF, 0xE0, 0xED, 0xEF, 0xF0, 0xF4, 0xF5, 0xFF, 0xA0, 0x9F, 0x8F, 0x90]
        var invalid = 0
        for _ in 0..<3000 {
            var b = base
            for _ in 0..<(1 + Int(rng.next() % 3)) {
                let i = Int(rng.next() % UInt64(b.count))
                switch rng.next() % 3 {
                case 0: b[i] = nasty[Int(rng.next() % UInt64(nasty.count))]
                case 1: b.insert(nasty[Int(rng.next() % UInt64(nasty.count))], at: i)
                default: b.remove(at: i)
                }
            }
            let located = UTF8Text.firstInvalid(b)
            switch UTF8Text.decode(b, file: "f") {
            case .success(let s):
                #expect(located == nil)
                #expect(Array(s.utf8) == b)
            case .failure(let e):
                invalid += 1
                let bad = try! #require(located)
                #expect(e.description.contains("first bad byte at offset \(bad.offset)"))
            }
        }
        #expect(invalid > 1000)
    }
}
