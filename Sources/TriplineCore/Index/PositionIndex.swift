/// The latest position of each entity (by engine entity id), kept in a uniform grid of
/// lon/lat cells so that "nearest to a point", "within a radius" and "within a shape" read
/// only the cells that can hold an answer.
///
/// The grid is a two-level directory with no hashing: the world is cut into tiles of 64 x 64
/// cells, a tile gets its cell table (one Int32 per cell: the cell's bucket, or -1) when an
/// entity first lands in it, and keeps a count of its entities so that a query skips empty
/// tiles whole. With the default 0.1-degree cells a tile is 6.4 degrees wide; a whole world
/// of tiles is 26 MB of cell tables, a continent a few MB. An update is O(1): a move within
/// its cell writes the position only; a move to another cell leaves the old cell's list
/// (swap-remove, the slot kept per entity) and joins the new one. A query box with more cells
/// than there are non-empty ones walks the non-empty cells instead. Distances are
/// `Haversine.distance` (spec 1.2's rounding); "within a shape" is `ZoneIndex`'s covers test,
/// the one zones use.
public final class PositionIndex {
    /// Cell side in degrees.
    public let cellDeg: Double
    static let tileSide: Int64 = 64
    let columns: Int64
    let rows: Int64
    let tileColumns: Int64
    let tileRows: Int64
    public private(set) var lon: [Double] = []
    public private(set) var lat: [Double] = []
    /// Event time of the latest position; `.min` when the entity has none.
    public private(set) var time: [Millis] = []
    /// Per entity: its bucket (-1: none) and its slot in the bucket's list.
    var bucketOf: [Int32] = []
    var slotOf: [Int32] = []
    /// Per bucket: its cell (row * columns + column) and its entities. Emptied buckets are
    /// reused; `liveBuckets` counts the others.
    var bucketCell: [Int64] = []
    var members: [[Member]] = []
    /// An entity in a cell's list, with its position inline so that reading a cell is one
    /// sequential pass (not two random reads per entity).
    public struct Member: Sendable {
        public var lon: Double
        public var lat: Double
        public var entity: Int32
    }
    var freeBuckets: [Int32] = []
    var liveBuckets = 0
    /// Per tile: the start of its cell table in `cellBucket` (-1: none yet), and its entities.
    var tileBase: [Int32]
    var tileCount: [Int32]
    var cellBucket: [Int32] = []
    public private(set) var count = 0
    /// Tests: true walks the box's tiles and cells always, false scans the non-empty cells
    /// always, nil chooses by size.
    var forcedWalk: Bool?

    public init(cellDeg: Double = 0.1) {
        precondition(cellDeg >= 0.001 && cellDeg <= 90)
        self.cellDeg = cellDeg
        columns = Int64((360 / cellDeg).rounded(.up))
        rows = Int64((180 / cellDeg).rounded(.up))
        tileColumns = (columns + Self.tileSide - 1) / Self.tileSide
        tileRows = (rows + Self.tileSide - 1) / Self.tileSide
        tileBase = Array(repeating: -1, count: Int(tileColumns * tileRows))
        tileCount = Array(repeating: 0, count: Int(tileColumns * tileRows))
    }

    @inline(__always) func column(_ x: Double) -> Int64 {
        let c = Int64(((x + 180) / cellDeg).rounded(.down))
        return c < 0 ? 0 : (c >= columns ? columns - 1 : c)
    }

    @inline(__always) func row(_ y: Double) -> Int64 {
        let r = Int64(((y + 90) / cellDeg).rounded(.down))
        return r < 0 ? 0 : (r >= rows ? rows - 1 : r)
    }

    @inline(__always) func tile(_ r: Int64, _ c: Int64) -> Int { Int((r / Self.tileSide) * tileColumns + c / Self.tileSide) }

    /// Where cell (r, c)'s bucket is kept in `cellBucket`, allocating its tile's table.
    @inline(__always) func slot(_ r: Int64, _ c: Int64) -> Int {
        let t = tile(r, c)
        if tileBase[t] < 0 {
            tileBase[t] = Int32(cellBucket.count)
            cellBucket.append(contentsOf: repeatElement(-1, count: Int(Self.tileSide * Self.tileSide)))
        }
        return Int(tileBase[t]) + Int((r % Self.tileSide) * Self.tileSide + c % Self.tileSide)
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
        let r = row(y), c = column(x)
        let cell = r * columns + c
        let old = bucketOf[e]
        if old >= 0 && bucketCell[Int(old)] == cell {
            let s = Int(slotOf[e])
            members[Int(old)][s].lon = x
            members[Int(old)][s].lat = y
            return
        }
        if old >= 0 { leave(entity, bucket: old) }
        let at = slot(r, c)
        var b = cellBucket[at]
        if b < 0 {
            if let free = freeBuckets.popLast() {
                b = free
                bucketCell[Int(b)] = cell
            } else {
                b = Int32(members.count)
                members.append([])
                bucketCell.append(cell)
            }
            cellBucket[at] = b
            liveBuckets += 1
        }
        tileCount[tile(r, c)] += 1
        bucketOf[e] = b
        slotOf[e] = Int32(members[Int(b)].count)
        members[Int(b)].append(Member(lon: x, lat: y, entity: entity))
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
        if last.entity != entity {
            members[Int(b)][s] = last
            slotOf[Int(last.entity)] = Int32(s)
        }
        let cell = bucketCell[Int(b)]
        let r = cell / columns, c = cell % columns
        tileCount[tile(r, c)] -= 1
        if members[Int(b)].isEmpty {
            cellBucket[slot(r, c)] = -1
            freeBuckets.append(b)
            liveBuckets -= 1
        }
    }

    public func has(_ entity: Int32) -> Bool { Int(entity) < time.count && time[Int(entity)] != .min }

    /// Calls `body` with every entity whose cell meets `box`, and its position (a superset of
    /// the entities inside it; the caller tests each).
    public func forEachCandidate(in box: BBox, _ body: (Member) -> Void) {
        guard box.minX <= box.maxX, box.minY <= box.maxY else { return }
        let c0 = column(box.minX), c1 = column(box.maxX), r0 = row(box.minY), r1 = row(box.maxY)
        if forcedWalk.map({ !$0 }) ?? ((c1 - c0 + 1) * (r1 - r0 + 1) > Int64(liveBuckets) * 4) {
            for b in 0..<members.count where !members[b].isEmpty {
                let cell = bucketCell[b]
                let r = cell / columns, c = cell % columns
                if r >= r0 && r <= r1 && c >= c0 && c <= c1 { for m in members[b] { body(m) } }
            }
            return
        }
        let side = Self.tileSide
        for tr in (r0 / side)...(r1 / side) {
            for tc in (c0 / side)...(c1 / side) {
                let t = Int(tr * tileColumns + tc)
                guard tileCount[t] > 0 else { continue }
                let base = Int(tileBase[t])
                let ra = max(r0, tr * side), rb = min(r1, tr * side + side - 1)
                let ca = max(c0, tc * side), cb = min(c1, tc * side + side - 1)
                for r in ra...rb {
                    let rowBase = base + Int((r % side) * side)
                    for c in ca...cb {
                        let b = cellBucket[rowBase + Int(c % side)]
                        if b >= 0 { for m in members[Int(b)] { body(m) } }
                    }
                }
            }
        }
    }

    /// Entities within `radiusM` metres of the point (haversine <= radius), with distances.
    public func within(radiusM: Double, lon x: Double, lat y: Double, accept: (Int32) -> Bool) -> [(entity: Int32, distance: Double)] {
        var out: [(entity: Int32, distance: Double)] = []
        let boxes = Haversine.circleBoxes(lon: x, lat: y, radiusM: radiusM)
        for box in boxes {
            forEachCandidate(in: box) { m in
                // Boxes of a circle across the antimeridian do not overlap, so no entity
                // comes twice.
                let d = Haversine.distance(x, y, m.lon, m.lat)
                if d <= radiusM && accept(m.entity) { out.append((m.entity, d)) }
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
            forEachCandidate(in: box) { m in
                guard box.contains(m.lon, m.lat) else { return }
                hit.removeAll(keepingCapacity: true)
                index.zones(coveringX: m.lon, y: m.lat, into: &hit)
                guard !hit.isEmpty, accept(m.entity) else { return }
                if boxes.count > 1 { guard seen.insert(m.entity).inserted else { return } }
                out.append(m.entity)
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
            forEachCandidate(in: b) { m in
                // An entity at exactly 180 is in the first part only.
                if n == 1 && m.lon == 180 { return }
                if b.contains(m.lon, m.lat) && accept(m.entity) { out.append(m.entity) }
            }
        }
        return out
    }

    /// Bytes held: per entity slots, bucket lists (with a 32-byte array header each) and the
    /// tiles' cell tables.
    public var bytes: Int {
        let perEntity = time.capacity * 8 + lon.capacity * 8 + lat.capacity * 8 + bucketOf.capacity * 4 + slotOf.capacity * 4
        let lists = members.reduce(0) { $0 + $1.capacity * MemoryLayout<Member>.stride + 32 } + bucketCell.capacity * 8
        return perEntity + lists + cellBucket.capacity * 4 + tileBase.capacity * 8
    }
}
