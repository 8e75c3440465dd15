import Foundation
import Testing
import TriplineTesting
import TriplineYAML
@testable import TriplineCore

/// Zone edits: the transitions a created, changed or deleted zone causes at the change
/// (docs/rules.md, "Zone edits"), against a brute-force reference on random edits, and a
/// trace worked out by hand for dwell, steadied membership and deletion.
@Suite struct ZoneEditTests {
    /// A pipeline on `zones` (with `retired` ones) fed `lines` (event numbers from 1).
    static func run(_ zones: [Zone], retired: [Zone] = [], rules: [Rule], lines: [String]) throws -> Pipeline {
        let p = Pipeline(zones: zones, retiredZones: retired, entities: [], rules: rules)
        for (i, l) in lines.enumerated() {
            var s = l
            let ev = try s.withUTF8 { p.decode($0, number: i + 1) }.get()
            _ = p.ingest(ev)
        }
        return p
    }

    /// The engine before the change (old zones) and the one rebuilt on the new zones, as a
    /// server does; returns the rebuilt pipeline after the edits were applied, its alerts
    /// before the change dropped.
    static func change(from old: [Zone], to new: [Zone], rules: [Rule], lines: [String], edits: [ZoneEdit]) throws -> Pipeline {
        let before = try run(old, rules: rules, lines: lines)
        let retired = old.filter { o in !new.contains { $0.id == o.id } }
        let after = try run(new, retired: retired, rules: rules, lines: lines)
        after.discardAlerts()
        after.applyZoneEdits(edits, previous: before)
        after.closeOpenAlerts()
        return after
    }

    static func object(_ line: String) -> [String: Any] {
        try! JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
    }

    static let plainRules = try! RuleFile.decode("""
    rules:
      - {id: enter-all, kind: enter, purpose: p, owner: o, severity: low, match: {}}
      - {id: exit-all, kind: exit, purpose: p, owner: o, severity: low, match: {}}
      - {id: enter-depot, kind: enter, purpose: p, owner: o, severity: low, match: {}, zones: {category: depot}}
      - {id: exit-depot, kind: exit, purpose: p, owner: o, severity: low, match: {}, zones: {category: depot}}
      - {id: exit-e1, kind: exit, purpose: p, owner: o, severity: low, match: {ids: [e1]}}
    """, file: "rules.yaml").get()

    /// Random edits of the zones of `ZoneJitterTests` (moved, grown or shrunk, category
    /// swapped, deleted, unchanged; new squares created) after random walks: the transitions
    /// are exactly those the brute-force comparison of each entity's latest position against
    /// the old and the new shapes gives, at the change's time, with the edit's version.
    @Test func transitionsMatchABruteForceComparison() throws {
        var total = 0
        var byChange: [String: Int] = [:]
        for seed in UInt64(1)...40 {
            var rng = SplitMix64(seed: seed &* 7919)
            func unit() -> Double { Double(rng.next() % 1_000_001) / 1_000_000 }
            let events = ZoneJitterTests.events(seed: seed, count: 120)
            let lines = events.map(ZoneJitterTests.line)
            let old = ZoneJitterTests.zones
            var new: [Zone] = []
            var edits: [ZoneEdit] = []
            for z in old {
                let version = Int(rng.next() % 9) + 2
                var n = z
                switch rng.next() % 5 {
                case 0:
                    new.append(z)
                    continue
                case 1:
                    let dx = (unit() - 0.5) * 0.02, dy = (unit() - 0.5) * 0.02
                    n.shape = Self.map(z.shape) { ($0 + dx, $1 + dy) }
                case 2:
                    n.category = z.category == "depot" ? "port" : "depot"
                case 3:
                    edits.append(ZoneEdit(zone: z.id, version: version, change: .deleted))
                    continue
                default:
                    let f = 0.5 + unit()
                    let (cx, cy) = Self.centre(z.shape)
                    n.shape = Self.scaled(z.shape, f, cx, cy)
                }
                new.append(n)
                edits.append(ZoneEdit(zone: z.id, version: version, change: .updated))
            }
            for i in 0..<Int(rng.next() % 3) {
                let x = 9.995 + 0.06 * unit(), y = 49.995 + 0.05 * unit(), s = 0.005 + 0.02 * unit()
                new.append(square("new\(i)", rng.next() % 2 == 0 ? "depot" : "port", x, y, x + s, y + s))
                edits.append(ZoneEdit(zone: "new\(i)", version: 1, change: .created))
            }
            let after = try Self.change(from: old, to: new, rules: Self.plainRules, lines: lines, edits: edits)
            var named: [NamedAlert] = []
            after.drainAlerts(into: &named)
            let got = named.compactMap { a -> String? in
                let o = Self.object(a.line)
                guard let d = o["details"] as? [String: Any], let change = (d["zone_edit"] as? [String])?.first else { return nil }
                #expect(a.time == events.last!.time, "transitions are at the change (the watermark)")
                return "\(a.rule) \(a.entity!) \(a.zone!) \(change) \(d["zone_version"] as! Double)"
            }.sorted()

            // Brute force: each entity's latest position against the old and the new shape
            // of each edited zone, through each rule's zone selector.
            var last: [String: (Double, Double, String)] = [:]
            for e in events where e.type == "position" { last[e.entity] = (e.lon, e.lat, e.id) }
            var expected: [String] = []
            for (entity, (x, y, _)) in last {
                for e in edits {
                    let o = old.first { $0.id == e.zone }, n = new.first { $0.id == e.zone }
                    for r in Self.plainRules {
                        if !r.match.matches(id: entity, class: "", tags: [:]) { continue }
                        func inside(_ z: Zone?) -> Bool {
                            guard let z, z.shape.covers(x, y) else { return false }
                            return r.zones?.matches(id: z.id, class: z.category, tags: z.tags) ?? true
                        }
                        let was = inside(o), now = inside(n)
                        let fires = r.kind == .enter ? now && !was : was && !now
                        if fires { expected.append("\(r.id) \(entity) \(e.zone) \(e.change.rawValue) \(Double(e.version))") }
                    }
                }
            }
            expected.sort()
            // An entity whose latest position is at the change's very time already crossed on
            // the new zones by that event: the new catalog's alert at that time reports it, and
            // the edit does not repeat it.
            let plain = Set(named.filter { !$0.line.contains("zone_edit") && $0.time == events.last!.time }.map { "\($0.rule) \($0.entity ?? "") \($0.zone ?? "")" })
            let reportedByEvent = expected.filter { x in
                let f = x.split(separator: " ")
                return !got.contains(x) && events.last { $0.entity == f[1] && $0.type == "position" }!.time == events.last!.time
                    && plain.contains("\(f[0]) \(f[1]) \(f[2])")
            }
            #expect(got == expected.filter { !reportedByEvent.contains($0) }, "seed \(seed)")
            total += got.count
            for g in got { byChange[String(g.split(separator: " ")[3]), default: 0] += 1 }
            // Evidence: the entity's latest position.
            for a in named where a.line.contains("zone_edit") {
                let ev = Self.object(a.line)["evidence"] as! [String]
                #expect(ev == [last[a.entity!]!.2])
            }
        }
        print("zone edits, 40 random changes: \(total) transitions, by change \(byChange)")
        #expect(total >= 100)
        #expect(byChange["created", default: 0] >= 5 && byChange["updated", default: 0] >= 20 && byChange["deleted", default: 0] >= 20)
    }

    /// Enter, exit, dwell and a steadied enter across a change at 10 s that moves zone A,
    /// grows B, deletes C and creates D; then the stream goes on. Worked out by hand:
    /// - t1 sat in A; A moves away: exit (both exit rules), and its firing dwell resolves;
    /// - t2 sat where A moves to: enter; on the new zones it has been inside since 0 s, so its
    ///   dwell is firing: it fires at the change (10 s inside); enter_after 3 is not confirmed
    ///   by two positions, and confirms at its third (16 s), the run counted from its first
    ///   position on the new zones;
    /// - t4 was in B since 4 s (and at 0 s inside the grown part only): its dwell fired before
    ///   and is firing on the new zones: nothing at the change; it leaves at 20 s after 20 s
    ///   inside the grown B (the visit the stored history gives, as a restart would);
    /// - t3 sat in C; C is deleted: exit, dwell resolved;
    /// - t5 appears in D at 10 s: its first position enters D on the new zones (an alert of
    ///   the new catalog at the change's time, not repeated as an edit's), dwell from 10 s;
    /// - t4's three positions are all inside the grown B: enter_after 3 confirms at 10 s on
    ///   the new zones (the new catalog's alert at that time; not repeated as an edit's).
    @Test func aChangeWorkedByHand() throws {
        let rules = try RuleFile.decode("""
        rules:
          - {id: enter, kind: enter, purpose: p, owner: o, severity: low, match: {}}
          - {id: exit, kind: exit, purpose: p, owner: o, severity: low, match: {}}
          - {id: exit-m, kind: exit, purpose: p, owner: o, severity: low, match: {}, exit_margin_m: 2000}
          - {id: enter-3, kind: enter, purpose: p, owner: o, severity: low, match: {}, enter_after: 3}
          - {id: dwell, kind: dwell, purpose: p, owner: o, severity: low, match: {}, min: 5s}
        """, file: "r.yaml").get()
        let old = [square("A", "depot", 10.00, 50.00, 10.02, 50.02), square("B", "depot", 10.10, 50.00, 10.12, 50.02),
                   square("C", "port", 10.20, 50.00, 10.22, 50.02)]
        let new = [square("A", "depot", 10.03, 50.00, 10.05, 50.02), square("B", "depot", 10.08, 50.00, 10.12, 50.02),
                   square("D", "depot", 10.30, 50.00, 10.32, 50.02)]
        let t0: Millis = 1_000_000
        func p(_ e: String, _ s: Int, _ x: Double) -> String { pos(e, t0 + Millis(s) * 1000, x, 50.01) }
        let lines = [p("t1", 0, 10.01), p("t2", 0, 10.04), p("t3", 0, 10.21), p("t4", 0, 10.09),
                     p("t4", 4, 10.11), p("t1", 10, 10.01), p("t2", 10, 10.04), p("t3", 10, 10.21), p("t4", 10, 10.11), p("t5", 10, 10.31)]
        let edits = [ZoneEdit(zone: "A", version: 2, change: .updated), ZoneEdit(zone: "B", version: 4, change: .updated),
                     ZoneEdit(zone: "C", version: 3, change: .deleted), ZoneEdit(zone: "D", version: 1, change: .created)]
        let after = try Self.change(from: old, to: new, rules: rules, lines: lines, edits: edits)
        // The stream goes on after the change.
        for (i, l) in [p("t2", 16, 10.04), p("t5", 16, 10.31), p("t4", 20, 10.15)].enumerated() {
            var s = l
            _ = after.ingest(try s.withUTF8 { after.decode($0, number: lines.count + i + 1) }.get())
        }
        after.finish(until: t0 + 30_000)
        var named: [NamedAlert] = []
        after.drainAlerts(into: &named)
        let got = named.map { a -> String in
            let o = Self.object(a.line)
            let d = o["details"] as? [String: Any] ?? [:]
            var s = "\(a.rule) \((a.time - t0) / 1000)s \(a.entity ?? "-") \(a.zone ?? "-") \(a.firing ? "firing" : "resolved") \((o["evidence"] as! [String]).joined(separator: ","))"
            if let c = (d["zone_edit"] as? [String])?.first { s += " \(c) v\(Int(d["zone_version"] as! Double))" }
            if let dw = d["dwell_s"] as? Double { s += " dwell \(Int(dw))s" }
            return s
        }
        #expect(got == [
            "dwell 10s t1 A resolved t1#2 updated v2 dwell 10s",
            "dwell 10s t2 A firing t2#1 updated v2 dwell 10s",
            "dwell 10s t3 C resolved t3#2 deleted v3 dwell 10s",
            "enter 10s t2 A firing t2#2 updated v2",
            "enter 10s t5 D firing t5#1",
            "enter-3 10s t4 B firing t4#1,t4#3",
            "exit 10s t1 A firing t1#2 updated v2",
            "exit 10s t3 C firing t3#2 deleted v3",
            "exit-m 10s t1 A firing t1#2 updated v2",
            "exit-m 10s t3 C firing t3#2 deleted v3",
            "dwell 15s t5 D firing t5#1 dwell 5s",
            "enter-3 16s t2 A firing t2#1,t2#3",
            "dwell 20s t4 B resolved t4#4 dwell 20s",
            "exit 20s t4 B firing t4#4",
            "exit-m 20s t4 B firing t4#4",
        ], "\(got)")
        // The sentence says why.
        let ex = AlertExplanation(rule: rules[1], firing: true, time: t0 + 10_000, entity: "t3", zone: "C", pair: nil,
                                  details: [("zone_edit", .strings(["deleted"])), ("zone_version", .number(3))])
        #expect(ex.sentence.contains("the zone was deleted (version 3)"))
    }

    /// Without edits, or before any event, nothing is emitted; a change that edits nothing
    /// the rules select emits nothing.
    @Test func nothingWithoutACrossing() throws {
        let old = [square("A", "depot", 10.00, 50.00, 10.02, 50.02)]
        let moved = [square("A", "depot", 10.03, 50.00, 10.05, 50.02)]
        let lines = [pos("t1", 1_000_000, 10.01, 50.01)]
        var named: [NamedAlert] = []
        try Self.change(from: old, to: moved, rules: Self.plainRules, lines: lines, edits: []).drainAlerts(into: &named)
        #expect(named.isEmpty)
        try Self.change(from: old, to: moved, rules: Self.plainRules, lines: [], edits: [ZoneEdit(zone: "A", version: 2, change: .updated)]).drainAlerts(into: &named)
        #expect(named.isEmpty)
        // Category port is selected by no depot rule; enter-all and exit-all still see the move.
        let port = [square("A", "port", 10.03, 50.00, 10.05, 50.02)]
        try Self.change(from: old, to: port, rules: Self.plainRules, lines: lines, edits: [ZoneEdit(zone: "A", version: 2, change: .updated)]).drainAlerts(into: &named)
        #expect(named.map(\.rule).sorted() == ["exit-all", "exit-depot"])
    }

    static func points(_ r: Ring) -> [(Double, Double)] {
        stride(from: 0, to: r.coords.count, by: 2).map { (r.coords[$0], r.coords[$0 + 1]) }
    }

    static func map(_ s: ZoneShape, _ f: (Double, Double) -> (Double, Double)) -> ZoneShape {
        switch s {
        case .circle(let lon, let lat, let r):
            let (x, y) = f(lon, lat)
            return .circle(lon: x, lat: y, radiusM: r)
        case .polygons(let ps):
            return .polygons(ps.map { p in
                let shell = Ring(points: points(p.shell).map(f))
                let holes = p.holes.map { Ring(points: points($0).map(f)) }
                return Polygon(shell: shell, holes: holes)
            })
        }
    }

    static func centre(_ s: ZoneShape) -> (Double, Double) {
        switch s {
        case .circle(let lon, let lat, _): return (lon, lat)
        case .polygons(let ps):
            let pts = points(ps[0].shell)
            let n = Double(pts.count)
            let x: Double = pts.map { $0.0 }.reduce(0, +)
            let y: Double = pts.map { $0.1 }.reduce(0, +)
            return (x / n, y / n)
        }
    }

    static func scaled(_ s: ZoneShape, _ f: Double, _ cx: Double, _ cy: Double) -> ZoneShape {
        if case .circle(let lon, let lat, let r) = s { return .circle(lon: lon, lat: lat, radiusM: r * f) }
        return map(s) { (cx + ($0 - cx) * f, cy + ($1 - cy) * f) }
    }
}
