import Foundation
import Testing
import TriplineTesting
import TriplineYAML
@testable import TriplineCore

/// `enter_after` and `exit_margin_m`: hand-derived traces, the differential test against the
/// naive reference (which recomputes each steadied membership from the whole history and
/// measures boundary distances by sampling), the defaults being spec 1.2 exactly, the
/// boundary-distance search, and the rule file's errors.
@Suite struct ZoneJitterTests {
    // Small zones near 50° N (a degree of longitude is about 71.5 km there).
    static let zones: [Zone] = {
        func poly(_ id: String, _ cat: String, _ shell: [(Double, Double)], holes: [[(Double, Double)]] = []) -> Zone {
            Zone(id: id, category: cat, shape: .polygons([Polygon(shell: Ring(points: shell), holes: holes.map { Ring(points: $0) })]))
        }
        return [
            poly("sq", "depot", [(10.00, 50.00), (10.02, 50.00), (10.02, 50.02), (10.00, 50.02), (10.00, 50.00)]),
            poly("ring", "depot", [(10.03, 50.00), (10.06, 50.00), (10.06, 50.03), (10.03, 50.03), (10.03, 50.00)],
                 holes: [[(10.04, 50.01), (10.05, 50.01), (10.05, 50.02), (10.04, 50.02), (10.04, 50.01)]]),
            poly("tri", "port", [(10.00, 50.03), (10.02, 50.03), (10.01, 50.05), (10.00, 50.03)]),
            Zone(id: "circ", category: "port", shape: .circle(lon: 10.045, lat: 50.045, radiusM: 800)),
            poly("area", "area", [(10.00, 50.00), (10.06, 50.00), (10.06, 50.05), (10.00, 50.05), (10.00, 50.00)]),
        ]
    }()
    static let margins: [Double] = [150, 300]

    static let rulesYAML = """
    rules:
      - {id: enter-plain, kind: enter, purpose: p, owner: o, severity: low, match: {}}
      - {id: exit-plain, kind: exit, purpose: p, owner: o, severity: low, match: {}}
      - {id: enter-3, kind: enter, purpose: p, owner: o, severity: low, match: {}, enter_after: 3}
      - {id: enter-2s, kind: enter, purpose: p, owner: o, severity: low, match: {}, zones: {category: depot}, enter_after: 2s}
      - {id: exit-m, kind: exit, purpose: p, owner: o, severity: low, match: {}, exit_margin_m: 150}
      - {id: enter-both, kind: enter, purpose: p, owner: o, severity: low, match: {}, enter_after: 3, exit_margin_m: 150}
      - {id: exit-both, kind: exit, purpose: p, owner: o, severity: low, match: {}, enter_after: 3, exit_margin_m: 150, cooldown: 2s}
      - {id: dwell-m, kind: dwell, purpose: p, owner: o, severity: low, match: {}, min: 3s, exit_margin_m: 300}
      - {id: dwell-2, kind: dwell, purpose: p, owner: o, severity: low, match: {}, zones: {category: port}, min: 2s, enter_after: 2}
      - {id: crowd-m, kind: gathering, purpose: p, owner: o, severity: low, match: {}, min_count: 2, window: 3s, exit_margin_m: 150}
      - {id: crowd-2s, kind: gathering, purpose: p, owner: o, severity: low, match: {}, min_count: 2, window: 4s, enter_after: 1500ms}
      - {id: seq-m, kind: sequence, purpose: p, owner: o, severity: low, match: {}, within: 20s, enter_after: 2, exit_margin_m: 300, steps: [{enter: {category: depot}}, {exit: {category: depot}}]}
      - {id: seq-not, kind: sequence, purpose: p, owner: o, severity: low, match: {}, within: 8s, exit_margin_m: 150, steps: [{exit: {}}, {absent: {enter: {}}}, {event: {type: b}}]}

    """

    static let rules: [Rule] = {
        var rs = try! RuleFile.decode(rulesYAML, file: "rules.yaml").get()
        // A rule given the default steadying in code: the naive reference runs a view for it,
        // which must equal the plain membership.
        var d = rs[0]
        d.id = "enter-default"
        d.jitter = ZoneJitter()
        rs.append(d)
        var x = rs[1]
        x.id = "exit-default"
        x.jitter = ZoneJitter(enterAfter: .fixes(1), exitMarginM: 0)
        rs.append(x)
        return rs
    }()

    /// Random walks of five entities around the zones' edges (steps up to about 150 m, some
    /// jumps), with events `a` and `b`. A position whose sampled distance to a boundary is
    /// within 3 % of a margin is moved, so that no answer hangs on the last metre.
    static func events(seed: UInt64, count: Int) -> [NaiveEngine.Ev] {
        var rng = SplitMix64(seed: seed)
        func unit() -> Double { Double(rng.next() % 1_000_001) / 1_000_000 }
        var at: [(Double, Double)] = (0..<5).map { _ in (9.995 + 0.07 * unit(), 49.995 + 0.06 * unit()) }
        var t: Millis = 1_000_000
        var out: [NaiveEngine.Ev] = []
        while out.count < count {
            t += Millis(rng.next() % 3) * 500
            let e = Int(rng.next() % 5)
            var ev = NaiveEngine.Ev(entity: "e\(e)", time: t, type: "position")
            if rng.next() % 6 == 0 {
                ev.type = rng.next() % 2 == 0 ? "a" : "b"
            } else {
                var (lon, lat) = at[e]
                while true {
                    if rng.next() % 12 == 0 {
                        lon = 9.995 + 0.07 * unit(); lat = 49.995 + 0.06 * unit()
                    } else {
                        lon = at[e].0 + (unit() - 0.5) * 0.004; lat = at[e].1 + (unit() - 0.5) * 0.0027
                    }
                    let ambiguous = zones.contains { z in
                        guard !z.shape.covers(lon, lat) else { return false }
                        let d = NaiveEngine.sampledBoundaryDistance(z.shape, lon, lat)
                        return margins.contains { abs(d - $0) < 0.03 * $0 }
                    }
                    if !ambiguous { break }
                }
                at[e] = (lon, lat)
                (ev.lon, ev.lat) = (lon, lat)
            }
            out.append(ev)
        }
        var counts: [String: Int] = [:]
        for i in out.indices {
            counts[out[i].entity, default: 0] += 1
            out[i].id = "\(out[i].entity)#\(counts[out[i].entity]!)"
        }
        return out
    }

    static func line(_ ev: NaiveEngine.Ev) -> String {
        ev.type == "position"
            ? "{\"entity\":\"\(ev.entity)\",\"time\":\(ev.time),\"type\":\"position\",\"lon\":\(ev.lon),\"lat\":\(ev.lat)}"
            : "{\"entity\":\"\(ev.entity)\",\"time\":\(ev.time),\"type\":\"\(ev.type)\"}"
    }

    static func ruleOf(_ line: String) -> String { String(line.split(separator: "\"")[3]) }

    /// Engine against the naive reference over 24 random streams; every rule fires, and the
    /// steadying changes what fires (fewer entries and exits than the plain rules).
    @Test func steadiedMembershipMatchesTheNaiveReference() {
        var perRule: [String: Int] = [:]
        var failing: [UInt64] = []
        for seed in UInt64(1)...24 {
            let events = Self.events(seed: seed, count: 260)
            let until = events.last!.time + 20_000
            var naive = NaiveEngine(zones: Self.zones, entities: [], rules: Self.rules)
            naive.run(events, until: until)
            let expected = naive.lines()
            let got = replay(zones: Self.zones, rules: Self.rules, lines: events.map(Self.line), until: until).alerts
            for l in expected { perRule[Self.ruleOf(l), default: 0] += 1 }
            if let d = firstDifference(got, expected) {
                if failing.isEmpty { Issue.record(Comment(rawValue: "seed \(seed): " + d)) }
                failing.append(seed)
            }
        }
        #expect(failing.isEmpty, "streams with differences: \(failing)")
        for r in Self.rules { #expect(perRule[r.id, default: 0] >= 10, "\(r.id): \(perRule[r.id, default: 0]) alerts") }
        #expect(perRule["enter-default"] == perRule["enter-plain"])
        #expect(perRule["exit-default"] == perRule["exit-plain"])
        #expect(perRule["enter-3", default: 0] < perRule["enter-plain", default: 0])
        #expect(perRule["exit-m", default: 0] < perRule["exit-plain", default: 0])
        print("steadied membership, 24 streams: " + Self.rules.map { "\($0.id) \(perRule[$0.id, default: 0])" }.joined(separator: ", "))
    }

    /// A rule with the default steadying, given in code, gives exactly the alerts of the plain
    /// rule (spec 1.2), in the engine itself.
    @Test func theDefaultsAreSpecOneTwoExactly() {
        let plain = Array(AllKindsDifferentialTests.rules)
        var steadied = plain
        for i in steadied.indices where steadied[i].kind.takesJitter { steadied[i].jitter = ZoneJitter() }
        #expect(steadied.filter { $0.jitter != nil }.count > 10)
        for seed in UInt64(1)...6 {
            let events = MixedStreams.events(seed: seed)
            let until = events.last!.time + 20_000
            let a = replay(zones: MixedStreams.zones, entities: MixedStreams.entities, rules: plain, lines: events.map(MixedStreams.line), until: until).alerts
            let b = replay(zones: MixedStreams.zones, entities: MixedStreams.entities, rules: steadied, lines: events.map(MixedStreams.line), until: until).alerts
            #expect(a == b)
            #expect(a.count > 30)
        }
    }

    /// A trace along the east edge of `sq` (x = 10.02; at 50.01° N, 0.0007° of longitude is
    /// 50 m), worked out by hand.
    @Test func aJitteringTraceWorkedByHand() throws {
        let rules = try RuleFile.decode("""
        rules:
          - {id: enter-plain, kind: enter, purpose: p, owner: o, severity: low, match: {}, zones: {ids: [sq]}}
          - {id: exit-plain, kind: exit, purpose: p, owner: o, severity: low, match: {}, zones: {ids: [sq]}}
          - {id: enter-3, kind: enter, purpose: p, owner: o, severity: low, match: {}, zones: {ids: [sq]}, enter_after: 3}
          - {id: enter-30s, kind: enter, purpose: p, owner: o, severity: low, match: {}, zones: {ids: [sq]}, enter_after: 30s}
          - {id: exit-100m, kind: exit, purpose: p, owner: o, severity: low, match: {}, zones: {ids: [sq]}, exit_margin_m: 100}
        """, file: "r.yaml").get()
        let trace: [(Int, Double)] = [(0, 10.01), (10, 10.0207), (20, 10.019), (30, 10.0195), (40, 10.0207), (50, 10.0235),
                                      (60, 10.01), (70, 10.01), (80, 10.01), (90, 10.01)]
        let lines = trace.map { "{\"entity\":\"t1\",\"time\":\(1_000_000 + $0.0 * 1000),\"type\":\"position\",\"lon\":\($0.1),\"lat\":50.01}" }
        let got = replay(zones: Self.zones, rules: rules, lines: lines).alerts.map { l -> String in
            let o = try! JSONSerialization.jsonObject(with: Data(l.utf8)) as! [String: Any]
            let t = (try! EventTime.parseRFC3339(o["time"] as! String).get() - 1_000_000) / 1000
            return "\(o["rule"]!) \(t)s \((o["evidence"] as! [String]).joined(separator: ","))"
        }
        #expect(got == [
            "enter-plain 0s t1#1",
            "exit-plain 10s t1#2",
            "enter-plain 20s t1#3",
            "exit-plain 40s t1#5",
            "exit-100m 50s t1#6",
            "enter-plain 60s t1#7",
            "enter-3 80s t1#7,t1#9",
            "enter-30s 90s t1#7,t1#10",
        ])
        // The distances the trace relies on.
        let sq = Self.zones[0].shape
        #expect(abs(BoundaryDistance.distance(sq, lon: 10.0207, lat: 50.01) - 50.0) < 0.5)
        #expect(abs(BoundaryDistance.distance(sq, lon: 10.0235, lat: 50.01) - 250.2) < 0.5)
    }

    /// The boundary search against sampling, on random points and every zone shape (holes and
    /// a circle included), and on long edges of a real-sized polygon.
    @Test func boundaryDistanceMatchesSampling() {
        var rng = SplitMix64(seed: 77)
        func unit() -> Double { Double(rng.next() % 1_000_001) / 1_000_000 }
        var checked = 0
        for _ in 0..<400 {
            let lon = 9.99 + 0.08 * unit(), lat = 49.99 + 0.07 * unit()
            for z in Self.zones {
                let exact = BoundaryDistance.distance(z.shape, lon: lon, lat: lat)
                let sampled = NaiveEngine.sampledBoundaryDistance(z.shape, lon, lat)
                // Sampling 512 points of an edge up to 5.6 km long (spacing 11 m) overshoots by
                // at most spacing² / 8d (0.15 m at 100 m).
                #expect(exact <= sampled + 1e-6 && sampled - exact < 0.02 + 16.0 / max(exact, 1), "\(z.id) \(lon) \(lat): \(exact) against \(sampled)")
                // (The margin is asked only of positions outside the zone.)
                for m in [50.0, 400, 2000] where abs(exact - m) > 0.01 && !z.shape.covers(lon, lat) {
                    #expect(BoundaryDistance.within(z.shape, lon: lon, lat: lat, margin: m) == (exact <= m))
                }
                checked += 1
            }
        }
        // A long, slanted edge: the nearest point is well inside it, not at a vertex.
        let big = ZoneShape.polygons([Polygon(shell: Ring(points: [(-20, 30), (25, 55), (30, 20), (-20, 30)]), holes: [])])
        for _ in 0..<20 {
            let lon = -20 + 45 * unit(), lat = 30 + 25 * unit() + 1
            let exact = BoundaryDistance.distance(big, lon: lon, lat: lat)
            // 100,000 samples per edge of up to 4,700 km: spacing 47 m.
            var sampled = Double.infinity
            let v: [(Double, Double)] = [(-20, 30), (25, 55), (30, 20), (-20, 30)]
            for e in 0..<3 {
                for k in 0...100_000 {
                    let t = Double(k) / 100_000
                    sampled = min(sampled, Haversine.distance(lon, lat, v[e].0 + t * (v[e + 1].0 - v[e].0), v[e].1 + t * (v[e + 1].1 - v[e].1)))
                }
            }
            #expect(exact <= sampled + 1e-6 && sampled - exact < 0.05, "\(lon) \(lat): \(exact) against \(sampled)")
        }
        #expect(checked == 2000)
    }

    /// Errors name the field and say what to write; defaults normalise; the encoder writes
    /// what the decoder reads.
    @Test func ruleFileFieldsAndErrors() throws {
        func errors(_ body: String) -> [String] {
            switch RuleFile.decode("rules:\n  - {id: r, purpose: p, owner: o, severity: low, match: {}, \(body)}\n", file: "r.yaml") {
            case .success: return []
            case .failure(let e): return e.errors.map { "\($0.location?.pointer ?? "") \($0.message)" }
            }
        }
        #expect(errors("kind: threshold, metric: m, above: 1, enter_after: 2").first?.hasPrefix("/rules/0/enter_after rule \"r\": \"enter_after\" steadies zone membership and applies only to enter, exit, dwell, gathering and sequence rules") == true)
        #expect(errors("kind: enter, enter_after: 0").first?.contains("/rules/0/enter_after") == true)
        #expect(errors("kind: enter, enter_after: 0").first?.contains("at least 1") == true)
        #expect(errors("kind: enter, enter_after: 1001").first?.contains("at most 1000 positions") == true)
        #expect(errors("kind: enter, enter_after: 2.5").first?.contains("whole number") == true)
        #expect(errors("kind: enter, enter_after: 0s").first?.contains("greater than zero") == true)
        #expect(errors("kind: enter, enter_after: true").first?.contains("a whole number of consecutive inside positions (such as 3) or a duration") == true)
        #expect(errors("kind: exit, exit_margin_m: -1").first?.hasPrefix("/rules/0/exit_margin_m") == true)
        #expect(errors("kind: exit, exit_margin_m: 100001").first?.contains("from 0 to 100000") == true)
        #expect(errors("kind: exit, exit_margin_m: '50'").first?.contains("must be a number") == true)
        #expect(errors("kind: sequence, within: 5s, exit_margin_m: 50, steps: [{event: {type: a}}, {event: {type: b}}]").first?.contains("this sequence has none") == true)
        #expect(errors("kind: sequence, within: 5s, exit_margin_m: 50, steps: [{event: {type: a}}, {absent: {exit: {}}}, {event: {type: b}}]").isEmpty)
        #expect(errors("kind: gathering, min_count: 2, window: 1m, enter_after: 2m, exit_margin_m: 25.5").isEmpty)
        #expect(errors("kind: dwell, min: 1m, exit_margin: 25").first?.contains("exit_margin") == true)

        let decoded = try RuleFile.decode(Self.rulesYAML, file: "r.yaml").get()
        #expect(decoded[2].jitter == ZoneJitter(enterAfter: .fixes(3)))
        #expect(decoded[3].jitter == ZoneJitter(enterAfter: .duration(2000)))
        #expect(decoded[4].jitter == ZoneJitter(exitMarginM: 150))
        #expect(decoded[0].jitter == nil)
        let one = try RuleFile.decode("rules:\n  - {id: r, kind: enter, purpose: p, owner: o, severity: low, match: {}, enter_after: 1, exit_margin_m: 0}\n", file: "r.yaml").get()
        #expect(one[0].jitter == nil)
        let again = try RuleCodec.decodeJSON(RuleEncoder.file(decoded), file: "r.json").get()
        #expect(again == decoded)
    }
}
