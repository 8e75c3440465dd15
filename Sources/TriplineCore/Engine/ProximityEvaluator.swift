import CTriplineSupport
import Foundation

/// `proximity` (spec section 5.4): a pair is near when both latest positions are in
/// (t - W, t] and at most R metres apart.
///
/// Latest positions live in a grid of cubes of edge 4R over the Earth's surface in 3-D: a
/// haversine distance <= R implies a chord <= R, so every near partner lies in the cubes that
/// the box of half-width R around a position touches — at most 2 per axis, 3.4 on average
/// (an edge of 2R would always touch 8, and a moving entity would change cube twice as often). No pair is ever enumerated
/// beyond its neighbourhood, and there are no special cases at the poles or the antimeridian.
/// Rules whose R are within a factor of 4 of each other share one grid (R: the largest of
/// them) and one neighbour search per position; each rule keeps only the pairs within its
/// own R. The grid holds the latest position of every entity its rules
/// are about (bounded by the entities, like their other per-entity state): a position older
/// than a rule's window no longer pairs for that rule, and the rule's own timer resolves the
/// pairs it was in, so no timer has to drop positions from the grid. Key {pair}.
struct ProximityEvaluator {
    /// An entity's place in the grid. Its latest position, time and event are not copied
    /// here: they are the engine's entity record (`EntityMatching.latestPosition`), which
    /// every position updates before this evaluator runs. The record is 20 bytes (stride 20),
    /// a hash-table slot 32 (it was 64 with the position, time and event); when the grid holds
    /// most entities its `EntityTable` is an array by entity id, 20 bytes per entity.
    struct Latest {
        /// The packed key of its cube (`Cell.key`), as two halves: every field is 4 bytes, so
        /// the record's stride is 20 bytes, not 24 (the array form of `EntityTable` holds one
        /// per entity id).
        var cellKeyLow: UInt32
        var cellKeyHigh: UInt32
        /// The other entities in the same cube: an intrusive doubly linked list (-1: none), so
        /// that moving between cubes allocates nothing.
        var next: Int32 = -1
        var prev: Int32 = -1
        /// How many near pairs (over all the grid's rules) this entity is in, so that a
        /// position with no pair and no neighbour touches no rule's state.
        var linked: Int32 = 0

        init(cellKey: UInt64, next: Int32 = -1, prev: Int32 = -1, linked: Int32 = 0) {
            cellKeyLow = UInt32(truncatingIfNeeded: cellKey)
            cellKeyHigh = UInt32(truncatingIfNeeded: cellKey >> 32)
            self.next = next
            self.prev = prev
            self.linked = linked
        }

        @inline(__always)
        var cellKey: UInt64 {
            get { UInt64(cellKeyHigh) << 32 | UInt64(cellKeyLow) }
            set {
                cellKeyLow = UInt32(truncatingIfNeeded: newValue)
                cellKeyHigh = UInt32(truncatingIfNeeded: newValue >> 32)
            }
        }
    }
    struct Cell: Hashable {
        var x: Int64, y: Int64, z: Int64
        /// The three coordinates packed 21 bits each. Cells more than 2^21 apart can share a
        /// key; that only costs a comparison (distances are always checked exactly).
        var key: UInt64 {
            (UInt64(bitPattern: x) & 0x1F_FFFF) << 42 | (UInt64(bitPattern: y) & 0x1F_FFFF) << 21 | (UInt64(bitPattern: z) & 0x1F_FFFF)
        }
    }
    struct Grid {
        /// The largest distance of its rules (the search radius), and the smallest.
        var distance: Double
        var minDistance: Double
        var rules: [Int] = []
        var latest = EntityTable<Latest>()
        /// The first entity of each cube's list, filed under the cube's key, which the
        /// entity's record in `latest` holds: an 8-byte slot, not `IntMap`'s 16.
        var cells = HeadTable()
        /// Occupied cubes, one bit each, blocked so that the few cubes around a position
        /// usually share one word: a word covers a 4 x 4 x 4 block of cubes (its bit: the
        /// cube's place in the block), blocks are hashed to words. Most cubes around a position
        /// are empty on a sparse map, and a clear bit skips their lookup in `cells` (a cache
        /// miss). Bits are set when a cube gains its first entity and never cleared one by
        /// one (that would need a count per bit); a bit of a cube that emptied only costs a
        /// lookup, and when set bits reach twice the occupied cubes the words are rebuilt
        /// from `cells`.
        var occupied = [UInt64](repeating: 0, count: 1 << ProximityEvaluator.occupancyWordBits)
        var occupiedBits = 0
        /// Set bits allowed beyond twice the occupied cubes before a rebuild (tests lower it).
        /// 16,384 is under 1 % of the 2,097,152 bits, so stale bits send under 1 % of empty
        /// cubes to a lookup; with 1,024, entities that jump to a new cube at every position
        /// rebuilt the words (256 KB cleared, every cube read) every thousand or so positions.
        var occupancySlack = 16_384
    }
    static let occupancyWordBits = 15

    /// The word and bit of a cube (from its packed key: 21 bits per coordinate, the low two
    /// of each giving the place in the block).
    @inline(__always)
    static func occupancySlot(_ cellKey: UInt64) -> (word: Int, bit: UInt64) {
        let local = (cellKey & 3) | ((cellKey >> 21) & 3) << 2 | ((cellKey >> 42) & 3) << 4
        let block = cellKey & ~(UInt64(3) | UInt64(3) << 21 | UInt64(3) << 42)
        return (Int(truncatingIfNeeded: (block &* 0xD6E8_FEB8_6659_FD93) >> UInt64(64 - occupancyWordBits)), local)
    }

    /// Marks a cube occupied (it just gained an entity).
    mutating func markOccupied(_ g: Int, _ cellKey: UInt64) {
        let (w, b) = Self.occupancySlot(cellKey)
        let word = grids[g].occupied[w]
        if (word >> b) & 1 == 1 { return }
        grids[g].occupied[w] = word | 1 << b
        grids[g].occupiedBits += 1
    }

    /// Are there so many set bits that they should be rebuilt? (Asked once the entity's
    /// record holds its new cube: the rebuild reads every cube's key from its first entity.)
    func occupancyIsStale(_ g: Int) -> Bool {
        grids[g].occupiedBits > 2 * grids[g].cells.count + grids[g].occupancySlack
    }

    /// Sets exactly the bits of the occupied cubes.
    mutating func rebuildOccupancy(_ g: Int) {
        for w in grids[g].occupied.indices { grids[g].occupied[w] = 0 }
        var n = 0
        for slot in grids[g].cells.slots where slot.id >= 0 {
            let (w, b) = Self.occupancySlot(grids[g].latest.headKey(slot.id))
            if (grids[g].occupied[w] >> b) & 1 == 0 { n += 1 }
            grids[g].occupied[w] |= 1 << b
        }
        grids[g].occupiedBits = n
    }

    /// Might cube `cellKey` have entities? (False: certainly not.)
    @inline(__always)
    func mayBeOccupied(_ g: Int, _ cellKey: UInt64) -> Bool {
        let (w, b) = Self.occupancySlot(cellKey)
        return (grids[g].occupied[w] >> b) & 1 == 1
    }
    struct Member {
        var rule: Int32
        var match: Int32
        var other: Int32
        var distance: Double
        var window: Millis
        var grid: Int
        var near = IntMap<[Int32]>()
        /// Entities with near partners have a timer for this rule's window; its deadline.
        var pending = IntMap<Millis>()
    }
    var grids: [Grid] = []
    var rules: [Member] = []
    /// Neighbour-search results, reused from position to position.
    var scratch: [(Int32, Double, Millis, EventRef)] = []

    var isEmpty: Bool { rules.isEmpty }

    /// Adds a rule. Rules whose distances are within a factor of `gridSpan` of each other
    /// share one grid, searched with the largest of them (each rule then keeps the pairs
    /// within its own distance): one latest record and one neighbour search per position
    /// instead of one per distance, at the price of a few more candidates for the smaller ones.
    mutating func add(rule: Int32, match: Int32, other: Int32, distance: Double, window: Millis) {
        let g: Int
        if let found = grids.firstIndex(where: { Swift.max($0.distance, distance) <= Self.gridSpan * Swift.min($0.minDistance, distance) }) {
            g = found
            grids[g].distance = Swift.max(grids[g].distance, distance)
            grids[g].minDistance = Swift.min(grids[g].minDistance, distance)
        } else {
            g = grids.count
            grids.append(Grid(distance: distance, minDistance: distance))
        }
        grids[g].rules.append(rules.count)
        rules.append(Member(rule: rule, match: match, other: other, distance: distance, window: window, grid: g))
    }

    /// Largest ratio between the distances of rules sharing a grid.
    static let gridSpan = 4.0

    /// Timers of a rule's window carry b = -1.
    static let ruleTimer: Int32 = -1

    /// The point on the sphere of radius R_earth, in metres.
    static func xyz(_ lon: Double, _ lat: Double) -> (Double, Double, Double) {
        let phi = lat * (Double.pi / 180), lambda = lon * (Double.pi / 180)
        let r = Haversine.earthRadiusM
        var sp = 0.0, cp = 0.0, sl = 0.0, cl = 0.0
        tripline_sincos(phi, &sp, &cp)
        tripline_sincos(lambda, &sl, &cl)
        return (r * cp * cl, r * cp * sl, r * sp)
    }

    static func cell(_ p: (Double, Double, Double), edge: Double) -> Cell {
        Cell(x: Int64((p.0 / edge).rounded(.down)), y: Int64((p.1 / edge).rounded(.down)), z: Int64((p.2 / edge).rounded(.down)))
    }

    /// Edge of the grid's cubes, in units of the distance.
    static let edgeFactor = 4.0

    /// The cells a box of half-width `r` around `p` touches (at most 2 per axis).
    /// The box is widened by a millionth so that rounding never loses a neighbour.
    static func neighbourhood(_ p: (Double, Double, Double), r: Double) -> (ClosedRange<Int64>, ClosedRange<Int64>, ClosedRange<Int64>) {
        let edge = edgeFactor * r, m = r * (1 + 1e-6)
        func range(_ v: Double) -> ClosedRange<Int64> { Int64(((v - m) / edge).rounded(.down))...Int64(((v + m) / edge).rounded(.down)) }
        return (range(p.0), range(p.1), range(p.2))
    }

    func relevant(_ m: Member, _ a: Int32, _ matching: some EntityMatching) -> Bool {
        matching.matches(a, m.match) || matching.matches(a, m.other)
    }

    /// Is (a, b) a pair of this rule: a matches `match` and b `other`, or the reverse?
    func isPair(_ m: Member, _ a: Int32, _ b: Int32, _ matching: some EntityMatching) -> Bool {
        (matching.matches(a, m.match) && matching.matches(b, m.other)) || (matching.matches(b, m.match) && matching.matches(a, m.other))
    }

    static func pairKey(_ a: Int32, _ b: Int32) -> AlertKey { AlertKey(pairA: min(a, b), pairB: max(a, b)) }

    mutating func onPosition(_ ev: Event, ref: EventRef, matching: some EntityMatching, emitter: inout Emitter, timers: inout TimerQueue) {
        let a = ev.entity
        var p3: (Double, Double, Double)? = nil
        for g in grids.indices {
            guard grids[g].rules.contains(where: { relevant(rules[$0], a, matching) }) else { continue }
            let r = grids[g].distance
            let point = p3 ?? Self.xyz(ev.lon, ev.lat)
            p3 = point
            let cell = Self.cell(point, edge: Self.edgeFactor * r)
            // The shared latest position and its cube.
            var next: Int32 = -1, prev: Int32 = -1, linked: Int32 = 0
            if let old = grids[g].latest[a] {
                linked = old.linked
                if old.cellKey != cell.key {
                    unlinkFromCell(g, a, old)
                    next = pushFront(g, a, cell)
                } else {
                    next = old.next
                    prev = old.prev
                }
            } else {
                next = pushFront(g, a, cell)
            }
            grids[g].latest.insert(a, Latest(cellKey: cell.key, next: next, prev: prev, linked: linked))
            if occupancyIsStale(g) { rebuildOccupancy(g) }
            // One neighbour search for every rule of the grid.
            if !scratch.isEmpty { scratch.removeAll(keepingCapacity: true) }
            /// Takes entity b as a candidate when within r (once, though cubes whose keys
            /// collide share a list); returns its record, to walk on.
            func visit(_ b: Int32) -> Latest {
                let lb = grids[g].latest[b]!
                if !scratch.contains(where: { $0.0 == b }) {
                    let pb = matching.latestPosition(b)
                    let d = Haversine.distance(ev.lon, ev.lat, pb.lon, pb.lat)
                    if d <= r { scratch.append((b, d, pb.time, pb.ref)) }
                }
                return lb
            }
            let (rx, ry, rz) = Self.neighbourhood(point, r: r)
            for cx in rx {
                for cy in ry {
                    for cz in rz {
                        let ck = Cell(x: cx, y: cy, z: cz).key
                        var b: Int32
                        if ck == cell.key {
                            // The entity's own cube: its list is walked from the entity both
                            // ways (no lookup of the cube, nor of the entity's own record).
                            b = prev
                            while b >= 0 { b = visit(b).prev }
                            b = next
                        } else {
                            // Another cube's list never holds the entity itself.
                            if !mayBeOccupied(g, ck) { continue }
                            b = grids[g].cells.id(ck, grids[g].latest)
                        }
                        while b >= 0 { b = visit(b).next }
                    }
                }
            }
            scratch.sort { $0.0 < $1.0 }
            let candidates = scratch
            if candidates.isEmpty && linked == 0 { continue }
            for ri in grids[g].rules where relevant(rules[ri], a, matching) {
                let rule = rules[ri].rule, window = rules[ri].window, maxD = rules[ri].distance
                // Pairs that were near: does this position part them? (`linked` counts a's
                // pairs over the grid's rules when the position came: zero means this rule
                // has none, and its tables need no lookup.)
                var stillNear: [Int32] = []
                if linked > 0 {
                    for b in (rules[ri].near[key(a)] ?? []).sorted() {
                        guard grids[g].latest.contains(b) else { continue }
                        let pb = matching.latestPosition(b)
                        let d = Haversine.distance(ev.lon, ev.lat, pb.lon, pb.lat)
                        if d > maxD {
                            unlink(ri, a, b)
                            emitter.emit(rule: rule, key: Self.pairKey(a, b), firing: false, time: ev.time, evidence: .one(ref),
                                         details: .number(.distanceM, d))
                        }
                    }
                    stillNear = rules[ri].near[key(a)] ?? []
                }
                // New near pairs.
                var paired = !stillNear.isEmpty
                for (b, d, tb, bref) in candidates where d <= maxD && tb > ev.time - window && !stillNear.contains(b) && isPair(rules[ri], a, b, matching) {
                    link(ri, a, b)
                    paired = true
                    ensureRuleTimer(ri, b, tb, &timers)
                    emitter.emit(rule: rule, key: Self.pairKey(a, b), firing: true, time: ev.time, evidence: .two(bref, ref),
                                 details: .number(.distanceM, d))
                }
                if paired { ensureRuleTimer(ri, a, ev.time, &timers) }
            }
        }
    }

    /// Makes sure entity `x` (latest position at `t`) has a timer for rule `ri`'s window.
    mutating func ensureRuleTimer(_ ri: Int, _ x: Int32, _ t: Millis, _ timers: inout TimerQueue) {
        if rules[ri].pending.contains(key(x)) { return }
        let d = t + rules[ri].window
        rules[ri].pending.insert(key(x), d)
        timers.schedule(deadline: d, rule: rules[ri].rule, a: x, b: Self.ruleTimer)
    }

    /// Puts `a` first in `cell`'s list; returns the entity now after it. (`a`'s record is
    /// written next, with the new cube.)
    mutating func pushFront(_ g: Int, _ a: Int32, _ cell: Cell) -> Int32 {
        let head = grids[g].fileHead(cell.key, a)
        if head >= 0 { grids[g].latest.modify(head) { $0.prev = a } } else { markOccupied(g, cell.key) }
        return head
    }

    /// Takes `a` (whose record is `la`) out of its cell's list.
    mutating func unlinkFromCell(_ g: Int, _ a: Int32, _ la: Latest) {
        if la.prev >= 0 {
            grids[g].latest.modify(la.prev) { $0.next = la.next }
        } else if la.next >= 0 {
            grids[g].fileHead(la.cellKey, la.next)
        } else {
            grids[g].removeCube(la.cellKey)
        }
        if la.next >= 0 { grids[g].latest.modify(la.next) { $0.prev = la.prev } }
    }

    mutating func link(_ ri: Int, _ a: Int32, _ b: Int32) {
        let g = rules[ri].grid
        for (x, y) in [(a, b), (b, a)] {
            rules[ri].near.update(key(x), default: { [] }) { $0.append(y) }
            grids[g].latest.modify(x) { $0.linked += 1 }
        }
    }

    mutating func unlink(_ ri: Int, _ a: Int32, _ b: Int32) {
        let g = rules[ri].grid
        for x in [a, b] {
            grids[g].latest.modify(x) { $0.linked -= 1 }
        }
        for (x, y) in [(a, b), (b, a)] {
            var empty = false
            rules[ri].near.modify(key(x)) { list in
                list.removeAll { $0 == y }
                empty = list.isEmpty
            }
            if empty { rules[ri].near.remove(key(x)) }
        }
    }

    /// Resolves every near pair of `x` in rule `ri`: x's latest position left the window.
    mutating func expirePairs(_ ri: Int, _ x: Int32, at deadline: Millis, matching: some EntityMatching, emitter: inout Emitter) {
        let g = rules[ri].grid
        guard grids[g].latest.contains(x) else { return }
        let lx = matching.latestPosition(x)
        for b in (rules[ri].near[key(x)] ?? []).sorted() {
            precondition(grids[g].latest.contains(b), "a near partner is in the grid")
            let lb = matching.latestPosition(b)
            unlink(ri, x, b)
            emitter.emit(rule: rules[ri].rule, key: Self.pairKey(x, b), firing: false, time: deadline, evidence: .none,
                         details: .number(.distanceM, Haversine.distance(lx.lon, lx.lat, lb.lon, lb.lat)))
        }
    }

    mutating func fire(_ t: EngineTimer, slot ri: Int, matching: some EntityMatching, emitter: inout Emitter, timers: inout TimerQueue) {
        let g = rules[ri].grid
        guard grids[g].latest.contains(t.a) else {
            rules[ri].pending.remove(key(t.a))
            return
        }
        let due = matching.latestPosition(t.a).time + rules[ri].window
        if due > t.deadline {
            if rules[ri].near.contains(key(t.a)) {
                rules[ri].pending.insert(key(t.a), due)
                timers.schedule(deadline: due, rule: t.rule, a: t.a, b: Self.ruleTimer)
            } else {
                rules[ri].pending.remove(key(t.a))
            }
            return
        }
        rules[ri].pending.remove(key(t.a))
        expirePairs(ri, t.a, at: t.deadline, matching: matching, emitter: &emitter)
    }
}

extension ProximityEvaluator.Grid {
    /// Files `a` as the first entity of cube `cellKey`; returns the one it replaces (-1: none).
    /// (The table reads other entities' records, a disjoint property of this grid.)
    @inline(__always)
    @discardableResult
    mutating func fileHead(_ cellKey: UInt64, _ a: Int32) -> Int32 { cells.exchange(cellKey, a, latest) }

    /// Forgets cube `cellKey` (it emptied).
    mutating func removeCube(_ cellKey: UInt64) { cells.remove(cellKey, latest) }
}

extension EntityTable: HeadKeys where Value == ProximityEvaluator.Latest {
    /// The cube an entity of the grid is in.
    @inline(__always)
    func headKey(_ id: Int32) -> UInt64 { self[id]!.cellKey }
}
