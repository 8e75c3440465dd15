import Foundation

/// An axis-aligned box in lon/lat degrees.
public struct BBox: Sendable, Hashable {
    public var minX: Double, minY: Double, maxX: Double, maxY: Double
    public init(minX: Double, minY: Double, maxX: Double, maxY: Double) {
        self.minX = minX; self.minY = minY; self.maxX = maxX; self.maxY = maxY
    }
    public static let empty = BBox(minX: .infinity, minY: .infinity, maxX: -.infinity, maxY: -.infinity)
    public func contains(_ x: Double, _ y: Double) -> Bool {
        x >= minX && x <= maxX && y >= minY && y <= maxY
    }
    public func intersects(_ o: BBox) -> Bool {
        minX <= o.maxX && o.minX <= maxX && minY <= o.maxY && o.minY <= maxY
    }
    public mutating func extend(_ x: Double, _ y: Double) {
        minX = Swift.min(minX, x); maxX = Swift.max(maxX, x)
        minY = Swift.min(minY, y); maxY = Swift.max(maxY, y)
    }
    public mutating func extend(_ b: BBox) {
        minX = Swift.min(minX, b.minX); maxX = Swift.max(maxX, b.maxX)
        minY = Swift.min(minY, b.minY); maxY = Swift.max(maxY, b.maxY)
    }
}

/// Where a point lies relative to a closed ring or polygon.
public enum PointLocation: Sendable, Equatable {
    case inside, boundary, outside
}

/// A closed ring, stored as interleaved x,y coordinates, closed (last == first), with
/// consecutive repeated vertices removed.
public struct Ring: Sendable {
    /// x0, y0, x1, y1, ..., xn, yn with (xn, yn) == (x0, y0).
    public var coords: [Double]
    public var bbox: BBox

    /// Builds a ring from positions; consecutive repeats are dropped.
    public init(points: [(Double, Double)]) {
        var c: [Double] = []
        c.reserveCapacity(points.count * 2)
        var b = BBox.empty
        for (x, y) in points {
            if c.count >= 2 && c[c.count - 2] == x && c[c.count - 1] == y { continue }
            c.append(x); c.append(y)
            b.extend(x, y)
        }
        coords = c
        bbox = b
    }

    /// Number of vertices including the closing one.
    public var pointCount: Int { coords.count / 2 }
    public func x(_ i: Int) -> Double { coords[2 * i] }
    public func y(_ i: Int) -> Double { coords[2 * i + 1] }

    /// Locates a point against the ring: exact, boundary included as `.boundary`.
    public func locate(_ px: Double, _ py: Double) -> PointLocation {
        if !bbox.contains(px, py) { return .outside }
        return coords.withUnsafeBufferPointer { Ring.locate($0.baseAddress!, pointCount, px, py) }
    }

    /// Locates a point against a closed ring of `points` points stored at `c` as x, y pairs.
    /// Crossing number along +x with a half-open rule, boundary tested by exact orientation.
    @inline(__always)
    static func locate(_ c: UnsafePointer<Double>, _ points: Int, _ px: Double, _ py: Double) -> PointLocation {
        var inside = false
        var ax = c[0], ay = c[1]
        var k = 1
        while k < points {
            let bx = c[2 * k], by = c[2 * k + 1]
            k += 1
            defer { ax = bx; ay = by }
            if edge(ax, ay, bx, by, px, py, &inside) { return .boundary }
        }
        return inside ? .inside : .outside
    }

    /// As `locate`, over only the edges listed in `edges` (edge k joins points k and k + 1).
    /// An edge whose y-range does not hold `py` never changes the answer, so any list that
    /// includes every edge whose y-range holds `py` gives exactly `locate`'s answer, in any
    /// order: the crossing count's parity does not depend on order, and a boundary hit is
    /// the answer wherever it comes.
    @inline(__always)
    static func locate(_ c: UnsafePointer<Double>, edges: UnsafeBufferPointer<Int32>, _ px: Double, _ py: Double) -> PointLocation {
        var inside = false
        for e in edges {
            let k = 2 * Int(e)
            if edge(c[k], c[k + 1], c[k + 2], c[k + 3], px, py, &inside) { return .boundary }
        }
        return inside ? .inside : .outside
    }

    /// One edge of the crossing-number test: toggles `inside` when the ray along +x from the
    /// point crosses the edge (half-open in y), and returns true when the point is on it.
    @inline(__always)
    static func edge(_ ax: Double, _ ay: Double, _ bx: Double, _ by: Double, _ px: Double, _ py: Double, _ inside: inout Bool) -> Bool {
        if (py < ay && py < by) || (py > ay && py > by) { return false }
        if ay == by {
            return px >= Swift.min(ax, bx) && px <= Swift.max(ax, bx)
        }
        if px > ax && px > bx { return false }
        let crosses = (ay > py) != (by > py)
        if px < ax && px < bx {
            if crosses { inside.toggle() }
            return false
        }
        let o = Predicates.orient(ax, ay, bx, by, px, py)
        if o == 0 { return true }
        if crosses && ((by > ay) == (o > 0)) { inside.toggle() }
        return false
    }
}

/// A long ring's edges listed by horizontal band of equal height, so that a point is tested
/// against the edges of its band instead of the whole ring (a country's outline has
/// thousands). The zone index stores these flattened; polygon validation builds them for the
/// parts of a multipolygon it locates many points against.
public struct RingBands: Sendable {
    /// Rings with fewer points are not banded.
    static let minPoints = 33
    /// About this many edges per band (long edges appear in every band they cross).
    static let edgesPerBand = 4
    /// Bound on the band lists' size: on average at most this many listings per edge.
    static let maxListingsPerEdge = 8

    public let count: Int
    /// Bands per degree of latitude.
    public let scale: Double
    public let minY: Double
    /// count + 1 offsets into `edges`.
    public let offsets: [Int32]
    /// Edge k (from point k to point k + 1) for each band it meets.
    public let edges: [Int32]

    /// The band of `y` among `count` bands from `minY` at `scale` bands per degree. Monotonic
    /// in `y` (a subtraction, a multiplication by a positive number and a truncation of a
    /// non-negative value all are), so an edge from y0 to y1 listed in bands band(y0) through
    /// band(y1) is listed in the band of every y between them: no margin is needed.
    @inline(__always)
    static func band(_ y: Double, _ minY: Double, _ scale: Double, _ count: Int) -> Int {
        let v = (y - minY) * scale
        return v <= 0 ? 0 : (v >= Double(count - 1) ? count - 1 : Int(v))
    }

    /// The bands of `r`, or nil when it is too short (or flat) to gain from them.
    public init?(_ r: Ring) {
        let n = r.pointCount
        let minY = r.bbox.minY, maxY = r.bbox.maxY
        var count = max(1, min(1 << 16, (n - 1) / RingBands.edgesPerBand))
        guard n >= RingBands.minPoints, maxY > minY, (Double(count) / (maxY - minY)).isFinite else { return nil }
        var scale = 0.0
        var sizes: [Int32] = []
        var ranges: [(Int, Int)] = []
        ranges.reserveCapacity(n - 1)
        // Edges that span many bands are listed in each; a ring of long zig-zags would make
        // the lists quadratic, so halve the band count until they hold at most
        // `maxListingsPerEdge` listings per edge on average.
        while true {
            scale = Double(count) / (maxY - minY)
            sizes = [Int32](repeating: 0, count: count + 1)
            ranges.removeAll(keepingCapacity: true)
            var total = 0
            for k in 0..<(n - 1) {
                let y0 = r.y(k), y1 = r.y(k + 1)
                let b0 = RingBands.band(Swift.min(y0, y1), minY, scale, count), b1 = RingBands.band(Swift.max(y0, y1), minY, scale, count)
                ranges.append((b0, b1))
                total += b1 - b0 + 1
            }
            if total <= RingBands.maxListingsPerEdge * (n - 1) || count == 1 { break }
            count = max(1, count / 2)
        }
        for (b0, b1) in ranges { for b in b0...b1 { sizes[b + 1] += 1 } }
        for b in 0..<count { sizes[b + 1] += sizes[b] }
        var fill = Array(sizes[0..<count])
        var edges = [Int32](repeating: 0, count: Int(sizes[count]))
        for (k, (b0, b1)) in ranges.enumerated() {
            for b in b0...b1 {
                edges[Int(fill[b])] = Int32(k)
                fill[b] += 1
            }
        }
        self.count = count
        self.scale = scale
        self.minY = minY
        self.offsets = sizes
        self.edges = edges
    }

    /// Locates (x, y) against `r` (the ring these bands were built from): the same answer as
    /// `r.locate(x, y)` (see `Ring.locate(_:edges:_:_:)`).
    public func locate(_ r: Ring, _ x: Double, _ y: Double) -> PointLocation {
        if !r.bbox.contains(x, y) { return .outside }
        let b = RingBands.band(y, minY, scale, count)
        let lo = Int(offsets[b]), hi = Int(offsets[b + 1])
        return r.coords.withUnsafeBufferPointer { c in
            edges.withUnsafeBufferPointer { Ring.locate(c.baseAddress!, edges: UnsafeBufferPointer(rebasing: $0[lo..<hi]), x, y) }
        }
    }
}

/// A polygon with bands for its long rings: locates as `Polygon.locate` does, faster when
/// many points are located against one long polygon.
public struct BandedPolygon: Sendable {
    public let polygon: Polygon
    let shellBands: RingBands?
    let holeBands: [RingBands?]

    public init(_ p: Polygon) {
        polygon = p
        shellBands = RingBands(p.shell)
        holeBands = p.holes.map { RingBands($0) }
    }

    @inline(__always)
    static func locate(_ r: Ring, _ bands: RingBands?, _ x: Double, _ y: Double) -> PointLocation {
        if let bands { return bands.locate(r, x, y) }
        return r.locate(x, y)
    }

    /// The same answer as `polygon.locate(x, y)`.
    public func locate(_ x: Double, _ y: Double) -> PointLocation {
        Polygon.locate(shell: BandedPolygon.locate(polygon.shell, shellBands, x, y), holes: polygon.holes.count) {
            BandedPolygon.locate(polygon.holes[$0], holeBands[$0], x, y)
        }
    }
}

/// A polygon: one shell and any number of holes.
public struct Polygon: Sendable {
    public var shell: Ring
    public var holes: [Ring]
    public var bbox: BBox { shell.bbox }

    public init(shell: Ring, holes: [Ring]) {
        self.shell = shell
        self.holes = holes
    }

    /// Locates a point against the polygon (boundary = any ring's boundary).
    
    public func locate(_ x: Double, _ y: Double) -> PointLocation {
        Polygon.locate(shell: shell.locate(x, y), holes: holes.count) { holes[$0].locate(x, y) }
    }

    /// A point's place in a polygon from its place against the shell and, in order and only
    /// as needed, against each hole: inside a hole is outside the polygon, on a hole's
    /// boundary is on the polygon's. (`BandedPolygon` locates its rings by bands and shares
    /// this rule.)
    @inline(__always)
    static func locate(shell s: PointLocation, holes count: Int, hole: (Int) -> PointLocation) -> PointLocation {
        if s != .inside { return s }
        for k in 0..<count {
            switch hole(k) {
            case .inside: return .outside
            case .boundary: return .boundary
            case .outside: continue
            }
        }
        return .inside
    }

    /// `covers`: interior or boundary (spec section 1).
    public func covers(_ x: Double, _ y: Double) -> Bool { locate(x, y) != .outside }
}

/// The geometry of a zone.
public enum ZoneShape: Sendable {
    case polygons([Polygon])
    case circle(lon: Double, lat: Double, radiusM: Double)

    /// True when the zone covers the point (closed set; circles by haversine).
    
    public func covers(_ x: Double, _ y: Double) -> Bool {
        switch self {
        case .polygons(let ps):
            for p in ps where p.bbox.contains(x, y) && p.covers(x, y) { return true }
            return false
        case .circle(let cx, let cy, let r):
            return Haversine.distance(cx, cy, x, y) <= r
        }
    }

    /// Bounding boxes to index (one per polygon part; a circle across the antimeridian gets two).
    public var indexBoxes: [BBox] {
        switch self {
        case .polygons(let ps): return ps.map(\.bbox)
        case .circle(let lon, let lat, let r): return Haversine.circleBoxes(lon: lon, lat: lat, radiusM: r)
        }
    }
}

/// Great-circle distances exactly as spec section 1 writes them.
public enum Haversine {
    public static let earthRadiusM: Double = 6_371_008.8

    
    public static func distance(_ lon1: Double, _ lat1: Double, _ lon2: Double, _ lat2: Double) -> Double {
        let phi1 = lat1 * (Double.pi / 180)
        let phi2 = lat2 * (Double.pi / 180)
        let dLambda = (lon2 - lon1) * (Double.pi / 180)
        let s1 = sin((phi2 - phi1) / 2)
        let s2 = sin(dLambda / 2)
        // Spec v1.2 fixes the association: (s1*s1) + ((cos1*cos2) * (s2*s2)), then (2R) * asin.
        // Swift contracts no multiply-add, so this is the spec's rounding to the bit.
        let a = (s1 * s1) + ((cos(phi1) * cos(phi2)) * (s2 * s2))
        return (2 * earthRadiusM) * asin(min(1, a.squareRoot()))
    }

    /// Conservative lon/lat boxes covering a circle, with a safety margin for rounding.
    public static func circleBoxes(lon: Double, lat: Double, radiusM: Double) -> [BBox] {
        let dLat = (radiusM / earthRadiusM) * (180 / Double.pi) * 1.000001 + 1e-9
        let minLat = lat - dLat, maxLat = lat + dLat
        if minLat <= -90 || maxLat >= 90 || radiusM >= earthRadiusM * Double.pi / 2 {
            return [BBox(minX: -180, minY: max(-90, minLat), maxX: 180, maxY: min(90, maxLat))]
        }
        // The widest longitude extent is reached at the latitude nearest a pole.
        let maxAbsLat = max(abs(minLat), abs(maxLat)) * Double.pi / 180
        let angular = radiusM / earthRadiusM
        let ratio = sin(angular) / cos(maxAbsLat)
        if ratio >= 1 {
            return [BBox(minX: -180, minY: minLat, maxX: 180, maxY: maxLat)]
        }
        let dLon = asin(ratio) * (180 / Double.pi) * 1.000001 + 1e-9
        let lo = lon - dLon, hi = lon + dLon
        if lo < -180 {
            return [BBox(minX: -180, minY: minLat, maxX: hi, maxY: maxLat),
                    BBox(minX: lo + 360, minY: minLat, maxX: 180, maxY: maxLat)]
        }
        if hi > 180 {
            return [BBox(minX: lo, minY: minLat, maxX: 180, maxY: maxLat),
                    BBox(minX: -180, minY: minLat, maxX: hi - 360, maxY: maxLat)]
        }
        return [BBox(minX: lo, minY: minLat, maxX: hi, maxY: maxLat)]
    }
}
