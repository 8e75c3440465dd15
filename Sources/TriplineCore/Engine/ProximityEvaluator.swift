import Foundation

/// `proximity` (spec section 5.4): a pair is near when both latest positions are in
/// (t - W, t] and at most R metres apart. Latest positions live in a grid of cubes of edge R
/// over the Earth's surface in 3-D (a haversine distance <= R implies a chord <= R, so every
/// near partner is in one of the 27 cubes around a position): no pair is ever enumerated
/// beyond its neighbourhood, and there are no special cases at the poles or the antimeridian.
/// Key {pair}.
struct ProximityEvaluator {
    struct Latest {
        var lon: Double
        var lat: Double
        var time: Millis
        var ref: EventRef
        var cell: Cell
        var pending: Millis
    }
    struct Cell: Hashable {
        var x: Int64, y: Int64, z: Int64
    }
    struct Member {
        var rule: Int32
        var match: Int32
        var other: Int32
        var distance: Double
        var window: Millis
        var latest: [Int32: Latest] = [:]
        var grid: [Cell: [Int32]] = [:]
        var near: [Int32: Set<Int32>] = [:]
    }
    var rules: [Member] = []
    var slot: [Int32: Int] = [:]

    var isEmpty: Bool { rules.isEmpty }

    static func cell(_ lon: Double, _ lat: Double, edge: Double) -> Cell {
        let phi = lat * (Double.pi / 180), lambda = lon * (Double.pi / 180)
        let r = Haversine.earthRadiusM
        let x = r * cos(phi) * cos(lambda), y = r * cos(phi) * sin(lambda), z = r * sin(phi)
        return Cell(x: Int64((x / edge).rounded(.down)), y: Int64((y / edge).rounded(.down)), z: Int64((z / edge).rounded(.down)))
    }

    /// Is (a, b) a pair of this rule: a matches `match` and b `other`, or the reverse?
    func isPair(_ m: Member, _ a: Int32, _ b: Int32, _ engine: Engine) -> Bool {
        (engine.matches(a, m.match) && engine.matches(b, m.other)) || (engine.matches(b, m.match) && engine.matches(a, m.other))
    }

    static func pairKey(_ a: Int32, _ b: Int32) -> AlertKey { AlertKey(pairA: min(a, b), pairB: max(a, b)) }

    mutating func onPosition(_ ev: Event, ref: EventRef, engine: Engine, emitter: inout Emitter, timers: inout TimerQueue) {
        let a = ev.entity
        for i in rules.indices where engine.matches(a, rules[i].match) || engine.matches(a, rules[i].other) {
            let r = rules[i].distance
            let cell = Self.cell(ev.lon, ev.lat, edge: r)
            var pending = Millis.min
            if let old = rules[i].latest[a] {
                pending = old.pending
                if old.cell != cell {
                    rules[i].grid[old.cell]?.removeAll { $0 == a }
                    if rules[i].grid[old.cell]?.isEmpty == true { rules[i].grid[old.cell] = nil }
                    rules[i].grid[cell, default: []].append(a)
                }
            } else {
                rules[i].grid[cell, default: []].append(a)
            }
            if pending == .min {
                pending = ev.time + rules[i].window
                timers.schedule(deadline: pending, rule: rules[i].rule, a: a)
            }
            rules[i].latest[a] = Latest(lon: ev.lon, lat: ev.lat, time: ev.time, ref: ref, cell: cell, pending: pending)
            // Pairs that were near: does this position part them?
            if let partners = rules[i].near[a] {
                for b in partners.sorted() {
                    guard let lb = rules[i].latest[b] else { continue }
                    let d = Haversine.distance(ev.lon, ev.lat, lb.lon, lb.lat)
                    if d > r {
                        unlink(i, a, b)
                        emitter.emit(rule: rules[i].rule, key: Self.pairKey(a, b), firing: false, time: ev.time, evidence: [ref],
                                     details: [("distance_m", .number(d))])
                    }
                }
            }
            // New near pairs among the neighbours.
            var found: [(Int32, Double)] = []
            for dx in -1...1 {
                for dy in -1...1 {
                    for dz in -1...1 {
                        guard let list = rules[i].grid[Cell(x: cell.x + Int64(dx), y: cell.y + Int64(dy), z: cell.z + Int64(dz))] else { continue }
                        for b in list where b != a && !(rules[i].near[a]?.contains(b) ?? false) {
                            let lb = rules[i].latest[b]!
                            let d = Haversine.distance(ev.lon, ev.lat, lb.lon, lb.lat)
                            if d <= r && isPair(rules[i], a, b, engine) { found.append((b, d)) }
                        }
                    }
                }
            }
            for (b, d) in found.sorted(by: { $0.0 < $1.0 }) {
                rules[i].near[a, default: []].insert(b)
                rules[i].near[b, default: []].insert(a)
                let lb = rules[i].latest[b]!
                emitter.emit(rule: rules[i].rule, key: Self.pairKey(a, b), firing: true, time: ev.time, evidence: [lb.ref, ref],
                             details: [("distance_m", .number(d))])
            }
        }
    }

    mutating func unlink(_ i: Int, _ a: Int32, _ b: Int32) {
        rules[i].near[a]?.remove(b)
        if rules[i].near[a]?.isEmpty == true { rules[i].near[a] = nil }
        rules[i].near[b]?.remove(a)
        if rules[i].near[b]?.isEmpty == true { rules[i].near[b] = nil }
    }

    /// The latest position of `t.a` may have left the window.
    mutating func fire(_ t: EngineTimer, emitter: inout Emitter, timers: inout TimerQueue) {
        guard let i = slot[t.rule], var la = rules[i].latest[t.a] else { return }
        let due = la.time + rules[i].window
        if due > t.deadline {
            la.pending = due
            rules[i].latest[t.a] = la
            timers.schedule(deadline: due, rule: t.rule, a: t.a)
            return
        }
        for b in (rules[i].near[t.a] ?? []).sorted() {
            let lb = rules[i].latest[b]!
            unlink(i, t.a, b)
            emitter.emit(rule: t.rule, key: Self.pairKey(t.a, b), firing: false, time: t.deadline, evidence: [],
                         details: [("distance_m", .number(Haversine.distance(la.lon, la.lat, lb.lon, lb.lat)))])
        }
        rules[i].grid[la.cell]?.removeAll { $0 == t.a }
        if rules[i].grid[la.cell]?.isEmpty == true { rules[i].grid[la.cell] = nil }
        rules[i].latest[t.a] = nil
    }
}
