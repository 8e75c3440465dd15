import Foundation

/// `proximity` (spec section 5.4): a pair is near when both latest positions are in
/// (t - W, t] and at most R metres apart. Latest positions live in a grid of cubes of edge 2R
/// over the Earth's surface in 3-D: a haversine distance <= R implies a chord <= R, so every
/// near partner lies in the at most 8 cubes that the box of half-width R around a position
/// touches. No pair is ever enumerated beyond its neighbourhood, and there are no special
/// cases at the poles or the antimeridian.
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
        /// The three coordinates packed 21 bits each. Cells more than 2^21 apart can share a
        /// key; that only costs a comparison (distances are always checked exactly).
        var key: UInt64 {
            (UInt64(bitPattern: x) & 0x1F_FFFF) << 42 | (UInt64(bitPattern: y) & 0x1F_FFFF) << 21 | (UInt64(bitPattern: z) & 0x1F_FFFF)
        }
    }
    struct Member {
        var rule: Int32
        var match: Int32
        var other: Int32
        var distance: Double
        var window: Millis
        var latest = IntMap<Latest>()
        var grid = IntMap<[Int32]>()
        var near = IntMap<[Int32]>()
    }
    var rules: [Member] = []

    var isEmpty: Bool { rules.isEmpty }

    /// The point on the sphere of radius R_earth, in metres.
    static func xyz(_ lon: Double, _ lat: Double) -> (Double, Double, Double) {
        let phi = lat * (Double.pi / 180), lambda = lon * (Double.pi / 180)
        let r = Haversine.earthRadiusM
        return (r * cos(phi) * cos(lambda), r * cos(phi) * sin(lambda), r * sin(phi))
    }

    static func cell(_ p: (Double, Double, Double), edge: Double) -> Cell {
        Cell(x: Int64((p.0 / edge).rounded(.down)), y: Int64((p.1 / edge).rounded(.down)), z: Int64((p.2 / edge).rounded(.down)))
    }

    /// The cells a box of half-width `r` around `p` touches (edge = 2r: at most 2 per axis).
    /// The box is widened by a millionth so that rounding never loses a neighbour.
    static func neighbourhood(_ p: (Double, Double, Double), r: Double) -> (ClosedRange<Int64>, ClosedRange<Int64>, ClosedRange<Int64>) {
        let edge = 2 * r, m = r * (1 + 1e-6)
        func range(_ v: Double) -> ClosedRange<Int64> { Int64(((v - m) / edge).rounded(.down))...Int64(((v + m) / edge).rounded(.down)) }
        return (range(p.0), range(p.1), range(p.2))
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
            let p3 = Self.xyz(ev.lon, ev.lat)
            let cell = Self.cell(p3, edge: 2 * r)
            var pending = Millis.min
            if let old = rules[i].latest[key(a)] {
                pending = old.pending
                if old.cell.key != cell.key {
                    removeFromGrid(i, a, old.cell)
                    rules[i].grid.update(cell.key, default: { [] }) { $0.append(a) }
                }
            } else {
                rules[i].grid.update(cell.key, default: { [] }) { $0.append(a) }
            }
            if pending == .min {
                pending = ev.time + rules[i].window
                timers.schedule(deadline: pending, rule: rules[i].rule, a: a)
            }
            rules[i].latest.insert(key(a), Latest(lon: ev.lon, lat: ev.lat, time: ev.time, ref: ref, cell: cell, pending: pending))
            // Pairs that were near: does this position part them?
            let partners = rules[i].near[key(a)] ?? []
            for b in partners.sorted() {
                guard let lb = rules[i].latest[key(b)] else { continue }
                let d = Haversine.distance(ev.lon, ev.lat, lb.lon, lb.lat)
                if d > r {
                    unlink(i, a, b)
                    emitter.emit(rule: rules[i].rule, key: Self.pairKey(a, b), firing: false, time: ev.time, evidence: [ref],
                                 details: [("distance_m", .number(d))])
                }
            }
            // New near pairs among the neighbours.
            let stillNear = rules[i].near[key(a)] ?? []
            var found: [(Int32, Double, EventRef)] = []
            let (rx, ry, rz) = Self.neighbourhood(p3, r: r)
            for cx in rx {
                for cy in ry {
                    for cz in rz {
                        let c = Cell(x: cx, y: cy, z: cz)
                        guard let list = rules[i].grid[c.key] else { continue }
                        for b in list where b != a && !stillNear.contains(b) && !found.contains(where: { $0.0 == b }) {
                            let lb = rules[i].latest[key(b)]!
                            let d = Haversine.distance(ev.lon, ev.lat, lb.lon, lb.lat)
                            if d <= r && isPair(rules[i], a, b, engine) { found.append((b, d, lb.ref)) }
                        }
                    }
                }
            }
            for (b, d, bref) in found.sorted(by: { $0.0 < $1.0 }) {
                rules[i].near.update(key(a), default: { [] }) { $0.append(b) }
                rules[i].near.update(key(b), default: { [] }) { $0.append(a) }
                emitter.emit(rule: rules[i].rule, key: Self.pairKey(a, b), firing: true, time: ev.time, evidence: [bref, ref],
                             details: [("distance_m", .number(d))])
            }
        }
    }

    mutating func removeFromGrid(_ i: Int, _ a: Int32, _ cell: Cell) {
        var empty = false
        rules[i].grid.modify(cell.key) { list in
            list.removeAll { $0 == a }
            empty = list.isEmpty
        }
        if empty { rules[i].grid.remove(cell.key) }
    }

    mutating func unlink(_ i: Int, _ a: Int32, _ b: Int32) {
        for (x, y) in [(a, b), (b, a)] {
            var empty = false
            rules[i].near.modify(key(x)) { list in
                list.removeAll { $0 == y }
                empty = list.isEmpty
            }
            if empty { rules[i].near.remove(key(x)) }
        }
    }

    /// The latest position of `t.a` may have left the window.
    mutating func fire(_ t: EngineTimer, slot i: Int, emitter: inout Emitter, timers: inout TimerQueue) {
        guard let la = rules[i].latest[key(t.a)] else { return }
        let due = la.time + rules[i].window
        if due > t.deadline {
            rules[i].latest.modify(key(t.a)) { $0.pending = due }
            timers.schedule(deadline: due, rule: t.rule, a: t.a)
            return
        }
        for b in (rules[i].near[key(t.a)] ?? []).sorted() {
            let lb = rules[i].latest[key(b)]!
            unlink(i, t.a, b)
            emitter.emit(rule: t.rule, key: Self.pairKey(t.a, b), firing: false, time: t.deadline, evidence: [],
                         details: [("distance_m", .number(Haversine.distance(la.lon, la.lat, lb.lon, lb.lat)))])
        }
        removeFromGrid(i, t.a, la.cell)
        rules[i].latest.remove(key(t.a))
    }
}
