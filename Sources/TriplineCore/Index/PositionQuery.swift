import Foundation

/// A spatial query over the latest positions, with its order and paging: `nearby` answers in
/// order of haversine distance (ties by id), `within` in order of id (ids compared as UTF-8
/// bytes, which is code point order). A page ends with a cursor when more follow; the next
/// page continues strictly after the last answer, by that order, over the positions current
/// when it is asked (the data moves between pages: an entity that moved behind the cursor is
/// not answered again, one that moved ahead may be).
public struct PositionQuery: Sendable {
    public enum Area: Sendable {
        /// The `k` nearest (nil: no count limit) within `radiusM` metres (nil: any distance).
        /// At least one of the two is given.
        case nearby(lon: Double, lat: Double, k: Int?, radiusM: Double?)
        /// Covered by the shape (boundary included).
        case shape(ZoneShape)
        /// Inside the box, edges included; `minX > maxX` crosses the antimeridian.
        case box(BBox)
        /// Entities whose recent track (as a line, `TrackGeometry`) meets the shape.
        case track(ZoneShape, TrackStore.Span?)
    }

    public var area: Area
    /// Answers per page.
    public var limit: Int
    public var after: Cursor?

    public init(area: Area, limit: Int, after: Cursor? = nil) {
        self.area = area
        self.limit = limit
        self.after = after
    }

    /// Where a page ended: the last answer's id (and distance, for `nearby`), and how many
    /// answers the pages so far held (for `nearby` with `k`).
    public struct Cursor: Sendable, Equatable {
        public var id: String
        public var distance: Double?
        public var returned: Int

        public init(id: String, distance: Double?, returned: Int) {
            self.id = id
            self.distance = distance
            self.returned = returned
        }

        /// Opaque text: base64url of `n|returned|distance bits|id` or `w|returned||id`.
        public var text: String {
            let d = distance.map { String($0.bitPattern, radix: 16) } ?? ""
            let raw = "\(distance == nil ? "w" : "n")|\(returned)|\(d)|\(id)"
            return Data(raw.utf8).base64EncodedString().replacingOccurrences(of: "+", with: "-")
                .replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
        }

        public static func parse(_ s: String, nearby: Bool) -> Cursor? {
            var b = s.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
            while b.count % 4 != 0 { b += "=" }
            guard let data = Data(base64Encoded: b), let raw = String(data: data, encoding: .utf8) else { return nil }
            let f = raw.split(separator: "|", maxSplits: 3, omittingEmptySubsequences: false)
            guard f.count == 4, f[0] == (nearby ? "n" : "w"), let n = Int(f[1]), n >= 0 else { return nil }
            if nearby {
                guard let bits = UInt64(f[2], radix: 16) else { return nil }
                let d = Double(bitPattern: bits)
                guard d.isFinite, d >= 0 else { return nil }
                return Cursor(id: String(f[3]), distance: d, returned: n)
            }
            guard f[2].isEmpty else { return nil }
            return Cursor(id: String(f[3]), distance: nil, returned: n)
        }
    }

    public struct Hit: Sendable, Equatable {
        public var entity: Int32
        public var id: String
        public var distance: Double?
    }

    /// A box as a zone shape (two parts when it crosses the antimeridian).
    public static func boxShape(_ b: BBox) -> ZoneShape {
        func rect(_ x0: Double, _ x1: Double) -> Polygon {
            Polygon(shell: Ring(points: [(x0, b.minY), (x1, b.minY), (x1, b.maxY), (x0, b.maxY), (x0, b.minY)]), holes: [])
        }
        return .polygons(b.minX <= b.maxX ? [rect(b.minX, b.maxX)] : [rect(b.minX, 180), rect(-180, b.maxX)])
    }

    /// The first 8 UTF-8 bytes of an id as a big-endian integer, zero-padded: `a < b` here
    /// implies `idLess(a, b)`, and equal prefixes leave it to `idLess`.
    @inline(__always) static func idPrefix(_ s: String) -> UInt64 {
        var v: UInt64 = 0, n: UInt64 = 0
        for b in s.utf8 {
            if n == 8 { break }
            v = v << 8 | UInt64(b)
            n += 1
        }
        return v << (8 * (8 - n))
    }

    /// `a` before `b` in code point order.
    /// (memcmp on the contiguous UTF-8 of native strings: sorting 10,000 answers by the
    /// generic element-wise comparison took most of a `within` query's time.)
    @inline(__always) public static func idLess(_ a: String, _ b: String) -> Bool {
        let fast = a.utf8.withContiguousStorageIfAvailable { pa in
            b.utf8.withContiguousStorageIfAvailable { pb -> Bool in
                let n = min(pa.count, pb.count)
                if n > 0 {
                    let c = memcmp(pa.baseAddress!, pb.baseAddress!, n)
                    if c != 0 { return c < 0 }
                }
                return pa.count < pb.count
            }
        }
        if let r = fast ?? nil { return r }
        return a.utf8.lexicographicallyPrecedes(b.utf8)
    }

    /// One page of answers and the cursor for the next (nil when this is the last).
    public func run(_ index: PositionIndex, tracks: TrackStore? = nil, name: (Int32) -> String, accept: (Int32) -> Bool) -> (hits: [Hit], next: Cursor?) {
        let returned = after?.returned ?? 0
        switch area {
        case .nearby(let x, let y, let k, let radius):
            let cap = k.map { max(0, $0 - returned) } ?? Int.max
            let want = min(limit, cap)
            if want == 0 { return ([], nil) }
            let afterD = after?.distance, afterId = after?.id
            func behind(_ d: Double, _ e: Int32) -> Bool {
                guard let afterD, let afterId else { return false }
                return d < afterD || (d == afterD && !Self.idLess(afterId, name(e)))
            }
            var found: [(entity: Int32, distance: Double)]
            if let radius {
                found = index.within(radiusM: radius, lon: x, lat: y) { accept($0) }
                if after != nil { found.removeAll { behind($0.distance, $0.entity) } }
            } else {
                // One more than the page, to know whether another page follows. Entities
                // behind the cursor count as not found (their distance is at most the cursor's,
                // so the search radius still grows past them).
                found = index.nearest(want + 1, lon: x, lat: y) { e in
                    guard accept(e) else { return false }
                    guard let afterD else { return true }
                    let i = Int(e)
                    let d = Haversine.distance(x, y, index.lon[i], index.lat[i])
                    return !behind(d, e)
                }
            }
            var hits = found.map { Hit(entity: $0.entity, id: name($0.entity), distance: $0.distance) }
            hits.sort { $0.distance! != $1.distance! ? $0.distance! < $1.distance! : Self.idLess($0.id, $1.id) }
            let more = hits.count > want && want < cap
            if hits.count > want { hits.removeLast(hits.count - want) }
            guard more, let last = hits.last else { return (hits, nil) }
            return (hits, Cursor(id: last.id, distance: last.distance, returned: returned + hits.count))
        case .shape, .box, .track:
            let found = matching(index, tracks: tracks, accept: accept)
            // Sorted by id through each id's first 8 bytes as one integer, the whole ids
            // compared only where those are equal (the same order as `idLess`: ids hold no
            // NUL, so the zero padding of a short id sorts it before its extensions).
            var keyed: [(prefix: UInt64, hit: Hit)] = []
            keyed.reserveCapacity(found.count)
            for e in found {
                let id = name(e)
                if let a = after?.id, !Self.idLess(a, id) { continue }
                keyed.append((Self.idPrefix(id), Hit(entity: e, id: id, distance: nil)))
            }
            keyed.sort { $0.prefix != $1.prefix ? $0.prefix < $1.prefix : Self.idLess($0.hit.id, $1.hit.id) }
            var hits = keyed.map(\.hit)
            let more = hits.count > limit
            if more { hits.removeLast(hits.count - limit) }
            guard more, let last = hits.last else { return (hits, nil) }
            return (hits, Cursor(id: last.id, distance: nil, returned: returned + hits.count))
        }
    }

    /// The entities of an area query (`within`, `intersects`), unordered.
    func matching(_ index: PositionIndex, tracks: TrackStore?, accept: (Int32) -> Bool) -> [Int32] {
        var found: [Int32] = []
        if case .shape(let s) = area { found = index.within(shape: s, accept: accept) }
        else if case .box(let b) = area { found = index.within(box: b, accept: accept) }
        else if case .track(let shape, let span) = area, let tracks {
            var reach = BBox.empty
            for b in shape.indexBoxes { reach.extend(b) }
            var pts: [Double] = []
            tracks.forEachEntity { e in
                // Cheap refusals first: a track whose box misses the shape's reach (a track
                // across the antimeridian is tested in full), by the box of all it holds, then
                // by the box of the span asked.
                let all = tracks.box(e)
                if all.maxX - all.minX <= 180 && !all.intersects(reach) { return }
                tracks.points(e, span: span, into: &pts)
                var tb = BBox.empty
                for i in stride(from: 0, to: pts.count, by: 2) { tb.extend(pts[i], pts[i + 1]) }
                if tb.maxX - tb.minX <= 180 && !tb.intersects(reach) { return }
                if TrackGeometry.meets(shape, pts) && accept(e) { found.append(e) }
            }
        }
        return found
    }

    /// How many entities answer, all pages together: what `run` would return page after page
    /// from the first (the limit and a cursor play no part), without naming or ordering them.
    public func count(_ index: PositionIndex, tracks: TrackStore? = nil, accept: (Int32) -> Bool) -> Int {
        switch area {
        case .nearby(let x, let y, let k, let radius):
            if let radius {
                let n = index.within(radiusM: radius, lon: x, lat: y) { accept($0) }.count
                return k.map { min($0, n) } ?? n
            }
            guard let k else { return 0 }
            // The search returns whole rings, so possibly more than k.
            return min(k, index.nearest(k, lon: x, lat: y) { accept($0) }.count)
        case .shape, .box, .track:
            return matching(index, tracks: tracks, accept: accept).count
        }
    }
}
