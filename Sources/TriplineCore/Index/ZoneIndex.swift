import CTriplineSupport

/// The spatial index of zones: answers "which zones cover this point" exactly (spec
/// section 1).
///
/// Entries are polygon parts (a MultiPolygon has one entry per part) and circle boxes, with
/// their rings copied into one coordinate array, so a lookup touches no Swift object.
/// Entries of ordinary size live in a hashed uniform grid (cell size: the median entry
/// size), so a lookup is one hash probe and a few box tests. Entries spanning more than 8
/// of its cells a side live in a second, dense grid whose cells are 8 times larger (a
/// country among town-sized zones); only entries larger again (a continent) live in a static
/// R-tree bulk-loaded by Sort-Tile-Recursive packing at every level.
/// Each polygon part also has a 16 x 16 raster of cells known to be inside or outside, so
/// most points are decided without an edge test.
public struct ZoneIndex: Sendable {
    public static let fanout = 16
    /// Boxes of every node, leaf entries first, the root last: minX, minY, maxX, maxY.
    var boxes: [Double] = []
    /// Children of inner nodes: first node index and count (0 for leaf entries).
    var nodeFirst: [Int32] = []
    var nodeCount: [Int32] = []
    /// Nodes below this index are leaf entries; the first `treeLeaves` of them are in the
    /// R-tree, the rest in the grid.
    var leafCount = 0
    var treeLeaves = 0
    /// The R-tree's root node, or -1 when no entry is large.
    var root = -1
    /// The grid: cell size, origin, and an open-addressing table from cell key to a run of
    /// `gridEntries`.
    var cellSize = 1.0
    var originX = 0.0, originY = 0.0
    /// Slots of the table: a cell key (.max: empty) and its run (start << 32 | count), side
    /// by side so that a probe costs one cache line.
    var gridSlots: [GridSlot] = []
    struct GridSlot {
        var key: UInt64
        var run: UInt64
    }
    var gridMask = 0
    /// The entries of each cell, runs one after another, each with its box, zone and part
    /// inline: scanning a cell reads consecutive memory instead of chasing an index into
    /// `boxes` (one cache miss per candidate).
    var gridEntries: [GridEntry] = []
    struct GridEntry {
        var minX: Double, minY: Double, maxX: Double, maxY: Double
        var zone: Int32
        /// As `entryPart`: >= 0 a polygon part, < 0 circle number -1 - c.
        var part: Int32
    }
    /// One bit per cell of the grid's extent (row-major, `gridBitsWidth` cells per row): set
    /// when the cell has entries. Most positions fall in empty cells; the bits (a few hundred
    /// KB at most) answer those without probing the hash table. Empty when the extent is too
    /// large for that.
    var gridBits: [UInt64] = []
    var gridBitsWidth: Int64 = 0
    var gridBitsHeight: Int64 = 0
    static let maxGridBits: Int64 = 1 << 22
    /// An entry spanning more cells than this in either direction goes to the coarse grid,
    /// and from there, spanning more coarse cells than this, to the R-tree.
    static let maxCellsPerSide = 8.0
    /// The coarse grid: dense, row-major, `coarseWidth` x `coarseHeight` cells of
    /// `coarseCell` degrees from its origin, each a run (start << 32 | count) of
    /// `coarseEntries` (laid out as `gridEntries`). Empty when no entry is that large.
    var coarseCell = 1.0
    var coarseOriginX = 0.0, coarseOriginY = 0.0
    var coarseWidth = 0, coarseHeight = 0
    var coarseRuns: [UInt64] = []
    var coarseEntries: [GridEntry] = []
    /// Bound on the coarse grid's cells (its cell size doubles until the extent fits).
    static let maxCoarseCells = 1 << 18
    /// Entries spanning more than `maxCellsPerSide` coarse cells a side, up to this many, also
    /// go to the coarse grid while its (cell, entry) pairs stay within `coarsePairBudget`
    /// (or 8 per entry of the index, if more); the rest go to the R-tree. A pair is a 40-byte
    /// `GridEntry`, so the budget bounds the grid at about 10 MB (more only for indexes of
    /// over 32,768 entries).
    static let maxCoarseSpan = 64.0
    static let coarsePairBudget = 1 << 18
    /// Entries in the coarse grid (after the R-tree's, before the fine grid's).
    var coarseLeaves = 0
    /// Per leaf entry: zone index, and the part it tests (>= 0: index into `parts`;
    /// < 0: circle number -1 - c).
    var entryZone: [Int32] = []
    var entryPart: [Int32] = []
    /// Polygon parts: first ring and ring count in `rings`.
    var parts: [(Int32, Int32)] = []
    /// Rings: start and count (in points) in `coords`, and the ring's box.
    var ringStart: [Int32] = []
    var ringPoints: [Int32] = []
    var ringBoxes: [Double] = []
    var coords: [Double] = []
    /// Rings of `RingBands.minPoints` points or more are cut into horizontal bands of equal height,
    /// each listing the edges whose y-range meets it, so that a point is tested against the
    /// edges of its band instead of the whole ring (a country's outline has thousands).
    /// Per ring: first entry in `bandOffsets` (-1: no bands), band count, and bands per
    /// degree of latitude.
    var ringBandFirst: [Int32] = []
    var ringBandCount: [Int32] = []
    var ringBandScale: [Double] = []
    /// Per banded ring, count + 1 offsets into `bandEdges`; an edge is stored as the index of
    /// its first point within its ring.
    var bandOffsets: [Int32] = []
    var bandEdges: [Int32] = []
    /// Per polygon part, a 16 x 16 raster over its box, 2 bits a cell: 0 outside, 1 inside,
    /// 2 mixed (some edge's box comes near the cell: test exactly). Eight words a part.
    var raster: [UInt64] = []
    static let grid = 16
    /// Cells are widened by this fraction of a cell when marked, so that rounding when a
    /// point's cell is computed can never land it in a uniform cell it is not really in.
    static let cellMargin = 1e-6
    /// Circles: lon, lat, radius.
    var circles: [Double] = []
    /// The zone shapes, by zone index.
    public let shapes: [ZoneShape]

    /// Builds the index. Zones are numbered by their position in `shapes`.
    public init(shapes: [ZoneShape]) {
        self.init(shapes: shapes, coarseSpan: ZoneIndex.maxCoarseSpan, pairBudget: nil)
    }

    /// As `init(shapes:)`, with entries of up to `coarseSpan` coarse cells a side admitted to
    /// the coarse grid within `pairBudget` pairs (nil: the default bound; tests lower both to
    /// send more entries to the R-tree).
    init(shapes: [ZoneShape], coarseSpan: Double, pairBudget: Int?) {
        self.shapes = shapes
        var entries: [(BBox, Int32, Int32)] = []
        // Each part's raster and its rings' bands depend on the part alone: built on all
        // cores first, then laid out in order.
        let allParts = shapes.flatMap { s -> [Polygon] in if case .polygons(let ps) = s { return ps } else { return [] } }
        let built = ParallelMap.map(allParts) { p in (raster: ZoneIndex.buildRaster(p), bands: ([p.shell] + p.holes).map(RingBands.init)) }
        var partNumber = 0
        for (z, s) in shapes.enumerated() {
            switch s {
            case .polygons(let ps):
                for p in ps {
                    let partIndex = Int32(parts.count)
                    parts.append((Int32(ringStart.count), Int32(1 + p.holes.count)))
                    for (k, r) in ([p.shell] + p.holes).enumerated() {
                        ringStart.append(Int32(coords.count / 2))
                        ringPoints.append(Int32(r.pointCount))
                        ringBoxes += [r.bbox.minX, r.bbox.minY, r.bbox.maxX, r.bbox.maxY]
                        coords += r.coords
                        addBands(built[partNumber].bands[k])
                    }
                    entries.append((p.bbox, Int32(z), partIndex))
                    raster += built[partNumber].raster
                    partNumber += 1
                }
            case .circle(let lon, let lat, let r):
                let c = Int32(circles.count / 3)
                circles += [lon, lat, r]
                for b in s.indexBoxes { entries.append((b, Int32(z), -1 - c)) }
            }
        }
        let n = entries.count
        // Grid cell size: the median entry extent.
        if n > 0 {
            var sizes = entries.map { max($0.0.maxX - $0.0.minX, $0.0.maxY - $0.0.minY) }.filter { $0 > 0 && $0.isFinite }
            sizes.sort()
            cellSize = sizes.isEmpty ? 1 : max(sizes[sizes.count / 2], 1e-9)
            originX = entries.map(\.0.minX).min()! - cellSize
            originY = entries.map(\.0.minY).min()! - cellSize
        }
        let cs = cellSize
        let isLarge: ((BBox, Int32, Int32)) -> Bool = { e in
            (e.0.maxX - e.0.minX) / cs > ZoneIndex.maxCellsPerSide || (e.0.maxY - e.0.minY) / cs > ZoneIndex.maxCellsPerSide
        }
        var large = entries.filter(isLarge)
        let small = entries.filter { !isLarge($0) }
        // The coarse grid takes the large entries up to `maxCellsPerSide` coarse cells a side.
        var coarse: [(BBox, Int32, Int32)] = []
        if !large.isEmpty {
            var ext = BBox.empty
            for e in large { ext.extend(e.0) }
            var cc = cs * ZoneIndex.maxCellsPerSide
            while cc.isFinite && ((ext.maxX - ext.minX) / cc + 3) * ((ext.maxY - ext.minY) / cc + 3) > Double(ZoneIndex.maxCoarseCells) { cc *= 2 }
            if cc.isFinite && cc > 0 {
                coarseCell = cc
                coarseOriginX = ext.minX - cc
                coarseOriginY = ext.minY - cc
                let isHuge: ((BBox, Int32, Int32)) -> Bool = { e in
                    (e.0.maxX - e.0.minX) / cc > ZoneIndex.maxCellsPerSide || (e.0.maxY - e.0.minY) / cc > ZoneIndex.maxCellsPerSide
                }
                coarse = large.filter { !isHuge($0) }
                // Larger entries, up to `maxCoarseSpan` cells a side, join too while the grid's
                // (cell, entry) pairs stay within `coarsePairBudget`, those covering the fewest
                // cells first: a point in a country is then found in its cell's run instead of
                // by a walk down the R-tree, whose boxes (of countries) overlap.
                let cellsOf: ((BBox, Int32, Int32)) -> Int = { e in
                    (Int((e.0.maxX - e.0.minX) / cc) + 2) * (Int((e.0.maxY - e.0.minY) / cc) + 2)
                }
                var pairs = coarse.reduce(0) { $0 + cellsOf($1) }
                let budget = pairBudget ?? max(ZoneIndex.coarsePairBudget, 8 * n)
                var rest: [(BBox, Int32, Int32)] = []
                for e in large.filter(isHuge).sorted(by: { cellsOf($0) < cellsOf($1) }) {
                    let fits = (e.0.maxX - e.0.minX) / cc <= coarseSpan && (e.0.maxY - e.0.minY) / cc <= coarseSpan
                    if fits && pairs + cellsOf(e) <= budget {
                        coarse.append(e)
                        pairs += cellsOf(e)
                    } else {
                        rest.append(e)
                    }
                }
                large = rest
                coarseWidth = Int(((ext.maxX - coarseOriginX) / cc).rounded(.down)) + 2
                coarseHeight = Int(((ext.maxY - coarseOriginY) / cc).rounded(.down)) + 2
            }
        }
        ZoneIndex.strSort(&large) { $0.0 }
        for (b, z, p) in large + coarse + small {
            boxes += [b.minX, b.minY, b.maxX, b.maxY]
            entryZone.append(z)
            entryPart.append(p)
            nodeFirst.append(0)
            nodeCount.append(0)
        }
        leafCount = n
        treeLeaves = large.count
        coarseLeaves = coarse.count
        buildCoarseGrid(entries: large.count..<(large.count + coarse.count))
        buildGrid(firstEntry: large.count + coarse.count)
        // R-tree over the large entries. Each level: group the (STR-ordered) level below into
        // parents, then STR-order the parents themselves; children stay contiguous because
        // grouping follows that order.
        var levelStart = 0, levelCount = large.count
        root = levelCount == 0 ? -1 : 0
        while levelCount > 1 {
            var parents: [(BBox, Int32, Int32)] = []
            var i = 0
            while i < levelCount {
                let c = min(ZoneIndex.fanout, levelCount - i)
                var b = BBox.empty
                for k in (levelStart + i)..<(levelStart + i + c) {
                    b.extend(BBox(minX: boxes[4 * k], minY: boxes[4 * k + 1], maxX: boxes[4 * k + 2], maxY: boxes[4 * k + 3]))
                }
                parents.append((b, Int32(levelStart + i), Int32(c)))
                i += c
            }
            ZoneIndex.strSort(&parents) { $0.0 }
            levelStart = boxes.count / 4
            levelCount = parents.count
            for (b, f, c) in parents {
                boxes += [b.minX, b.minY, b.maxX, b.maxY]
                nodeFirst.append(f)
                nodeCount.append(c)
            }
            root = boxes.count / 4 - 1
        }
    }

    /// Records the bands of a ring just appended (`RingBands(ring)`; nil: it has none).
    mutating func addBands(_ bands: RingBands?) {
        guard let b = bands else {
            ringBandFirst.append(-1); ringBandCount.append(0); ringBandScale.append(0)
            return
        }
        let first = bandOffsets.count, base = Int32(bandEdges.count)
        bandOffsets += b.offsets.map { $0 + base }
        bandEdges += b.edges
        ringBandFirst.append(Int32(first)); ringBandCount.append(Int32(b.count)); ringBandScale.append(b.scale)
    }

    /// Locates (x, y) against ring `r`, by its bands when it has them (same answer as the
    /// whole ring: see `Ring.locate(_:edges:_:_:)`).
    @inline(__always)
    func locateRing(_ r: Int, _ c: UnsafePointer<Double>, _ x: Double, _ y: Double) -> PointLocation {
        let base = c + 2 * Int(ringStart[r])
        let first = Int(ringBandFirst[r])
        if first < 0 { return Ring.locate(base, Int(ringPoints[r]), x, y) }
        let b = RingBands.band(y, ringBoxes[4 * r + 1], ringBandScale[r], Int(ringBandCount[r]))
        let lo = Int(bandOffsets[first + b]), hi = Int(bandOffsets[first + b + 1])
        return bandEdges.withUnsafeBufferPointer { Ring.locate(base, edges: UnsafeBufferPointer(rebasing: $0[lo..<hi]), x, y) }
    }

    /// The grid cell of a coordinate (may be negative outside the grid's origin).
    @inline(__always)
    func cell(_ v: Double, _ origin: Double) -> Int64 {
        let c = ((v - origin) / cellSize).rounded(.down)
        return c > 2e9 ? Int64(2e9) : (c < -1 ? -1 : Int64(c))
    }

    @inline(__always)
    static func cellKey(_ cx: Int64, _ cy: Int64) -> UInt64 { UInt64(cx) << 32 | UInt64(cy) }

    @inline(__always)
    static func cellHash(_ key: UInt64) -> Int { Int(truncatingIfNeeded: (key &* 0x9E37_79B9_7F4A_7C15) >> 20) }

    /// Puts every small entry into each cell its box comes near (widened by a millionth of a
    /// cell, so that rounding when a point's cell is computed never misses an entry).
    mutating func buildGrid(firstEntry: Int) {
        var pairs: [(UInt64, Int32)] = []
        for e in firstEntry..<leafCount {
            let m = ZoneIndex.cellMargin * cellSize
            let x0 = cell(boxes[4 * e] - m, originX), x1 = cell(boxes[4 * e + 2] + m, originX)
            let y0 = cell(boxes[4 * e + 1] - m, originY), y1 = cell(boxes[4 * e + 3] + m, originY)
            for cx in max(0, x0)...max(0, x1) {
                for cy in max(0, y0)...max(0, y1) { pairs.append((ZoneIndex.cellKey(cx, cy), Int32(e))) }
            }
        }
        pairs.sort { $0.0 < $1.0 || ($0.0 == $1.0 && $0.1 < $1.1) }
        var cap = 16
        while cap < pairs.count * 2 { cap <<= 1 }
        gridSlots = [GridSlot](repeating: GridSlot(key: .max, run: 0), count: cap)
        gridMask = cap - 1
        gridEntries = pairs.map { _, e in
            let i = Int(e)
            return GridEntry(minX: boxes[4 * i], minY: boxes[4 * i + 1], maxX: boxes[4 * i + 2], maxY: boxes[4 * i + 3],
                             zone: entryZone[i], part: entryPart[i])
        }
        var maxX: Int64 = -1, maxY: Int64 = -1
        for (k, _) in pairs {
            maxX = max(maxX, Int64(k >> 32))
            maxY = max(maxY, Int64(k & 0xFFFF_FFFF))
        }
        if maxX >= 0 && (maxX + 1).multipliedReportingOverflow(by: maxY + 1).overflow == false && (maxX + 1) * (maxY + 1) <= ZoneIndex.maxGridBits {
            gridBitsWidth = maxX + 1
            gridBitsHeight = maxY + 1
            gridBits = [UInt64](repeating: 0, count: Int((gridBitsWidth * gridBitsHeight + 63) / 64))
            for (k, _) in pairs {
                let b = Int(Int64(k & 0xFFFF_FFFF) * gridBitsWidth + Int64(k >> 32))
                gridBits[b >> 6] |= 1 << UInt64(b & 63)
            }
        }
        var i = 0
        while i < pairs.count {
            var j = i
            while j < pairs.count && pairs[j].0 == pairs[i].0 { j += 1 }
            var slot = ZoneIndex.cellHash(pairs[i].0) & gridMask
            while gridSlots[slot].key != .max { slot = (slot + 1) & gridMask }
            gridSlots[slot] = GridSlot(key: pairs[i].0, run: UInt64(i) << 32 | UInt64(j - i))
            i = j
        }
    }

    /// The coarse grid cell of a coordinate, clamped to `0..<count`.
    @inline(__always)
    func coarseCellOf(_ v: Double, _ origin: Double, _ count: Int) -> Int {
        let c = ((v - origin) / coarseCell).rounded(.down)
        return c < 0 ? 0 : (c >= Double(count - 1) ? count - 1 : Int(c))
    }

    /// Puts the coarse entries into each coarse cell their box comes near (widened as in
    /// `buildGrid`).
    mutating func buildCoarseGrid(entries range: Range<Int>) {
        guard !range.isEmpty, coarseWidth > 0, coarseHeight > 0 else { coarseWidth = 0; coarseHeight = 0; return }
        var pairs: [(Int, Int32)] = []
        let m = ZoneIndex.cellMargin * coarseCell
        for e in range {
            let x0 = coarseCellOf(boxes[4 * e] - m, coarseOriginX, coarseWidth), x1 = coarseCellOf(boxes[4 * e + 2] + m, coarseOriginX, coarseWidth)
            let y0 = coarseCellOf(boxes[4 * e + 1] - m, coarseOriginY, coarseHeight), y1 = coarseCellOf(boxes[4 * e + 3] + m, coarseOriginY, coarseHeight)
            for cy in y0...y1 { for cx in x0...x1 { pairs.append((cy * coarseWidth + cx, Int32(e))) } }
        }
        pairs.sort { $0.0 < $1.0 || ($0.0 == $1.0 && $0.1 < $1.1) }
        coarseRuns = [UInt64](repeating: 0, count: coarseWidth * coarseHeight)
        coarseEntries = pairs.map { _, e in
            let i = Int(e)
            return GridEntry(minX: boxes[4 * i], minY: boxes[4 * i + 1], maxX: boxes[4 * i + 2], maxY: boxes[4 * i + 3],
                             zone: entryZone[i], part: entryPart[i])
        }
        var i = 0
        while i < pairs.count {
            var j = i
            while j < pairs.count && pairs[j].0 == pairs[i].0 { j += 1 }
            coarseRuns[pairs[i].0] = UInt64(i) << 32 | UInt64(j - i)
            i = j
        }
    }

    /// Appends the zones of the entries `start..<start+count` of `entries` that cover (x, y).
    @inline(__always)
    func scanRun(_ entries: UnsafeBufferPointer<GridEntry>, _ start: Int, _ count: Int, _ x: Double, _ y: Double, _ out: inout [Int32]) {
        for i in start..<(start + count) where x >= entries[i].minX && x <= entries[i].maxX && y >= entries[i].minY && y <= entries[i].maxY {
            if entryCovers(entries[i].part, x, y, minX: entries[i].minX, minY: entries[i].minY, maxX: entries[i].maxX, maxY: entries[i].maxY) {
                out.append(entries[i].zone)
            }
        }
    }

    /// Classifies the cells of a part's box: mixed where an edge's box meets the widened
    /// cell, otherwise inside or outside as the cell's centre is (decided exactly).
    static func buildRaster(_ p: Polygon) -> [UInt64] {
        let g = grid
        var cells = [UInt8](repeating: 0, count: g * g)
        let b = p.bbox
        let cw = (b.maxX - b.minX) / Double(g), ch = (b.maxY - b.minY) / Double(g)
        guard cw > 0, ch > 0, cw.isFinite, ch.isFinite else { return [UInt64](repeating: 0xAAAA_AAAA_AAAA_AAAA, count: g * g * 2 / 64) }  // all mixed
        func clampCell(_ v: Double) -> Int { v < 0 ? 0 : (v >= Double(g - 1) ? g - 1 : Int(v)) }
        for r in [p.shell] + p.holes {
            for k in 0..<(r.pointCount - 1) {
                let x0 = min(r.x(k), r.x(k + 1)), x1 = max(r.x(k), r.x(k + 1))
                let y0 = min(r.y(k), r.y(k + 1)), y1 = max(r.y(k), r.y(k + 1))
                let cx0 = clampCell(((x0 - b.minX) / cw - cellMargin).rounded(.down))
                let cx1 = clampCell(((x1 - b.minX) / cw + cellMargin).rounded(.down))
                let cy0 = clampCell(((y0 - b.minY) / ch - cellMargin).rounded(.down))
                let cy1 = clampCell(((y1 - b.minY) / ch + cellMargin).rounded(.down))
                for cy in cy0...cy1 { for cx in cx0...cx1 { cells[cy * g + cx] = 2 } }
            }
        }
        // A cell no edge comes near (the margin included) lies wholly inside or wholly
        // outside, and so does its neighbour: the segment between their centres stays in the
        // two cells, so no edge crosses it. Such a cell takes the answer of its left or upper
        // neighbour when that one is also edge-free; only the first cell of each run is located
        // against the rings (a country of 4,000 edges is located a few times, not 200).
        for cy in 0..<g {
            for cx in 0..<g where cells[cy * g + cx] != 2 {
                if cx > 0, cells[cy * g + cx - 1] != 2 {
                    cells[cy * g + cx] = cells[cy * g + cx - 1]
                } else if cy > 0, cells[(cy - 1) * g + cx] != 2 {
                    cells[cy * g + cx] = cells[(cy - 1) * g + cx]
                } else {
                    let px = b.minX + (Double(cx) + 0.5) * cw, py = b.minY + (Double(cy) + 0.5) * ch
                    cells[cy * g + cx] = p.locate(px, py) == .outside ? 0 : 1
                }
            }
        }
        var words = [UInt64](repeating: 0, count: g * g * 2 / 64)
        for (i, c) in cells.enumerated() { words[i >> 5] |= UInt64(c) << UInt64((i & 31) * 2) }
        return words
    }

    /// Sort-Tile-Recursive order: vertical slices by centre x, each sorted by centre y.
    static func strSort<T>(_ items: inout [T], _ box: (T) -> BBox) {
        let m = ZoneIndex.fanout
        let n = items.count
        guard n > m else { return }
        items.sort { box($0).minX + box($0).maxX < box($1).minX + box($1).maxX }
        let pages = (n + m - 1) / m
        let slices = Int(Double(pages).squareRoot().rounded(.up))
        let perSlice = ((pages + slices - 1) / slices) * m
        var start = 0
        while start < n {
            let end = min(n, start + perSlice)
            items[start..<end].sort { box($0).minY + box($0).maxY < box($1).minY + box($1).maxY }
            start = end
        }
    }

    /// Number of zones.
    public var count: Int { shapes.count }

    /// False when the grid cell (cx, cy) (both >= 0) certainly has no entries.
    @inline(__always)
    func cellMayHaveEntries(_ cx: Int64, _ cy: Int64) -> Bool {
        if gridBits.isEmpty { return true }
        if cx >= gridBitsWidth || cy >= gridBitsHeight { return false }
        let b = Int(cy * gridBitsWidth + cx)
        return (gridBits[b >> 6] >> UInt64(b & 63)) & 1 == 1
    }

    /// The key of the grid cell of (x, y) and the slot where its probe starts; nil when the
    /// cell certainly has no entries.
    @inline(__always)
    func gridProbe(_ x: Double, _ y: Double) -> (key: UInt64, slot: Int)? {
        let cx = cell(x, originX), cy = cell(y, originY)
        guard cx >= 0 && cy >= 0 && !gridSlots.isEmpty && cellMayHaveEntries(cx, cy) else { return nil }
        let key = ZoneIndex.cellKey(cx, cy)
        return (key, ZoneIndex.cellHash(key) & gridMask)
    }

    /// Starts loading the grid slot a lookup of (x, y) will probe first (a hint only).
    @inline(__always)
    func prefetch(x: Double, y: Double) {
        guard let (_, slot) = gridProbe(x, y) else { return }
        gridSlots.withUnsafeBufferPointer { tripline_prefetch($0.baseAddress! + slot) }
    }

    /// Second stage of `prefetch`, a few events later: reads the (by then loaded) slot and
    /// starts loading the cell's first entries.
    @inline(__always)
    func prefetchRun(x: Double, y: Double) {
        guard let (key, slot) = gridProbe(x, y) else { return }
        gridSlots.withUnsafeBufferPointer { gs in
            guard gs[slot].key == key else { return }
            let start = Int(gs[slot].run >> 32)
            gridEntries.withUnsafeBufferPointer { ge in
                tripline_prefetch(ge.baseAddress! + start)
                if gs[slot].run & 0xFFFF_FFFF > 1 { tripline_prefetch(ge.baseAddress! + start + 1) }
            }
        }
    }

    /// Sets `out` to the indices of every zone covering (x, y), ascending, without repeats.
    public func zones(coveringX x: Double, y: Double, into out: inout [Int32]) {
        if !out.isEmpty { out.removeAll(keepingCapacity: true) }
        guard leafCount > 0 else { return }
        boxes.withUnsafeBufferPointer { bx in
            // The grid: one probe, then the entries of that cell.
            if let (key, home) = gridProbe(x, y) {
                var slot = home
                while true {
                    let k = gridSlots[slot].key
                    if k == key {
                        let run = gridSlots[slot].run
                        gridEntries.withUnsafeBufferPointer { scanRun($0, Int(run >> 32), Int(run & 0xFFFF_FFFF), x, y, &out) }
                        break
                    }
                    if k == .max { break }
                    slot = (slot + 1) & gridMask
                }
            }
            // The coarse grid: one cell, then its entries.
            if coarseWidth > 0 {
                let cx = ((x - coarseOriginX) / coarseCell).rounded(.down), cy = ((y - coarseOriginY) / coarseCell).rounded(.down)
                if cx >= 0 && cy >= 0 && cx < Double(coarseWidth) && cy < Double(coarseHeight) {
                    let run = coarseRuns[Int(cy) * coarseWidth + Int(cx)]
                    if run != 0 { coarseEntries.withUnsafeBufferPointer { scanRun($0, Int(run >> 32), Int(run & 0xFFFF_FFFF), x, y, &out) } }
                }
            }
            // The R-tree of the largest entries.
            guard root >= 0 else { return }
            nodeFirst.withUnsafeBufferPointer { nf in
                nodeCount.withUnsafeBufferPointer { nc in
                    // 256 slots (1 KB): the largest temporary the standard library always
                    // puts on the stack (at 512 it called posix_memalign and free per lookup).
                    // The walk holds at most 15 siblings per level plus one: 17 levels.
                    withUnsafeTemporaryAllocation(of: Int32.self, capacity: 256) { stack in
                        if !(x >= bx[4 * root] && x <= bx[4 * root + 2] && y >= bx[4 * root + 1] && y <= bx[4 * root + 3]) { return }
                        if root < leafCount { testEntry(root, x, y, &out); return }
                        stack[0] = Int32(root)
                        var top = 1
                        while top > 0 {
                            top -= 1
                            let node = Int(stack[top])
                            let first = Int(nf[node]), last = first + Int(nc[node])
                            var c = first
                            while c < last {
                                let k = 4 * c
                                if x >= bx[k] && x <= bx[k + 2] && y >= bx[k + 1] && y <= bx[k + 3] {
                                    if c < leafCount {
                                        testEntry(c, x, y, &out)
                                    } else if top < stack.count {
                                        stack[top] = Int32(c); top += 1
                                    }
                                }
                                c += 1
                            }
                        }
                    }
                }
            }
        }
        if out.count > 1 {
            out.sort()
            var w = 1
            for r in 1..<out.count where out[r] != out[w - 1] {
                out[w] = out[r]; w += 1
            }
            out.removeLast(out.count - w)
        }
    }

    /// Tests R-tree leaf entry `entry`, whose box holds (x, y).
    @inline(__always)
    func testEntry(_ entry: Int, _ x: Double, _ y: Double, _ out: inout [Int32]) {
        let b = 4 * entry
        if entryCovers(entryPart[entry], x, y, minX: boxes[b], minY: boxes[b + 1], maxX: boxes[b + 2], maxY: boxes[b + 3]) {
            out.append(entryZone[entry])
        }
    }

    /// Does the entry testing `part` (as `entryPart`: a polygon part, or < 0 a circle), whose
    /// box (for a part: its shell's) holds (x, y), cover the point?
    @inline(__always)
    func entryCovers(_ part: Int32, _ x: Double, _ y: Double, minX: Double, minY: Double, maxX: Double, maxY: Double) -> Bool {
        if part < 0 {
            let c = -1 - Int(part)
            return Haversine.distance(circles[3 * c], circles[3 * c + 1], x, y) <= circles[3 * c + 2]
        }
        return partCovers(Int(part), x, y, minX: minX, minY: minY, maxX: maxX, maxY: maxY)
    }

    /// Does polygon part `p`, whose box (its shell's) is given and contains (x, y), cover it?
    /// The raster answers most points without looking at the part's rings.
    @inline(__always)
    func partCovers(_ p: Int, _ x: Double, _ y: Double, minX: Double, minY: Double, maxX: Double, maxY: Double) -> Bool {
        let g = Double(ZoneIndex.grid)
        let u = (x - minX) / (maxX - minX) * g, v = (y - minY) / (maxY - minY) * g
        if u.isFinite && v.isFinite {
            let cx = u >= g - 1 ? ZoneIndex.grid - 1 : Int(u), cy = v >= g - 1 ? ZoneIndex.grid - 1 : Int(v)
            let i = cy * ZoneIndex.grid + cx
            let cell = (raster[p * 8 + (i >> 5)] >> UInt64((i & 31) * 2)) & 3
            if cell != 2 { return cell == 1 }
        }
        return partCoversByRings(p, x, y)
    }

    func partCoversByRings(_ p: Int, _ x: Double, _ y: Double) -> Bool {
        let (first, n) = parts[p]
        return coords.withUnsafeBufferPointer { c in
            ringBoxes.withUnsafeBufferPointer { rb in
                for r in Int(first)..<Int(first + n) {
                    let inBox = x >= rb[4 * r] && x <= rb[4 * r + 2] && y >= rb[4 * r + 1] && y <= rb[4 * r + 3]
                    if r == Int(first) {
                        if !inBox { return false }
                        switch locateRing(r, c.baseAddress!, x, y) {
                        case .outside: return false
                        case .boundary: return true
                        case .inside: continue
                        }
                    }
                    if !inBox { continue }
                    switch locateRing(r, c.baseAddress!, x, y) {
                    case .inside: return false
                    case .boundary: return true
                    case .outside: continue
                    }
                }
                return true
            }
        }
    }

    /// The reference answer by scanning every zone (for tests and baselines).
    public func zonesByScan(x: Double, y: Double) -> [Int32] {
        var out: [Int32] = []
        for (z, s) in shapes.enumerated() where s.covers(x, y) { out.append(Int32(z)) }
        return out
    }
}
