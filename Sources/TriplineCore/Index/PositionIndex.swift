/// The latest position of each entity (by engine entity id), kept in a hashed uniform grid
/// of lon/lat cells so that "nearest to a point", "within a radius" and "within a shape"
/// read only the cells that can hold an answer.
///
/// An update is O(1): the entity leaves its old cell's list (swap-remove, its slot kept per
/// entity) and joins the new one. A query that would touch more cells than there are
/// occupied ones walks the occupied cells instead, so a query box the size of a continent
/// costs no more than a scan. Distances are `Haversine.distance` (spec 1.2's rounding);
/// "within a shape" is `ZoneIndex`'s covers test, the one zones use.
public final class PositionIndex {
    /// Cell side in degrees.
    public let cellDeg: Double
    let columns: Int64
    let rows: Int64
    public private(set) var lon: [Double] = []
    public private(set) var lat: [Double] = []
    /// Event time of the latest position; `.min` when the entity has none.
    public private(set) var time: [Millis] = []
    /// Per entity: its bucket (-1: none) and its slot in the bucket's list.
    var bucketOf: [Int32] = []
    var slotOf: [Int32] = []
    /// Per bucket: its cell key and its entities. Emptied buckets are reused.
    var bucketCell: [Int64] = []
    var members: [[Int32]] = []
    var freeBuckets: [Int32] = []
    var bucketByCell: [Int64: Int32] = [:]
    public private(set) var count = 0

    public init(cellDeg: Double = 0.01) {
        precondition(cellDeg > 0 && cellDeg <= 90)
        self.cellDeg = cellDeg
        columns = Int64((360 / cellDeg).rounded(.up))
        rows = Int64((180 / cellDeg).rounded(.up))
    }

    @inline(__always) func column(_ x: Double) -> Int64 {
        let c = Int64(((x + 180) / cellDeg).rounded(.down))
        return c < 0 ? 0 : (c >= columns ? columns - 1 : c)
    }

    @inline(__always) func row(_ y: Double) -> Int64 {
        let r = Int64(((y + 90) / cellDeg).rounded(.down))
        return r < 0 ? 0 : (r >= rows ? rows - 1 : r)
    }

    /// Records a position; an older one than the entity's latest (by event time) is ignored.
    public func track(entity: Int32, lon x: Double, lat y: Double, time t: Millis) {
        let e = Int(entity)
        if e >= time.count {
            let n = max(e + 1, time.count * 2, 64)
            lon.append(contentsOf: repeatElement(0, count: n - lon.count))
            lat.append(contentsOf: repeatElement(0, count: n - lat.count))
            time.append(contentsOf: repeatElement(.min, count: n - time.count))
            bucketOf.append(contentsOf: repeatElement(-1, count: n - bucketOf.count))
            slotOf.append(contentsOf: repeatElement(0, count: n - slotOf.count))
        }
        guard t >= time[e] else { return }
        if time[e] == .min { count += 1 }
        lon[e] = x
        lat[e] = y
        time[e] = t
        let cell = row(y) * columns + column(x)
        let old = bucketOf[e]
        if old >= 0 && bucketCell[Int(old)] == cell { return }
        if old >= 0 { leave(entity, bucket: old) }
        let b: Int32
        if let have = bucketByCell[cell] {
            b = have
        } else if let free = freeBuckets.popLast() {
            b = free
            bucketCell[Int(b)] = cell
            bucketByCell[cell] = b
        } else {
            b = Int32(members.count)
            members.append([])
            bucketCell.append(cell)
            bucketByCell[cell] = b
        }
        bucketOf[e] = b
        slotOf[e] = Int32(members[Int(b)].count)
        members[Int(b)].append(entity)
    }

    /// Forgets an entity's position (erasure).
    public func remove(entity: Int32) {
        let e = Int(entity)
        guard e < time.count, time[e] != .min else { return }
        if bucketOf[e] >= 0 { leave(entity, bucket: bucketOf[e]) }
        bucketOf[e] = -1
        time[e] = .min
        count -= 1
    }

    private func leave(_ entity: Int32, bucket b: Int32) {
        let s = Int(slotOf[Int(entity)])
        let last = members[Int(b)].removeLast()
        if last != entity {
            members[Int(b)][s] = last
            slotOf[Int(last)] = Int32(s)
        }
        if members[Int(b)].isEmpty {
            bucketByCell[bucketCell[Int(b)]] = nil
            freeBuckets.append(b)
        }
    }

    public func has(_ entity: Int32) -> Bool { Int(entity) < time.count && time[Int(entity)] != .min }

    /// Calls `body` with every entity whose cell meets `box` (a superset of the entities
    /// inside it; the caller tests each).
    public func forEachCandidate(in box: BBox, _ body: (Int32) -> Void) {
        guard box.minX <= box.maxX, box.minY <= box.maxY else { return }
        let c0 = column(box.minX), c1 = column(box.maxX), r0 = row(box.minY), r1 = row(box.maxY)
        let cells = (c1 - c0 + 1) * (r1 - r0 + 1)
        if cells > Int64(bucketByCell.count) {
            for (cell, b) in bucketByCell {
                let r = cell / columns, c = cell % columns
                if r >= r0 && r <= r1 && c >= c0 && c <= c1 { for e in members[Int(b)] { body(e) } }
            }
            return
        }
        for r in r0...r1 {
            for c in c0...c1 {
                if let b = bucketByCell[r * columns + c] { for e in members[Int(b)] { body(e) } }
            }
        }
    }

    /// Entities within `radiusM` metres of the point (haversine <= radius), with distances.
    public func within(radiusM: Double, lon x: Double, lat y: Double, accept: (Int32) -> Bool) -> [(entity: Int32, distance: Double)] {
        var out: [(entity: Int32, distance: Double)] = []
        let boxes = Haversine.circleBoxes(lon: x, lat: y, radiusM: radiusM)
        for box in boxes {
            forEachCandidate(in: box) { e in
                let i = Int(e)
                // Boxes of a circle across the antimeridian do not overlap, so no entity
                // comes twice.
                let d = Haversine.distance(x, y, lon[i], lat[i])
                if d <= radiusM && accept(e) { out.append((e, d)) }
            }
        }
        return out
    }

    /// The entities nearest to the point that `accept` takes, at least `k` of them when there
    /// are that many (possibly more: every one within the distance that reached `k`), with
    /// distances, unordered. The search radius starts at a cell and doubles.
    public func nearest(_ k: Int, lon x: Double, lat y: Double, accept: (Int32) -> Bool) -> [(entity: Int32, distance: Double)] {
        guard k > 0, count > 0 else { return [] }
        let halfCircumference = Haversine.earthRadiusM * Double.pi
        var r = cellDeg * 111_195
        while true {
            let found = within(radiusM: r, lon: x, lat: y, accept: accept)
            if found.count >= k || r >= halfCircumference { return found }
            // Grow by the density seen so far (at least doubling).
            let grow = found.isEmpty ? 4.0 : max(2.0, (Double(k) / Double(found.count)).squareRoot() * 1.5)
            r = min(r * grow, halfCircumference)
        }
    }

    /// Entities whose latest position `shape` covers (the zones' closed-set test).
    public func within(shape: ZoneShape, accept: (Int32) -> Bool) -> [Int32] {
        let index = ZoneIndex(shapes: [shape])
        var out: [Int32] = []
        var hit: [Int32] = []
        var seen = Set<Int32>()
        let boxes = shape.indexBoxes
        for box in boxes {
            forEachCandidate(in: box) { e in
                let i = Int(e)
                guard box.contains(lon[i], lat[i]) else { return }
                hit.removeAll(keepingCapacity: true)
                index.zones(coveringX: lon[i], y: lat[i], into: &hit)
                guard !hit.isEmpty, accept(e) else { return }
                if boxes.count > 1 { guard seen.insert(e).inserted else { return } }
                out.append(e)
            }
        }
        return out
    }

    /// Entities inside a lon/lat box, edges included; `minX > maxX` crosses the antimeridian.
    public func within(box: BBox, accept: (Int32) -> Bool) -> [Int32] {
        let parts = box.minX <= box.maxX ? [box]
            : [BBox(minX: box.minX, minY: box.minY, maxX: 180, maxY: box.maxY), BBox(minX: -180, minY: box.minY, maxX: box.maxX, maxY: box.maxY)]
        var out: [Int32] = []
        for (n, b) in parts.enumerated() {
            forEachCandidate(in: b) { e in
                let i = Int(e)
                // An entity at exactly 180 is in the first part only.
                if n == 1 && lon[i] == 180 { return }
                if b.contains(lon[i], lat[i]) && accept(e) { out.append(e) }
            }
        }
        return out
    }

    /// Bytes held: per entity slots, bucket lists and the cell table (approximate for the
    /// dictionary: key, value and a control byte per slot at its capacity).
    public var bytes: Int {
        let perEntity = time.capacity * 8 + lon.capacity * 8 + lat.capacity * 8 + bucketOf.capacity * 4 + slotOf.capacity * 4
        let lists = members.reduce(0) { $0 + $1.capacity * 4 + 32 } + bucketCell.capacity * 8
        return perEntity + lists + bucketByCell.capacity * 17
    }
}
