import Foundation

/// The recent track of each entity: its last `capacity` positions by event time, for
/// `intersects` queries. Flat storage, `capacity` slots per entity in three arrays (no object per
/// entity): 24 bytes per slot, so `capacity * 24` bytes per entity with a position, plus 32 for
/// the box of the positions held.
///
/// Slots hold an entity's positions in ascending event time. A position at or after the newest
/// is appended (the oldest dropped when full); a late one is inserted at its place by time when
/// it is newer than the oldest held (or the track is not full), and otherwise ignored. Equal
/// times keep the order of arrival.
public final class TrackStore {
    public let capacity: Int
    var lon: [Double] = []
    var lat: [Double] = []
    var time: [Millis] = []
    /// Per entity: positions held (0 to capacity).
    var count: [Int32] = []
    /// Per entity: the box of the positions held (min lon, min lat, max lon, max lat). Any span
    /// of the track lies in it, so a query refuses most tracks from these four numbers
    /// without reading the track (a scan that read every track took 52 ms at 1,000,000).
    var boxes: [Double] = []

    public init(capacity: Int) {
        precondition(capacity >= 1)
        self.capacity = capacity
    }

    public var entityCount: Int { count.count }

    public func add(entity: Int32, lon x: Double, lat y: Double, time t: Millis) {
        let e = Int(entity)
        if e >= count.count {
            let n = max(e + 1, count.count * 2, 64)
            count.append(contentsOf: repeatElement(0, count: n - count.count))
            lon.append(contentsOf: repeatElement(0, count: n * capacity - lon.count))
            lat.append(contentsOf: repeatElement(0, count: n * capacity - lat.count))
            time.append(contentsOf: repeatElement(.min, count: n * capacity - time.count))
            boxes.append(contentsOf: repeatElement(0, count: n * 4 - boxes.count))
        }
        let base = e * capacity
        var n = Int(count[e])
        // Where it goes: after every held position with time <= t.
        var at = n
        while at > 0 && time[base + at - 1] > t { at -= 1 }
        if n == capacity {
            if at == 0 { return }  // older than everything held in a full track
            // Drop the oldest: shift [1, at) down by one, insert at at - 1.
            for i in 1..<at {
                lon[base + i - 1] = lon[base + i]; lat[base + i - 1] = lat[base + i]; time[base + i - 1] = time[base + i]
            }
            at -= 1
        } else {
            var i = n
            while i > at {
                lon[base + i] = lon[base + i - 1]; lat[base + i] = lat[base + i - 1]; time[base + i] = time[base + i - 1]
                i -= 1
            }
            n += 1
            count[e] = Int32(n)
        }
        lon[base + at] = x; lat[base + at] = y; time[base + at] = t
        // The box again from the positions held (a dropped oldest may have been its edge).
        var x0 = Double.infinity, y0 = Double.infinity, x1 = -Double.infinity, y1 = -Double.infinity
        for i in base..<(base + Int(count[e])) {
            x0 = min(x0, lon[i]); x1 = max(x1, lon[i]); y0 = min(y0, lat[i]); y1 = max(y1, lat[i])
        }
        boxes[e * 4] = x0; boxes[e * 4 + 1] = y0; boxes[e * 4 + 2] = x1; boxes[e * 4 + 3] = y1
    }

    /// The box of every position the entity's track holds (empty: no track).
    public func box(_ entity: Int32) -> BBox {
        let e = Int(entity)
        guard e < count.count, count[e] > 0 else { return .empty }
        return BBox(minX: boxes[e * 4], minY: boxes[e * 4 + 1], maxX: boxes[e * 4 + 2], maxY: boxes[e * 4 + 3])
    }

    /// How much of a track a query takes: the last `n` positions, or those at most `duration`
    /// milliseconds older than the newest; nil takes every position held.
    public enum Span: Sendable, Equatable {
        case points(Int)
        case duration(Millis)
    }

    /// The entity's track as interleaved lon, lat (oldest first) under `span`; empty when none.
    public func points(_ entity: Int32, span: Span?, into out: inout [Double]) {
        out.removeAll(keepingCapacity: true)
        let e = Int(entity)
        guard e < count.count else { return }
        let n = Int(count[e])
        guard n > 0 else { return }
        let base = e * capacity
        var first = 0
        switch span {
        case .points(let k): first = max(0, n - k)
        case .duration(let d):
            let newest = time[base + n - 1]
            while first < n - 1 && time[base + first] < newest - d { first += 1 }
        case nil: break
        }
        for i in first..<n {
            out.append(lon[base + i])
            out.append(lat[base + i])
        }
    }

    /// Every entity holding a track.
    public func forEachEntity(_ body: (Int32) -> Void) {
        for e in 0..<count.count where count[e] > 0 { body(Int32(e)) }
    }

    public var bytes: Int { count.capacity * 4 + lon.capacity * 8 + lat.capacity * 8 + time.capacity * 8 + boxes.capacity * 8 }
}

/// Whether a track, as a line through its positions in order, meets a shape (closed sets: a
/// touch counts). Each segment is straight in lon/lat, as zone edges are, except that a segment
/// whose longitudes differ by more than 180 degrees goes the short way, across the antimeridian
/// (it is cut in two there). A single position is a point.
public enum TrackGeometry {
    /// Segments of the track (x1, y1, x2, y2), antimeridian crossings cut.
    public static func segments(_ pts: [Double]) -> [(Double, Double, Double, Double)] {
        var out: [(Double, Double, Double, Double)] = []
        let n = pts.count / 2
        if n == 1 { return [(pts[0], pts[1], pts[0], pts[1])] }
        for i in 0..<max(0, n - 1) {
            let x1 = pts[2 * i], y1 = pts[2 * i + 1], x2 = pts[2 * i + 2], y2 = pts[2 * i + 3]
            if abs(x2 - x1) <= 180 {
                out.append((x1, y1, x2, y2))
                continue
            }
            // The short way: x2 shifted by 360 towards x1; cut at the meridian +-180.
            let edge: Double = x1 > 0 ? 180 : -180
            let x2s = x1 > 0 ? x2 + 360 : x2 - 360
            let f = (edge - x1) / (x2s - x1)
            let ym = y1 + (y2 - y1) * f
            out.append((x1, y1, edge, ym))
            out.append((-edge, ym, x2, y2))
        }
        return out
    }

    /// Orientation of (a, b, c): > 0 counter-clockwise, < 0 clockwise, 0 collinear.
    @inline(__always) static func orient(_ ax: Double, _ ay: Double, _ bx: Double, _ by: Double, _ cx: Double, _ cy: Double) -> Double {
        (bx - ax) * (cy - ay) - (by - ay) * (cx - ax)
    }

    @inline(__always) static func onSegment(_ ax: Double, _ ay: Double, _ bx: Double, _ by: Double, _ px: Double, _ py: Double) -> Bool {
        px >= min(ax, bx) && px <= max(ax, bx) && py >= min(ay, by) && py <= max(ay, by)
    }

    /// Closed segments ab and cd share a point.
    public static func segmentsMeet(_ ax: Double, _ ay: Double, _ bx: Double, _ by: Double,
                                    _ cx: Double, _ cy: Double, _ dx: Double, _ dy: Double) -> Bool {
        let d1 = orient(cx, cy, dx, dy, ax, ay), d2 = orient(cx, cy, dx, dy, bx, by)
        let d3 = orient(ax, ay, bx, by, cx, cy), d4 = orient(ax, ay, bx, by, dx, dy)
        if ((d1 > 0 && d2 < 0) || (d1 < 0 && d2 > 0)) && ((d3 > 0 && d4 < 0) || (d3 < 0 && d4 > 0)) { return true }
        if d1 == 0 && onSegment(cx, cy, dx, dy, ax, ay) { return true }
        if d2 == 0 && onSegment(cx, cy, dx, dy, bx, by) { return true }
        if d3 == 0 && onSegment(ax, ay, bx, by, cx, cy) { return true }
        if d4 == 0 && onSegment(ax, ay, bx, by, dx, dy) { return true }
        return false
    }

    /// The track meets the shape: a position covered, or a segment crossing or touching a ring
    /// (polygons); for a circle, the segment's point nearest the centre (found in a flat
    /// projection scaled by the cosine of the centre's latitude) within `radius_m` by haversine.
    public static func meets(_ shape: ZoneShape, _ pts: [Double]) -> Bool {
        let n = pts.count / 2
        guard n > 0 else { return false }
        for i in 0..<n where shape.covers(pts[2 * i], pts[2 * i + 1]) { return true }
        let segs = segments(pts)
        switch shape {
        case .polygons(let polys):
            for (x1, y1, x2, y2) in segs {
                let sb = BBox(minX: min(x1, x2), minY: min(y1, y2), maxX: max(x1, x2), maxY: max(y1, y2))
                for p in polys where p.bbox.intersects(sb) {
                    for ring in [p.shell] + p.holes where ring.bbox.intersects(sb) {
                        let c = ring.coords
                        for k in 0..<(ring.pointCount - 1) {
                            if segmentsMeet(x1, y1, x2, y2, c[2 * k], c[2 * k + 1], c[2 * k + 2], c[2 * k + 3]) { return true }
                        }
                    }
                }
            }
            return false
        case .circle(let cx, let cy, let r):
            let k = cos(cy * Double.pi / 180)
            for (x1, y1, x2, y2) in segs {
                // Longitudes relative to the centre, the short way round.
                func rel(_ x: Double) -> Double { var d = x - cx; if d > 180 { d -= 360 } else if d < -180 { d += 360 }; return d }
                let ax = rel(x1) * k, ay = y1 - cy, bx = rel(x2) * k, by = y2 - cy
                let vx = bx - ax, vy = by - ay
                let len2 = vx * vx + vy * vy
                let t = len2 > 0 ? max(0, min(1, -(ax * vx + ay * vy) / len2)) : 0
                var px = cx + (rel(x1) + (rel(x2) - rel(x1)) * t)
                if px > 180 { px -= 360 } else if px < -180 { px += 360 }
                let py = y1 + (y2 - y1) * t
                if Haversine.distance(cx, cy, px, py) <= r { return true }
            }
            return false
        }
    }
}
