/// A static R-tree over zone bounding boxes, bulk-loaded by Sort-Tile-Recursive packing,
/// stored as flat arrays level by level (node i of a level has children i*M ..< (i+1)*M
/// of the level below). Answers "which zones cover this point" exactly.
public struct ZoneIndex: Sendable {
    public static let fanout = 16
    /// levels[0] are the leaf entries; the last level has one node (the root).
    /// Each level stores minX, minY, maxX, maxY consecutively.
    var levels: [[Double]]
    /// For leaf entry i: the zone index.
    var entryZone: [Int32]
    /// The zone shapes, by zone index.
    public let shapes: [ZoneShape]

    /// Builds the index. Zones are numbered by their position in `shapes`.
    public init(shapes: [ZoneShape]) {
        self.shapes = shapes
        var entries: [(BBox, Int32)] = []
        for (z, s) in shapes.enumerated() {
            for b in s.indexBoxes { entries.append((b, Int32(z))) }
        }
        // STR packing of the leaves.
        let m = ZoneIndex.fanout
        let n = entries.count
        if n > 0 {
            entries.sort { ($0.0.minX + $0.0.maxX) < ($1.0.minX + $1.0.maxX) }
            let leafPages = (n + m - 1) / m
            let slices = Int(Double(leafPages).squareRoot().rounded(.up))
            let perSlice = slices * m
            var start = 0
            while start < n {
                let end = min(n, start + perSlice)
                entries[start..<end].sort { ($0.0.minY + $0.0.maxY) < ($1.0.minY + $1.0.maxY) }
                start = end
            }
        }
        var leaf: [Double] = []
        leaf.reserveCapacity(n * 4)
        for (b, _) in entries { leaf += [b.minX, b.minY, b.maxX, b.maxY] }
        entryZone = entries.map(\.1)
        levels = [leaf]
        var current = leaf
        while current.count / 4 > 1 {
            let count = current.count / 4
            var up: [Double] = []
            up.reserveCapacity(((count + m - 1) / m) * 4)
            var i = 0
            while i < count {
                var b = BBox.empty
                for k in i..<min(count, i + m) {
                    b.extend(BBox(minX: current[4 * k], minY: current[4 * k + 1], maxX: current[4 * k + 2], maxY: current[4 * k + 3]))
                }
                up += [b.minX, b.minY, b.maxX, b.maxY]
                i += m
            }
            levels.append(up)
            current = up
        }
    }

    /// Number of zones.
    public var count: Int { shapes.count }

    /// Appends to `out` the indices of every zone covering (x, y), ascending, without repeats.
    /// `out` is cleared first.
    
    public func zones(coveringX x: Double, y: Double, into out: inout [Int32]) {
        out.removeAll(keepingCapacity: true)
        guard let top = levels.last, top.count == 4 else { return }
        if x >= top[0] && x <= top[2] && y >= top[1] && y <= top[3] {
            visit(level: levels.count - 1, node: 0, x, y, &out)
        }
        finish(&out)
    }

    
    func finish(_ out: inout [Int32]) {
        if out.count > 1 {
            out.sort()
            var w = 1
            for r in 1..<out.count where out[r] != out[w - 1] {
                out[w] = out[r]; w += 1
            }
            out.removeLast(out.count - w)
        }
    }

    
    func visit(level: Int, node: Int, _ x: Double, _ y: Double, _ out: inout [Int32]) {
        if level == 0 {
            let z = Int(entryZone[node])
            if shapes[z].covers(x, y) { out.append(Int32(z)) }
            return
        }
        let below = levels[level - 1]
        let first = node * ZoneIndex.fanout
        let last = min(below.count / 4, first + ZoneIndex.fanout)
        below.withUnsafeBufferPointer { b in
            for c in first..<last {
                if x >= b[4 * c] && x <= b[4 * c + 2] && y >= b[4 * c + 1] && y <= b[4 * c + 3] {
                    visit(level: level - 1, node: c, x, y, &out)
                }
            }
        }
    }

    /// The reference answer by scanning every zone (for tests).
    public func zonesByScan(x: Double, y: Double) -> [Int32] {
        var out: [Int32] = []
        for (z, s) in shapes.enumerated() where s.covers(x, y) { out.append(Int32(z)) }
        return out
    }
}
