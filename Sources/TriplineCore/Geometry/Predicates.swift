/// Exact geometric predicates on IEEE doubles (after Shewchuk's adaptive predicates):
/// a fast floating-point filter, then an exact expansion computation when the filter is
/// inconclusive. No tolerance is ever applied.
public enum Predicates {
    static let epsilon: Double = 0x1p-53
    static let ccwErrorBoundA: Double = (3.0 + 16.0 * epsilon) * epsilon

    /// Sign of the orientation of (a, b, c): > 0 counter-clockwise (c left of a->b),
    /// < 0 clockwise, 0 collinear. Exact.
    
    public static func orient(_ ax: Double, _ ay: Double, _ bx: Double, _ by: Double, _ cx: Double, _ cy: Double) -> Int {
        let detLeft = (ax - cx) * (by - cy)
        let detRight = (ay - cy) * (bx - cx)
        let det = detLeft - detRight
        let detSum: Double
        if detLeft > 0 {
            if detRight <= 0 { return det > 0 ? 1 : (det < 0 ? -1 : 0) }
            detSum = detLeft + detRight
        } else if detLeft < 0 {
            if detRight >= 0 { return det > 0 ? 1 : (det < 0 ? -1 : 0) }
            detSum = -detLeft - detRight
        } else {
            return det > 0 ? 1 : (det < 0 ? -1 : 0)
        }
        let bound = ccwErrorBoundA * detSum
        if det >= bound { return 1 }
        if -det >= bound { return -1 }
        return orientExact(ax, ay, bx, by, cx, cy)
    }

    /// The exact sign via the expansion ax(by - cy) + bx(cy - ay) + cx(ay - by), expanded into
    /// six products, each split exactly with a fused multiply-add, summed without rounding.
    
    static func orientExact(_ ax: Double, _ ay: Double, _ bx: Double, _ by: Double, _ cx: Double, _ cy: Double) -> Int {
        var e: [Double] = []
        e.reserveCapacity(12)
        @inline(__always) func addProduct(_ x: Double, _ y: Double) {
            let p = x * y
            let err = (-p).addingProduct(x, y)   // fma(x, y, -p): exact error of the product
            grow(&e, err)
            grow(&e, p)
        }
        addProduct(ax, by)
        addProduct(-ax, cy)
        addProduct(bx, cy)
        addProduct(-bx, ay)
        addProduct(cx, ay)
        addProduct(-cx, by)
        // The expansion is nonoverlapping with increasing magnitude: the sign is the sign of
        // its largest nonzero component.
        for v in e.reversed() where v != 0 { return v > 0 ? 1 : -1 }
        return 0
    }

    /// Shewchuk's Grow-Expansion with zero elimination: adds `b` to the expansion `e` exactly.
    @inline(__always)
    static func grow(_ e: inout [Double], _ b: Double) {
        var q = b
        var out: [Double] = []
        out.reserveCapacity(e.count + 1)
        for v in e {
            let s = q + v
            let bv = s - q
            let av = s - bv
            let err = (q - av) + (v - bv)
            if err != 0 { out.append(err) }
            q = s
        }
        if q != 0 || out.isEmpty { out.append(q) }
        e = out
    }

    /// True when p lies on the closed segment a-b. Exact.
    
    public static func onSegment(_ px: Double, _ py: Double, _ ax: Double, _ ay: Double, _ bx: Double, _ by: Double) -> Bool {
        if px < min(ax, bx) || px > max(ax, bx) || py < min(ay, by) || py > max(ay, by) { return false }
        return orient(ax, ay, bx, by, px, py) == 0
    }
}
