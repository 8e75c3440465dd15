import Foundation
import Testing
import TriplineTesting
import TriplineYAML
@testable import TriplineCore

/// Runs a rule set over NDJSON lines and returns the alert lines.
func replay(zones: [Zone], entities: [EntityInfo] = [], rules: [Rule], lines: [String], lateness: Millis = 0, until: Millis? = nil) -> (alerts: [String], engine: Engine, outcomes: [IngestOutcome]) {
    let engine = Engine(zones: zones, entities: entities, rules: rules, options: EngineOptions(allowedLateness: lateness))
    var dec = EventDecoder(file: "test")
    var outcomes: [IngestOutcome] = []
    for (i, l) in lines.enumerated() {
        var s = l
        let r = s.withUTF8 { dec.decode($0, line: i + 1, symbols: &engine.symbols) }
        guard case .success(let ev) = r else { fatalError("bad test line \(l): \(r)") }
        outcomes.append(engine.ingest(ev))
    }
    engine.finish(until: until)
    var alerts: [Alert] = []
    engine.drainAlerts(into: &alerts)
    var out: [UInt8] = []
    let enc = AlertEncoder()
    for a in alerts { enc.append(a, engine: engine, to: &out) }
    let text = String(decoding: out, as: UTF8.self)
    return (text.split(separator: "\n").map(String.init), engine, outcomes)
}

func square(_ id: String, _ category: String, _ x0: Double, _ y0: Double, _ x1: Double, _ y1: Double) -> Zone {
    Zone(id: id, category: category, shape: .polygons([Polygon(shell: Ring(points: [(x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0)]), holes: [])]))
}

func pos(_ e: String, _ t: Millis, _ x: Double, _ y: Double, id: String? = nil) -> String {
    "{\"entity\":\"\(e)\",\"time\":\(t),\"type\":\"position\",\"lon\":\(x),\"lat\":\(y)\(id.map { ",\"id\":\"\($0)\"" } ?? "")}"
}

@Suite struct GeofenceTests {
    let zones = [square("a", "depot", 0, 0, 10, 10), square("b", "restricted", 5, 5, 15, 15)]
    let rules = [
        Rule(id: "in", purpose: "p", owner: "o", parameters: .enter),
        Rule(id: "out", purpose: "p", owner: "o", zones: Selector(classes: ["depot"]), parameters: .exit),
    ]

    @Test func firstSightingInsideEntersAndLeavingExits() {
        let r = replay(zones: zones, rules: rules, lines: [
            pos("t1", 1000, 1, 1), pos("t1", 2000, 7, 7), pos("t1", 3000, 20, 20), pos("t1", 4000, 10, 10),
        ])
        #expect(r.alerts == [
            #"{"rule":"in","key":{"entity":"t1","zone":"a"},"state":"firing","time":"1970-01-01T00:00:01.000Z","evidence":["t1#1"],"details":{}}"#,
            #"{"rule":"in","key":{"entity":"t1","zone":"b"},"state":"firing","time":"1970-01-01T00:00:02.000Z","evidence":["t1#2"],"details":{}}"#,
            #"{"rule":"out","key":{"entity":"t1","zone":"a"},"state":"firing","time":"1970-01-01T00:00:03.000Z","evidence":["t1#3"],"details":{}}"#,
            #"{"rule":"in","key":{"entity":"t1","zone":"a"},"state":"firing","time":"1970-01-01T00:00:04.000Z","evidence":["t1#4"],"details":{}}"#,
            #"{"rule":"in","key":{"entity":"t1","zone":"b"},"state":"firing","time":"1970-01-01T00:00:04.000Z","evidence":["t1#4"],"details":{}}"#,
        ])
    }

    @Test func selectorsOnEntitiesApply() {
        let rules = [Rule(id: "hz", purpose: "p", owner: "o", match: Selector(classes: ["truck"], tags: ["cargo": ["hazmat"]]), parameters: .enter)]
        let entities = [EntityInfo(id: "t1", kind: "truck", tags: ["cargo": "hazmat"]), EntityInfo(id: "t2", kind: "truck", tags: ["cargo": "food"])]
        let r = replay(zones: zones, entities: entities, rules: rules, lines: [pos("t1", 1, 1, 1), pos("t2", 2, 1, 1), pos("t3", 3, 1, 1)])
        #expect(r.alerts.count == 1 && r.alerts[0].contains("\"t1\""))
    }

    @Test func cooldownSuppressesEmissionOnlyAndReopensExactlyAtTheBoundary() {
        let rules = [Rule(id: "in", purpose: "p", owner: "o", cooldown: 10_000, parameters: .enter)]
        let r = replay(zones: zones, rules: rules, lines: [
            pos("t", 0, 1, 1), pos("t", 1000, 20, 20), pos("t", 5000, 1, 1), pos("t", 6000, 20, 20), pos("t", 10_000, 1, 1),
        ])
        #expect(r.alerts.count == 2)
        #expect(r.alerts[1].contains("00:00:10.000Z"))
        #expect(r.engine.stats.suppressedByCooldown == 1)
    }

    @Test func expiredRulesEmitNothingAtOrAfterExpiry() {
        let rules = [Rule(id: "in", purpose: "p", owner: "o", expires: 5000, parameters: .enter)]
        let r = replay(zones: zones, rules: rules, lines: [pos("a", 4999, 1, 1), pos("b", 5000, 1, 1), pos("c", 6000, 1, 1)])
        #expect(r.alerts.count == 1)
        #expect(r.engine.expiredRules.map(\.at) == [5000])
    }
}

@Suite struct SpeedTests {
    @Test func speedFiresStrictlyAboveTheLimitAndHandlesSameTimePositions() throws {
        let rules = [Rule(id: "fast", purpose: "p", owner: "o", parameters: .speed(maxKmh: 100))]
        // 0.01 degree of latitude is about 1111.95 m; in 36 s that is about 111 km/h.
        let r = replay(zones: [], rules: rules, lines: [
            pos("v", 0, 0, 0), pos("v", 36_000, 0, 0.01), pos("v", 36_000, 0, 0.01), pos("v", 36_000, 0, 0.02), pos("v", 100_000_000, 0, 0.03),
        ])
        #expect(r.alerts.count == 2)
        let first = try JSONSerialization.jsonObject(with: Data(r.alerts[0].utf8)) as! [String: Any]
        let details = first["details"] as! [String: Double]
        let d = Haversine.distance(0, 0, 0, 0.01)
        #expect(abs(details["distance_m"]! - d) <= 1e-9 * d)
        #expect(abs(details["kmh"]! - d / 1000 / (36_000.0 / 3_600_000)) < 1e-9)
        #expect(r.alerts[1].contains("\"kmh\":null"))
        #expect(first["evidence"] as! [String] == ["v#1", "v#2"])
    }
}

@Suite struct IdentityAndTimeTests {
    let zones = [square("a", "depot", 0, 0, 10, 10)]
    let rules = [Rule(id: "in", purpose: "p", owner: "o", parameters: .enter)]

    @Test func resentIdsAreDuplicatesAndAssignedIdsCountEveryArrival() {
        let r = replay(zones: zones, rules: rules, lines: [
            pos("t", 1, 20, 20, id: "x"), pos("t", 2, 20, 20), pos("t", 1, 20, 20, id: "x"), pos("t", 3, 20, 20, id: "t#2"), pos("t", 4, 1, 1),
        ])
        #expect(r.outcomes[0] == .accepted(.given(0)))
        guard case .duplicate = r.outcomes[2], case .duplicate = r.outcomes[3] else {
            Issue.record("expected duplicates: \(r.outcomes)")
            return
        }
        #expect(r.engine.stats.duplicates == 2)
        #expect(r.alerts.first?.contains("\"t#5\"") == true)
    }

    @Test func aGivenIdSpelledLikeAFutureAssignedIdMakesThatArrivalADuplicate() {
        let r = replay(zones: zones, rules: rules, lines: [pos("t", 1, 20, 20, id: "t#2"), pos("t", 2, 1, 1)])
        guard case .duplicate = r.outcomes[1] else {
            Issue.record("expected a duplicate: \(r.outcomes)")
            return
        }
        #expect(r.alerts.isEmpty)
    }

    @Test func lateEventsAreNotAppliedAndTheirIdsAreNotAccepted() {
        let r = replay(zones: zones, rules: rules, lines: [
            pos("t", 10_000, 20, 20), pos("u", 4000, 1, 1, id: "k"), pos("u", 6000, 1, 1, id: "k"),
        ], lateness: 5000)
        guard case .late = r.outcomes[1], case .accepted = r.outcomes[2] else {
            Issue.record("\(r.outcomes)")
            return
        }
        #expect(r.engine.stats.late == 1)
        #expect(r.alerts.count == 1 && r.alerts[0].contains("00:00:06.000Z"))
    }

    @Test func bufferedEventsApplyInTimeThenArrivalOrder() {
        let ordered = replay(zones: zones, rules: rules, lines: [pos("t", 1000, 1, 1), pos("t", 2000, 20, 20), pos("t", 3000, 1, 1)])
        let shuffled = replay(zones: zones, rules: rules, lines: [pos("t", 2000, 20, 20), pos("t", 1000, 1, 1), pos("t", 3000, 1, 1)], lateness: 1000)
        // Evidence ids differ (arrival numbering) but the transitions and times are the same.
        #expect(ordered.alerts.map { $0.replacingOccurrences(of: #""evidence":\[[^\]]*\]"#, with: "", options: .regularExpression) }
                == shuffled.alerts.map { $0.replacingOccurrences(of: #""evidence":\[[^\]]*\]"#, with: "", options: .regularExpression) })
    }

    @Test func timerQueueFiresInDeadlineThenInsertionOrder() {
        var q = TimerQueue()
        var rng = SplitMix64(seed: 3)
        var expected: [(Millis, Int32)] = []
        for i in 0..<2000 {
            let d = Millis(rng.next() % 50)
            q.schedule(deadline: d, rule: Int32(i), a: 0)
            expected.append((d, Int32(i)))
        }
        expected.sort { ($0.0, $0.1) < ($1.0, $1.1) }
        var got: [(Millis, Int32)] = []
        while let t = q.pop(upTo: 25) { got.append((t.deadline, t.rule)) }
        #expect(got.allSatisfy { $0.0 <= 25 })
        while let t = q.pop(upTo: .max) { got.append((t.deadline, t.rule)) }
        #expect(got.map(\.0) == expected.map(\.0) && got.map(\.1) == expected.map(\.1))
    }

    /// The calendar queue against a naive list: random pushes (into the bucket being consumed,
    /// earlier than it, far ahead, at the extremes) interleaved with pops up to a moving limit.
    @Test func timerQueueMatchesANaiveListUnderInterleavedPushesAndPops() {
        for seed in UInt64(1)...40 {
            var rng = SplitMix64(seed: seed)
            var q = TimerQueue()
            var naive: [(deadline: Millis, seq: Int32)] = []
            var limit: Millis = Millis(rng.next() % 5000) - 2500
            var seq: Int32 = 0
            var mismatches = 0
            for _ in 0..<3000 {
                let r = rng.next() % 100
                if r < 55 {
                    let d: Millis
                    switch rng.next() % 10 {
                    case 0: d = limit + Millis(rng.next() % 3)                 // due now or next
                    case 1: d = limit - Millis(rng.next() % 2000)              // already due (earlier bucket)
                    case 2: d = limit + Millis(rng.next() % 100_000_000)       // far ahead
                    case 3: d = rng.next() % 50 == 0 ? .max : limit + 1024     // extremes, bucket edges
                    default: d = limit + Millis(rng.next() % 5000)
                    }
                    q.schedule(deadline: d, rule: seq, a: 0)
                    naive.append((d, seq))
                    seq += 1
                } else {
                    if rng.next() % 4 == 0 { limit += Millis(rng.next() % 4000) }
                    let got = q.pop(upTo: limit)
                    var want: Int? = nil
                    for (i, t) in naive.enumerated() where t.deadline <= limit {
                        if let w = want, (naive[w].deadline, naive[w].seq) < (t.deadline, t.seq) { continue }
                        want = i
                    }
                    if let w = want {
                        if got?.rule != naive[w].seq || got?.deadline != naive[w].deadline { mismatches += 1 }
                        naive.remove(at: w)
                    } else if got != nil {
                        mismatches += 1
                    }
                }
                if q.count != naive.count { mismatches += 1 }
                if q.nextDeadline != naive.map(\.deadline).min() { mismatches += 1 }
            }
            // Drain everything.
            naive.sort { ($0.deadline, $0.seq) < ($1.deadline, $1.seq) }
            var rest: [Int32] = []
            while let t = q.pop(upTo: .max) { rest.append(t.rule) }
            #expect(rest == naive.map(\.seq), "seed \(seed)")
            #expect(mismatches == 0, "seed \(seed)")
        }
    }
}

/// A deliberately naive reference for enter, exit and speed: full zone scans, dictionaries,
/// and a final sort by the canonical order. No watermark (input is sorted).
struct NaiveReference {
    struct Out: Comparable {
        var time: Millis, rule: String, entity: String, zone: String, seq: Int, line: String
        static func < (a: Out, b: Out) -> Bool {
            func bytesLess(_ x: String, _ y: String) -> Bool { Array(x.utf8).lexicographicallyPrecedes(Array(y.utf8)) }
            if a.time != b.time { return a.time < b.time }
            if a.rule != b.rule { return bytesLess(a.rule, b.rule) }
            if a.entity != b.entity { return bytesLess(a.entity, b.entity) }
            if a.zone != b.zone { return bytesLess(a.zone, b.zone) }
            return a.seq < b.seq
        }
    }

    static func run(zones: [Zone], entities: [EntityInfo], rules: [Rule], events: [(String, Millis, Double, Double)]) -> [String] {
        var inside: [String: Set<String>] = [:]
        var last: [String: (Millis, Double, Double, String)] = [:]
        var counts: [String: Int] = [:]
        var out: [Out] = []
        var seq = 0
        let info = Dictionary(uniqueKeysWithValues: entities.map { ($0.id, $0) })
        func ts(_ t: Millis) -> String { EventTime.format(t) }
        for (e, t, x, y) in events {
            counts[e, default: 0] += 1
            let id = "\(e)#\(counts[e]!)"
            let ent = info[e] ?? EntityInfo(id: e)
            let now = Set(zones.filter { $0.shape.covers(x, y) }.map(\.id))
            let before = inside[e] ?? []
            inside[e] = now
            for r in rules where r.match.matches(ent) {
                switch r.parameters {
                case .enter, .exit:
                    let changed = r.kind == .enter ? now.subtracting(before) : before.subtracting(now)
                    for zid in changed.sorted() {
                        let z = zones.first { $0.id == zid }!
                        if let zs = r.zones, !zs.matches(id: z.id, class: z.category, tags: z.tags) { continue }
                        out.append(Out(time: t, rule: r.id, entity: e, zone: zid, seq: seq,
                                       line: "{\"rule\":\"\(r.id)\",\"key\":{\"entity\":\"\(e)\",\"zone\":\"\(zid)\"},\"state\":\"firing\",\"time\":\"\(ts(t))\",\"evidence\":[\"\(id)\"],\"details\":{}}"))
                        seq += 1
                    }
                case .speed(let v):
                    guard let p = last[e] else { continue }
                    let d = Haversine.distance(p.1, p.2, x, y)
                    var kmh: Double? = nil
                    if t == p.0 { if d <= 1 { continue } } else { kmh = d * 3600 / Double(t - p.0) }
                    if let k = kmh, !(k > v) { continue }
                    var text: [UInt8] = []
                    if let k = kmh { JSONText.appendNumber(k, to: &text) } else { text = Array("null".utf8) }
                    var dt: [UInt8] = []
                    JSONText.appendNumber(d, to: &dt)
                    out.append(Out(time: t, rule: r.id, entity: e, zone: "", seq: seq,
                                   line: "{\"rule\":\"\(r.id)\",\"key\":{\"entity\":\"\(e)\"},\"state\":\"firing\",\"time\":\"\(ts(t))\",\"evidence\":[\"\(p.3)\",\"\(id)\"],\"details\":{\"kmh\":\(String(decoding: text, as: UTF8.self)),\"distance_m\":\(String(decoding: dt, as: UTF8.self))}}"))
                    seq += 1
                default: break
                }
            }
            last[e] = (t, x, y, id)
        }
        return out.sorted().map(\.line)
    }
}

@Suite struct DifferentialTests {
    static func randomCase(seed: UInt64) -> ([Zone], [EntityInfo], [Rule], [(String, Millis, Double, Double)]) {
        var rng = SplitMix64(seed: seed)
        var zones: [Zone] = []
        for i in 0..<12 {
            let x = Double(rng.next() % 16), y = Double(rng.next() % 16)
            if i % 4 == 0 {
                zones.append(Zone(id: "c\(i)", category: i % 2 == 0 ? "depot" : "port", shape: .circle(lon: x, lat: y, radiusM: Double(rng.next() % 300_000 + 10_000))))
            } else {
                zones.append(square("z\(i)", i % 2 == 0 ? "depot" : "port", x, y, x + Double(rng.next() % 6 + 1), y + Double(rng.next() % 6 + 1)))
            }
        }
        let entities = (0..<6).map { EntityInfo(id: "e\($0)", kind: $0 % 2 == 0 ? "truck" : "vessel") }
        let rules = [
            Rule(id: "enter-all", purpose: "p", owner: "o", parameters: .enter),
            Rule(id: "enter-depot-trucks", purpose: "p", owner: "o", match: Selector(classes: ["truck"]), zones: Selector(classes: ["depot"]), parameters: .enter),
            Rule(id: "exit-ports", purpose: "p", owner: "o", zones: Selector(classes: ["port"]), parameters: .exit),
            Rule(id: "speed", purpose: "p", owner: "o", parameters: .speed(maxKmh: 5000)),
        ]
        var events: [(String, Millis, Double, Double)] = []
        var t: Millis = 0
        for _ in 0..<400 {
            t += Millis(rng.next() % 3) * 1000   // ties in time happen
            // Grid points (edges and vertices hit exactly) and random points.
            let x = rng.next() % 2 == 0 ? Double(rng.next() % 44) / 2 : Double.random(in: -1...22, using: &rng)
            let y = rng.next() % 2 == 0 ? Double(rng.next() % 44) / 2 : Double.random(in: -1...22, using: &rng)
            events.append(("e\(rng.next() % 7)", t, x, y))
        }
        return (zones, entities, rules, events)
    }

    @Test(arguments: Array(1...40) as [UInt64])
    func engineMatchesTheNaiveReference(seed: UInt64) {
        let (zones, entities, rules, events) = Self.randomCase(seed: seed)
        let lines = events.map { pos($0.0, $0.1, $0.2, $0.3) }
        let engine = replay(zones: zones, entities: entities, rules: rules, lines: lines).alerts
        let naive = NaiveReference.run(zones: zones, entities: entities, rules: rules, events: events)
        #expect(engine.count == naive.count)
        if let i = (0..<min(engine.count, naive.count)).first(where: { engine[$0] != naive[$0] }) {
            Issue.record("first difference at alert \(i):\n engine: \(engine[i])\n naive:  \(naive[i])")
        }
        #expect(!naive.isEmpty)
    }

    @Test(arguments: [(1, 1000), (2, 2000), (3, 5000), (4, 500)] as [(UInt64, Millis)])
    func outOfOrderWithinLatenessGivesTheAlertsOfTheStablySortedInput(seed: UInt64, lateness: Millis) {
        let (zones, entities, rules, events) = Self.randomCase(seed: seed)
        var rng = SplitMix64(seed: seed &+ 1000)
        // Shuffle: sort by time + jitter in [0, L]; ids are given so evidence is comparable.
        let withIds = events.enumerated().map { (i, e) in (e, "id\(i)") }
        let shuffled = withIds.map { ($0, $0.0.1 + Millis(rng.next() % UInt64(lateness + 1))) }
            .enumerated().sorted { ($0.element.1, $0.offset) < ($1.element.1, $1.offset) }.map(\.element.0)
        let stablySorted = shuffled.enumerated().sorted { ($0.element.0.1, $0.offset) < ($1.element.0.1, $1.offset) }.map(\.element)
        let a = replay(zones: zones, entities: entities, rules: rules, lines: shuffled.map { pos($0.0.0, $0.0.1, $0.0.2, $0.0.3, id: $0.1) }, lateness: lateness)
        let b = replay(zones: zones, entities: entities, rules: rules, lines: stablySorted.map { pos($0.0.0, $0.0.1, $0.0.2, $0.0.3, id: $0.1) })
        #expect(a.engine.stats.late == 0)
        #expect(a.alerts == b.alerts)
        #expect(!a.alerts.isEmpty)
    }

    @Test func replayOfAGeneratedWorkloadIsDeterministic() throws {
        var cfg = Workload.Config()
        cfg.zones = 300; cfg.entities = 400; cfg.events = 20_000; cfg.seed = 11
        let w = Workload(cfg)
        let rules = try RuleFile.decode(Workload.geofenceRulesYAML, file: "r").get()
        var lines: [String] = []
        w.forEachEventLine { lines.append($0) }
        let a = replay(zones: w.zones, entities: w.entities, rules: rules, lines: lines).alerts
        let b = replay(zones: w.zones, entities: w.entities, rules: rules, lines: lines).alerts
        #expect(a == b)
        #expect(a.count > 50)
        // And through the shuffler with lateness: same alerts (ids assigned per arrival are
        // compared without evidence since arrival numbering follows arrival order).
        let shuffledBytes = Workload.shuffleByTime(Array(lines.joined(separator: "\n").utf8), within: 3000, seed: 5)
        let shuffled = String(decoding: shuffledBytes, as: UTF8.self).split(separator: "\n").map(String.init)
        let c = replay(zones: w.zones, entities: w.entities, rules: rules, lines: shuffled, lateness: 3000).alerts
        let strip = { (s: String) in s.replacingOccurrences(of: #""evidence":\[[^\]]*\]"#, with: "", options: .regularExpression) }
        #expect(c.map(strip) == a.map(strip))
    }
}

@Suite struct IntMapTests {
    @Test func behavesLikeADictionaryUnderRandomInsertsUpdatesAndRemovals() {
        var rng = SplitMix64(seed: 17)
        var map = IntMap<Int>()
        var reference: [UInt64: Int] = [:]
        for step in 0..<50_000 {
            // A small key space so that clusters, wrap-around and backward shifts all happen.
            let k = rng.next() % 300 &* (rng.next() % 2 == 0 ? 1 : 0x1_0000_0001)
            switch rng.next() % 4 {
            case 0, 1:
                map.insert(k, step)
                reference[k] = step
            case 2:
                #expect(map.remove(k) == reference.removeValue(forKey: k))
            default:
                let got = map.update(k, default: { -1 }) { v -> Int in v += 1; return v }
                reference[k, default: -1] += 1
                #expect(got == reference[k])
            }
            if step % 997 == 0 {
                #expect(map.count == reference.count)
                for (rk, rv) in reference { #expect(map[rk] == rv) }
            }
        }
        #expect(Dictionary(uniqueKeysWithValues: map.entries.map { ($0.key, $0.value) }) == reference)
    }

    /// Tables run up to 4/5 full: long probe runs, wrap-around and backward shifts at that
    /// load, against a dictionary; and the table is the smallest power of two (at least 8)
    /// that holds its entries at most 4/5 full, so the memory figure cannot silently double.
    @Test func staysExactAndSmallUpToFourFifthsFull() {
        var rng = SplitMix64(seed: 29)
        var map = IntMap<Double>()
        var reference: [UInt64: Double] = [:]
        var peak = 0
        for round in 0..<6 {
            // Grow to a target count, then remove about half at random and refill.
            let target = [700, 3_276, 3_277, 13_107, 20_000, 52_428][round]
            while reference.count < target {
                let k = rng.next() % 200_000 &* 0x9E37   // clustered keys
                let v = Double(rng.next() % 1_000)
                map.insert(k, v)
                reference[k] = v
            }
            peak = max(peak, reference.count)
            var expected = 8
            while expected * 4 < peak * 5 { expected <<= 1 }
            #expect(map.slots.count == expected, "\(peak) entries in \(map.slots.count) slots")
            for k in Array(reference.keys) where rng.next() % 2 == 0 {
                #expect(map.remove(k) == reference.removeValue(forKey: k))
            }
            #expect(map.count == reference.count)
            for (k, v) in reference { #expect(map[k] == v) }
            for _ in 0..<2_000 { #expect(map[rng.next() % 200_000 &* 0x9E37 &+ 1] == nil) }
        }
        #expect(Dictionary(uniqueKeysWithValues: map.entries.map { ($0.key, $0.value) }) == reference)
    }
}

/// `HeadTable` against a dictionary. Keys come in families that share one tag (built with the
/// hash multiplier's inverse), so a matching tag is often not the key looked for and must be
/// confirmed through the ids' records; ids are filed under a key before their records say so,
/// as the proximity grid does.
@Suite struct HeadTableTests {
    struct Records: HeadKeys {
        var keyOf: [Int32: UInt64] = [:]
        func headKey(_ id: Int32) -> UInt64 { keyOf[id]! }
    }

    /// The inverse of the tag's multiplier modulo 2^64 (Newton's iteration).
    static let inverse: UInt64 = {
        let c: UInt64 = 0x9E37_79B9_7F4A_7C15
        var x = c
        for _ in 0..<6 { x = x &* (2 &- c &* x) }
        return x
    }()

    /// Key number `member` of family `family`: every member of a family has the tag `family`.
    static func key(family: UInt64, member: UInt64) -> UInt64 { inverse &* (family << 32 | member) }

    @Test func familiesShareATag() {
        #expect(HeadTableTests.inverse &* 0x9E37_79B9_7F4A_7C15 == 1)
        for f in [UInt64(0), 5, 0xFFFF_FFFF] {
            let tags = Set((0..<50 as Range<UInt64>).map { HeadTable.tag(Self.key(family: f, member: $0)) })
            #expect(tags == [UInt32(f)])
        }
    }

    @Test(arguments: [3, 11] as [UInt64])
    func behavesLikeADictionaryWithSharedTags(seed: UInt64) {
        var rng = SplitMix64(seed: seed)
        var table = HeadTable()
        var records = Records()
        var reference: [UInt64: Int32] = [:]
        var nextId: Int32 = 0
        var peak = 0
        // Few families, many members: long clusters, wrap-around, backward shifts and tag
        // matches on other keys.
        func randomKey() -> UInt64 {
            Self.key(family: rng.next() % 40 &* 0x0400_0000 &+ rng.next() % 3, member: rng.next() % 60)
        }
        for step in 0..<60_000 {
            let k = randomKey()
            switch rng.next() % 5 {
            case 0, 1, 2:
                // A new id heads k (its record is written after it is filed).
                let id = nextId
                nextId += 1
                let old = table.exchange(k, id, records)
                #expect(old == (reference[k] ?? -1))
                records.keyOf[id] = k
                reference[k] = id
            case 3:
                #expect(table.remove(k, records) == (reference.removeValue(forKey: k) ?? -1))
            default:
                #expect(table.id(k, records) == (reference[k] ?? -1))
            }
            peak = max(peak, reference.count)
            if step % 1_999 == 0 {
                #expect(table.count == reference.count)
                for (rk, rv) in reference { #expect(table.id(rk, records) == rv) }
            }
        }
        #expect(peak > 1_000)
        var expected = 8
        while expected * 4 < peak * 5 { expected <<= 1 }
        #expect(table.slots.count == expected)
        #expect(Set(table.ids) == Set(reference.values))
        #expect(table.ids.count == reference.count)
        for (rk, rv) in reference { #expect(table.id(rk, records) == rv) }
    }
}

@Suite struct ProximityEdgeTests {
    @Test(arguments: [
        ((179.9999, 0.0), (-179.9999, 0.0)),      // across the antimeridian
        ((0.0, 89.9999), (180.0, 89.9999)),       // across the pole
        ((12.5, -45.0), (12.5003, -45.0)),
    ])
    func pairsAreFoundAcrossTheAntimeridianAndThePoles(a: (Double, Double), b: (Double, Double)) {
        let d = Haversine.distance(a.0, a.1, b.0, b.1)
        #expect(d < 40)
        let rules = [Rule(id: "near", purpose: "p", owner: "o", parameters: .proximity(distanceM: 40, within: 60_000, other: nil))]
        let r = replay(zones: [], rules: rules, lines: [pos("x", 0, a.0, a.1), pos("y", 1000, b.0, b.1)], until: 100_000)
        #expect(r.alerts.count == 2)
        #expect(r.alerts.first?.contains("\"firing\"") == true)
        // Resolved when x's position (time 0) is 60 s old.
        #expect(r.alerts.last?.contains(#""state":"resolved","time":"1970-01-01T00:01:00.000Z""#) == true)
    }
}

@Suite struct ManySelectorsTests {
    @Test func moreThan64DistinctSelectorsStillMatchTheRightEntities() {
        let zones = [square("a", "depot", 0, 0, 10, 10)]
        // 150 rules, each selecting one entity by id: selectors 64 and above live outside the
        // entity record's inline bits.
        let rules = (0..<150).map { i in
            Rule(id: "r\(i)", purpose: "p", owner: "o", match: Selector(ids: ["e\(i)"]), parameters: .enter)
        }
        let lines = (0..<150).map { pos("e\($0)", Millis($0), 1, 1) }
        let r = replay(zones: zones, rules: rules, lines: lines)
        #expect(r.alerts.count == 150)
        for (i, a) in r.alerts.enumerated() {
            #expect(a.contains("\"rule\":\"r\(i)\",\"key\":{\"entity\":\"e\(i)\""), "\(a)")
        }
    }
}
