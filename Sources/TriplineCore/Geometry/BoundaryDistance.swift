/// Distances from a point to a zone's boundary, for `exit_margin_m`. A polygon's boundary is
/// its rings (shells and holes) with edges drawn as straight lines in longitude/latitude, as
/// the covers test draws them; the distance to a point of an edge is haversine (spec 1.2).
/// A circle's boundary is at `radius_m` from its centre.
public enum BoundaryDistance {
    /// Is some boundary point of `shape` within `margin` metres of (lon, lat)?
    public static func within(_ shape: ZoneShape, lon: Double, lat: Double, margin: Double) -> Bool {
        switch shape {
        case .circle(let cx, let cy, let r):
            // Outside a circle, the nearest boundary point is on the ray from the centre.
            return Haversine.distance(cx, cy, lon, lat) <= r + margin
        case .polygons(let ps):
            let boxes = Haversine.circleBoxes(lon: lon, lat: lat, radiusM: margin)
            for p in ps {
                if ring(p.shell, lon, lat, margin, boxes) { return true }
                for h in p.holes where ring(h, lon, lat, margin, boxes) { return true }
            }
            return false
        }
    }

    /// The haversine distance from (lon, lat) to the nearest boundary point of `shape`.
    public static func distance(_ shape: ZoneShape, lon: Double, lat: Double) -> Double {
        switch shape {
        case .circle(let cx, let cy, let r):
            return abs(Haversine.distance(cx, cy, lon, lat) - r)
        case .polygons(let ps):
            var best = Double.infinity
            for p in ps {
                for rg in [p.shell] + p.holes {
                    let n = rg.pointCount
                    for i in 0..<n {
                        let j = (i + 1) % n
                        best = Swift.min(best, segment(lon, lat, rg.x(i), rg.y(i), rg.x(j), rg.y(j), stopAt: -1))
                    }
                }
            }
            return best
        }
    }

    static func ring(_ rg: Ring, _ lon: Double, _ lat: Double, _ margin: Double, _ boxes: [BBox]) -> Bool {
        guard boxes.contains(where: { $0.intersects(rg.bbox) }) else { return false }
        let n = rg.pointCount
        for i in 0..<n {
            let j = (i + 1) % n
            let ax = rg.x(i), ay = rg.y(i), bx = rg.x(j), by = rg.y(j)
            let eb = BBox(minX: Swift.min(ax, bx), minY: Swift.min(ay, by), maxX: Swift.max(ax, bx), maxY: Swift.max(ay, by))
            guard boxes.contains(where: { $0.intersects(eb) }) else { continue }
            if segment(lon, lat, ax, ay, bx, by, stopAt: margin) <= margin { return true }
        }
        return false
    }

    /// The least haversine distance from (px, py) to the edge a-b (points a + t (b - a),
    /// t in [0, 1]), by golden-section search over t; stops early once a distance at most
    /// `stopAt` is found.
    static func segment(_ px: Double, _ py: Double, _ ax: Double, _ ay: Double, _ bx: Double, _ by: Double, stopAt: Double) -> Double {
        func f(_ t: Double) -> Double { Haversine.distance(px, py, ax + t * (bx - ax), ay + t * (by - ay)) }
        var best = Swift.min(f(0), f(1))
        if best <= stopAt || (ax == bx && ay == by) { return best }
        let g = 0.618_033_988_749_894_8
        var lo = 0.0, hi = 1.0
        var c = hi - g * (hi - lo), d = lo + g * (hi - lo)
        var fc = f(c), fd = f(d)
        for _ in 0..<80 {
            best = Swift.min(best, fc, fd)
            if best <= stopAt || hi - lo < 1e-13 { break }
            if fc < fd {
                hi = d; d = c; fd = fc
                c = hi - g * (hi - lo); fc = f(c)
            } else {
                lo = c; c = d; fc = fd
                d = lo + g * (hi - lo); fd = f(d)
            }
        }
        return Swift.min(best, fc, fd)
    }
}
