/// OGC Simple Features validity of polygons, as GEOS `is_valid` judges it (spec section 1):
/// closed rings of at least 4 positions, no self-intersection or self-touch, holes inside
/// their shell, a connected interior, parts of a MultiPolygon not overlapping.
public enum PolygonValidation {
    /// A segment of some ring of some part, for the sweep.
    struct Segment {
        var part: Int32, ring: Int32, index: Int32
        /// How many segments its ring has (neighbours on a ring: indices 1 or this - 1 apart).
        var ringSegments: Int32
        var ax: Double, ay: Double, bx: Double, by: Double
        var minX: Double { min(ax, bx) }
        var maxX: Double { max(ax, bx) }
    }

    enum Relation {
        case none
        case touch(Double, Double)
        case cross(Double, Double)
        case overlap(Double, Double)
    }

    /// Relation of two closed segments, exact.
    static func relate(_ s: Segment, _ t: Segment) -> Relation {
        if max(s.ay, s.by) < min(t.ay, t.by) || max(t.ay, t.by) < min(s.ay, s.by) { return .none }
        if s.maxX < t.minX || t.maxX < s.minX { return .none }
        let o1 = Predicates.orient(s.ax, s.ay, s.bx, s.by, t.ax, t.ay)
        let o2 = Predicates.orient(s.ax, s.ay, s.bx, s.by, t.bx, t.by)
        if o1 == 0 && o2 == 0 {
            // Collinear: compare along the line lexicographically.
            func less(_ p: (Double, Double), _ q: (Double, Double)) -> Bool { p.0 < q.0 || (p.0 == q.0 && p.1 < q.1) }
            var s0 = (s.ax, s.ay), s1 = (s.bx, s.by), t0 = (t.ax, t.ay), t1 = (t.bx, t.by)
            if less(s1, s0) { swap(&s0, &s1) }
            if less(t1, t0) { swap(&t0, &t1) }
            let lo = less(s0, t0) ? t0 : s0
            let hi = less(s1, t1) ? s1 : t1
            if less(hi, lo) { return .none }
            if lo == hi { return .touch(lo.0, lo.1) }
            return .overlap(lo.0, lo.1)
        }
        let o3 = Predicates.orient(t.ax, t.ay, t.bx, t.by, s.ax, s.ay)
        let o4 = Predicates.orient(t.ax, t.ay, t.bx, t.by, s.bx, s.by)
        if (o1 > 0 && o2 > 0) || (o1 < 0 && o2 < 0) || (o3 > 0 && o4 > 0) || (o3 < 0 && o4 < 0) { return .none }
        if o1 != 0 && o2 != 0 && o3 != 0 && o4 != 0 {
            // Proper crossing; report an approximate location for the message.
            let d = (s.bx - s.ax) * (t.by - t.ay) - (s.by - s.ay) * (t.bx - t.ax)
            let u = ((t.ax - s.ax) * (t.by - t.ay) - (t.ay - s.ay) * (t.bx - t.ax)) / d
            return .cross(s.ax + u * (s.bx - s.ax), s.ay + u * (s.by - s.ay))
        }
        if o1 == 0 { return .touch(t.ax, t.ay) }
        if o2 == 0 { return .touch(t.bx, t.by) }
        if o3 == 0 { return .touch(s.ax, s.ay) }
        return .touch(s.bx, s.by)
    }

    static func fmt(_ x: Double, _ y: Double) -> String { "[\(x), \(y)]" }

    /// Validates the parts of a zone (one part for a Polygon). Returns nil when valid, or a
    /// message naming the problem and where. `pointer` is used in messages to name rings.
    public static func validate(_ parts: [Polygon]) -> String? { validate(parts, pruned: true) }

    /// `pruned`: the sweep relates only segments whose boxes overlap, and neighbours on a
    /// ring only when collinear (false relates every later segment in the sweep's order,
    /// the reference the tests compare with: the same pairs meet, in the same order, so the
    /// same message).
    static func validate(_ parts: [Polygon], pruned: Bool) -> String? {
        // 1. Rings on their own.
        for (pi, p) in parts.enumerated() {
            for ri in 0...p.holes.count {
                let r = ri == 0 ? p.shell : p.holes[ri - 1]
                if r.pointCount < 4 {
                    return "\(ringName(parts.count, pi, ri)) has fewer than 4 distinct positions once repeated points are removed (a ring needs at least 3 distinct corners and must close)"
                }
                if r.bbox.maxX - r.bbox.minX > 180 {
                    return "\(ringName(parts.count, pi, ri)) spans more than 180 degrees of longitude: split it at the antimeridian into a MultiPolygon (RFC 7946 section 3.1.9); a ring around a pole cannot be expressed"
                }
            }
        }
        // 2. All segments, swept by x.
        var segs: [Segment] = []
        segs.reserveCapacity(parts.reduce(0) { $0 + $1.shell.pointCount + $1.holes.reduce(0) { $0 + $1.pointCount } })
        for (pi, p) in parts.enumerated() {
            for ri in 0...p.holes.count {
                let r = ri == 0 ? p.shell : p.holes[ri - 1]
                let n = r.pointCount - 1
                r.coords.withUnsafeBufferPointer { c in
                    for k in 0..<n {
                        segs.append(Segment(part: Int32(pi), ring: Int32(ri), index: Int32(k), ringSegments: Int32(n),
                                            ax: c[2 * k], ay: c[2 * k + 1], bx: c[2 * k + 2], by: c[2 * k + 3]))
                    }
                }
            }
        }
        // By the left end of each segment's box, stably (the order decides which problem is
        // reported first): sorted as (key, index) pairs, and the boxes kept apart, so that
        // the sweep's inner loop reads 32 bytes per candidate and relates only boxes that
        // meet (most candidates lie across the ring, apart in y).
        var keyed = [(Double, Int32)]()
        keyed.reserveCapacity(segs.count)
        for (k, g) in segs.enumerated() { keyed.append((g.minX, Int32(k))) }
        keyed.sort { $0.0 < $1.0 }
        segs = keyed.map { segs[Int($0.1)] }
        let boxes = segs.map { SegmentBox(minX: $0.minX, maxX: $0.maxX, minY: min($0.ay, $0.by), maxY: max($0.ay, $0.by)) }
        // Touch points between distinct rings of the same part, for the connectivity check.
        var touches: [RingPair: Set<PointKey>] = [:]
        for i in 0..<segs.count {
            let s = segs[i]
            let bi = boxes[i]
            var j = i + 1
            while j < segs.count {
                let bj = boxes[j]
                if pruned && bj.minX > bi.maxX { break }
                j += 1
                if pruned && (bj.maxY < bi.minY || bj.minY > bi.maxY) { continue }
                let t = segs[j - 1]
                let sameRing = s.part == t.part && s.ring == t.ring
                // Ring names are built only for a message (this loop meets every vertex).
                var adjacent = false
                if sameRing {
                    let d = abs(s.index - t.index)
                    adjacent = d == 1 || d == s.ringSegments - 1
                    // Neighbours on a ring share a vertex B: they meet elsewhere only when the
                    // other ends A and C lie on one ray from B (a fold back). Not so when
                    // (A - B) . (C - B) <= 0 (computed so, the true value is not positive: on
                    // one ray both products are >= 0 and differences keep their sign), nor
                    // when C is off the line AB; then the touch at B is all, and allowed.
                    if pruned && adjacent {
                        let sharedIsA = (t.ax == s.ax && t.ay == s.ay) || (t.bx == s.ax && t.by == s.ay)
                        let (bx, by, ax, ay) = sharedIsA ? (s.ax, s.ay, s.bx, s.by) : (s.bx, s.by, s.ax, s.ay)
                        let onT = t.ax == bx && t.ay == by
                        let (cx, cy) = onT ? (t.bx, t.by) : (t.ax, t.ay)
                        if (ax - bx) * (cx - bx) + (ay - by) * (cy - by) <= 0 { continue }
                        if Predicates.orient(ax, ay, bx, by, cx, cy) != 0 { continue }
                    }
                }
                let rel = relate(s, t)
                if case .none = rel { continue }
                if sameRing {
                    switch rel {
                    case .none: break
                    case .overlap(let x, let y):
                        return "\(ringName(parts.count, Int(s.part), Int(s.ring))) folds back on itself near \(fmt(x, y)) (self-intersection: a spike or zero-width part)"
                    case .cross(let x, let y):
                        return "\(ringName(parts.count, Int(s.part), Int(s.ring))) intersects itself near \(fmt(x, y)) (self-intersection, e.g. a bowtie): reorder its positions or split it"
                    case .touch(let x, let y):
                        if !adjacent {
                            return "\(ringName(parts.count, Int(s.part), Int(s.ring))) touches itself at \(fmt(x, y)) (ring self-intersection): split it into separate polygons or make the pinch a hole"
                        }
                    }
                } else {
                    switch rel {
                    case .none: break
                    case .overlap(let x, let y):
                        return s.part == t.part
                            ? "\(ringName(parts.count, Int(s.part), Int(s.ring))) and \(ringName(parts.count, Int(t.part), Int(t.ring))) share a boundary segment near \(fmt(x, y)) (self-intersection)"
                            : "polygons \(s.part) and \(t.part) share a boundary segment near \(fmt(x, y)): parts of a MultiPolygon may touch only at points; merge them into one polygon"
                    case .cross(let x, let y):
                        return s.part == t.part
                            ? "\(ringName(parts.count, Int(s.part), Int(s.ring))) and \(ringName(parts.count, Int(t.part), Int(t.ring))) cross near \(fmt(x, y)) (self-intersection): a hole must lie inside its shell"
                            : "polygons \(s.part) and \(t.part) overlap (their boundaries cross near \(fmt(x, y))): parts of a MultiPolygon must not overlap"
                    case .touch(let x, let y):
                        if s.part == t.part {
                            touches[RingPair(Int(s.part), Int(s.ring), Int(t.ring)), default: []].insert(PointKey(x: x, y: y))
                        }
                    }
                }
            }
        }
        // 3. Holes inside their shell, not nested in each other; interior connected.
        for (pi, p) in parts.enumerated() {
            for (hi, h) in p.holes.enumerated() {
                let name = ringName(parts.count, pi, hi + 1)
                switch ringPosition(h, inside: p.shell) {
                case .outside: return "\(name) lies outside its shell: a hole must be inside the polygon's first ring"
                case .boundary: return "\(name) coincides with its shell"
                case .inside: break
                }
                for (hj, other) in p.holes.enumerated() where hj != hi {
                    if ringPosition(h, inside: other) == .inside {
                        return "\(name) lies inside \(ringName(parts.count, pi, hj + 1)): holes may not be nested"
                    }
                }
            }
            // Union-find over rings: each touch joins two rings; a cycle disconnects the interior.
            var parent = Array(0...p.holes.count)
            func find(_ a: Int) -> Int {
                var a = a
                while parent[a] != a { parent[a] = parent[parent[a]]; a = parent[a] }
                return a
            }
            let pairs = touches.filter { $0.key.part == pi }.sorted { ($0.key.a, $0.key.b) < ($1.key.a, $1.key.b) }
            for (pair, pts) in pairs {
                let first = pts.min(by: { ($0.x, $0.y) < ($1.x, $1.y) })!
                if pts.count > 1 || find(pair.a) == find(pair.b) {
                    return "the rings of \(partName(parts.count, pi)) touch so that its interior is disconnected (near \(fmt(first.x, first.y))): split it into separate polygons"
                }
                parent[find(pair.a)] = find(pair.b)
            }
        }
        // 4. Parts of a MultiPolygon must not overlap.
        if parts.count > 1 {
            // Each part a point is located against gets bands once (a country's islands are
            // located against its mainland's thousands of edges, vertex by vertex).
            var banded = [BandedPolygon?](repeating: nil, count: parts.count)
            for i in 0..<parts.count {
                for j in 0..<parts.count where i != j && parts[i].bbox.intersects(parts[j].bbox) {
                    if banded[j] == nil { banded[j] = BandedPolygon(parts[j]) }
                    if polygonInteriorsMeet(parts[i], banded[j]!) {
                        return "polygons \(i) and \(j) of the MultiPolygon overlap: parts must not overlap (touching at points is fine); merge or separate them"
                    }
                }
            }
        }
        return nil
    }

    /// A segment's bounding box, for the sweep.
    struct SegmentBox {
        var minX: Double, maxX: Double, minY: Double, maxY: Double
    }

    struct RingPair: Hashable {
        var part: Int, a: Int, b: Int
        init(_ part: Int, _ r1: Int, _ r2: Int) { self.part = part; a = min(r1, r2); b = max(r1, r2) }
    }

    struct PointKey: Hashable { var x: Double, y: Double }

    static func partName(_ count: Int, _ part: Int) -> String { count == 1 ? "the polygon" : "polygon \(part)" }

    static func ringName(_ count: Int, _ part: Int, _ ring: Int) -> String {
        let r = ring == 0 ? "the shell (ring 0)" : "hole \(ring) (ring \(ring))"
        return count == 1 ? r : "\(r) of polygon \(part)"
    }

    /// Where ring `a` lies relative to ring `b`, given that their boundaries do not cross:
    /// decided by a vertex (or edge midpoint) of `a` that is not on `b`.
    static func ringPosition(_ a: Ring, inside b: Ring) -> PointLocation {
        for k in 0..<(a.pointCount - 1) {
            let l = b.locate(a.x(k), a.y(k))
            if l != .boundary { return l }
        }
        for k in 0..<(a.pointCount - 1) {
            let mx = (a.x(k) + a.x(k + 1)) / 2, my = (a.y(k) + a.y(k + 1)) / 2
            let l = b.locate(mx, my)
            if l != .boundary { return l }
        }
        return .boundary
    }

    /// True when the interiors of two polygons (whose boundaries do not cross) meet.
    static func polygonInteriorsMeet(_ p: Polygon, _ q: BandedPolygon) -> Bool {
        // Some vertex or edge midpoint of p's shell strictly inside q.
        let s = p.shell
        for k in 0..<(s.pointCount - 1) where q.locate(s.x(k), s.y(k)) == .inside { return true }
        for k in 0..<(s.pointCount - 1) {
            let mx = (s.x(k) + s.x(k + 1)) / 2, my = (s.y(k) + s.y(k + 1)) / 2
            if q.locate(mx, my) == .inside { return true }
        }
        return false
    }
}
