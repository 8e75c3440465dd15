import Foundation
import Testing
import TriplineTesting
@testable import TriplineCore

@Suite struct PredicateTests {
    @Test func orientationIsExactOnNearlyCollinearPoints() {
        // c lies exactly on the line through a and b; nudging it by one ulp must flip the sign.
        let a = (0.5, 0.5), b = (12.0, 12.0)
        let c = (24.0, 24.0)
        #expect(Predicates.orient(a.0, a.1, b.0, b.1, c.0, c.1) == 0)
        #expect(Predicates.orient(a.0, a.1, b.0, b.1, c.0, c.1.nextUp) == 1)
        #expect(Predicates.orient(a.0, a.1, b.0, b.1, c.0, c.1.nextDown) == -1)
        // A classic case where the naive floating-point determinant gets the sign wrong.
        let p = (0.1, 0.1), q = (0.3, 0.3), r = (0.2, 0.2)
        let naive = (p.0 - r.0) * (q.1 - r.1) - (p.1 - r.1) * (q.0 - r.0)
        let exact = Predicates.orient(p.0, p.1, q.0, q.1, r.0, r.1)
        // 0.1, 0.2 and 0.3 as doubles are not exactly collinear: whichever the truth, the exact
        // answer must agree with a rational evaluation.
        #expect(exact == rationalOrient(p, q, r))
        _ = naive
    }

    @Test func orientationAgreesWithRationalArithmeticOnRandomNearDegenerateInput() {
        var rng = SplitMix64(seed: 42)
        for _ in 0..<20_000 {
            let ax = Double.random(in: -180...180, using: &rng), ay = Double.random(in: -90...90, using: &rng)
            let bx = Double.random(in: -180...180, using: &rng), by = Double.random(in: -90...90, using: &rng)
            let t = Double.random(in: -2...2, using: &rng)
            var cx = ax + t * (bx - ax), cy = ay + t * (by - ay)
            for _ in 0..<Int(rng.next() % 3) { cx = cx.nextUp }
            for _ in 0..<Int(rng.next() % 3) { cy = cy.nextDown }
            #expect(Predicates.orient(ax, ay, bx, by, cx, cy) == rationalOrient((ax, ay), (bx, by), (cx, cy)))
        }
    }
}

/// Exact orientation by big-integer arithmetic on the doubles' exact binary values.
func rationalOrient(_ a: (Double, Double), _ b: (Double, Double), _ c: (Double, Double)) -> Int {
    // Scale every coordinate to an integer: all values are multiples of 2^-1074; use a common
    // exponent from the smallest one involved.
    let vals = [a.0, a.1, b.0, b.1, c.0, c.1]
    let minExp = vals.filter { $0 != 0 }.map { $0.exponent - 52 }.min() ?? 0
    func big(_ d: Double) -> BigInt {
        if d == 0 { return BigInt(0) }
        let sig = BigInt(Int64(d.significandBitPattern | (1 << 52)))
        let shift = Int(d.exponent - 52 - minExp)
        let m = sig.shifted(left: shift)
        return d < 0 ? m.negated() : m
    }
    let ax = big(a.0), ay = big(a.1), bx = big(b.0), by = big(b.1), cx = big(c.0), cy = big(c.1)
    let det = (ax - cx) * (by - cy) - (ay - cy) * (bx - cx)
    return det.sign
}

/// A tiny signed big integer (base 2^32 limbs), enough for the exactness tests.
struct BigInt {
    var negative = false
    var limbs: [UInt32] = []   // little-endian magnitude

    init(_ v: Int64) {
        negative = v < 0
        var m = v.magnitude
        while m > 0 { limbs.append(UInt32(truncatingIfNeeded: m)); m >>= 32 }
    }
    init(negative: Bool, limbs: [UInt32]) {
        var l = limbs
        while l.last == 0 { l.removeLast() }
        self.limbs = l
        self.negative = l.isEmpty ? false : negative
    }
    var sign: Int { limbs.isEmpty ? 0 : (negative ? -1 : 1) }
    func negated() -> BigInt { BigInt(negative: !negative, limbs: limbs) }
    func shifted(left s: Int) -> BigInt {
        var out = [UInt32](repeating: 0, count: s / 32)
        let bits = s % 32
        var carry: UInt32 = 0
        for l in limbs {
            out.append(bits == 0 ? l : (l << bits) | carry)
            carry = bits == 0 ? 0 : l >> (32 - bits)
        }
        out.append(carry)
        return BigInt(negative: negative, limbs: out)
    }
    static func cmpMag(_ a: [UInt32], _ b: [UInt32]) -> Int {
        if a.count != b.count { return a.count < b.count ? -1 : 1 }
        for i in stride(from: a.count - 1, through: 0, by: -1) where a[i] != b[i] { return a[i] < b[i] ? -1 : 1 }
        return 0
    }
    static func addMag(_ a: [UInt32], _ b: [UInt32]) -> [UInt32] {
        var out: [UInt32] = []
        var carry: UInt64 = 0
        for i in 0..<max(a.count, b.count) {
            let s = UInt64(i < a.count ? a[i] : 0) + UInt64(i < b.count ? b[i] : 0) + carry
            out.append(UInt32(truncatingIfNeeded: s)); carry = s >> 32
        }
        if carry > 0 { out.append(UInt32(carry)) }
        return out
    }
    static func subMag(_ a: [UInt32], _ b: [UInt32]) -> [UInt32] {  // |a| >= |b|
        var out: [UInt32] = []
        var borrow: Int64 = 0
        for i in 0..<a.count {
            var d = Int64(a[i]) - Int64(i < b.count ? b[i] : 0) - borrow
            borrow = 0
            if d < 0 { d += 1 << 32; borrow = 1 }
            out.append(UInt32(d))
        }
        return out
    }
    static func + (x: BigInt, y: BigInt) -> BigInt {
        if x.negative == y.negative { return BigInt(negative: x.negative, limbs: addMag(x.limbs, y.limbs)) }
        let c = cmpMag(x.limbs, y.limbs)
        if c == 0 { return BigInt(0) }
        return c > 0 ? BigInt(negative: x.negative, limbs: subMag(x.limbs, y.limbs)) : BigInt(negative: y.negative, limbs: subMag(y.limbs, x.limbs))
    }
    static func - (x: BigInt, y: BigInt) -> BigInt { x + y.negated() }
    static func * (x: BigInt, y: BigInt) -> BigInt {
        var out = [UInt32](repeating: 0, count: x.limbs.count + y.limbs.count + 1)
        for i in 0..<x.limbs.count {
            var carry: UInt64 = 0
            for j in 0..<y.limbs.count {
                let t = UInt64(x.limbs[i]) * UInt64(y.limbs[j]) + UInt64(out[i + j]) + carry
                out[i + j] = UInt32(truncatingIfNeeded: t); carry = t >> 32
            }
            var k = i + y.limbs.count
            while carry > 0 { let t = UInt64(out[k]) + carry; out[k] = UInt32(truncatingIfNeeded: t); carry = t >> 32; k += 1 }
        }
        return BigInt(negative: x.negative != y.negative, limbs: out)
    }
}

@Suite struct PolygonTests {
    static func square(_ x0: Double, _ y0: Double, _ x1: Double, _ y1: Double) -> Ring {
        Ring(points: [(x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0)])
    }

    @Test func boundaryIsInsideAndHolesAreOutside() {
        let p = Polygon(shell: Self.square(0, 0, 10, 10), holes: [Self.square(4, 4, 6, 6)])
        #expect(p.covers(1, 1))
        #expect(p.covers(0, 0))        // vertex
        #expect(p.covers(5, 0))        // edge
        #expect(p.covers(10, 7.5))     // vertical edge
        #expect(!p.covers(5, 5))       // inside the hole
        #expect(p.covers(4, 5))        // on the hole's ring
        #expect(p.covers(6, 6))        // hole vertex
        #expect(!p.covers(10.000000001, 5))
        #expect(!p.covers(-1, 5))
    }

    @Test func circlesUseHaversine() {
        let z = ZoneShape.circle(lon: 0, lat: 0, radiusM: 1000)
        let oneKmEast = 1000 / (Haversine.earthRadiusM * Double.pi / 180)
        #expect(z.covers(oneKmEast * 0.999, 0))
        #expect(!z.covers(oneKmEast * 1.001, 0))
        #expect(abs(Haversine.distance(0, 0, oneKmEast, 0) - 1000) < 1e-6)
    }

    @Test func circleBoxesCoverTheCircleAcrossTheAntimeridian() {
        let z = ZoneShape.circle(lon: 179.99, lat: 10, radiusM: 5000)
        #expect(z.indexBoxes.count == 2)
        let index = ZoneIndex(shapes: [z])
        var out: [Int32] = []
        index.zones(coveringX: -179.99, y: 10, into: &out)
        #expect(out == [0])
    }
}

@Suite struct ZoneIndexTests {
    /// Random zones on a coarse grid so that vertices and edge points are hit exactly.
    static func randomZones(_ rng: inout SplitMix64, count: Int) -> [ZoneShape] {
        var shapes: [ZoneShape] = []
        for _ in 0..<count {
            let cx = Double(Int(rng.next() % 400)) / 4 - 50, cy = Double(Int(rng.next() % 200)) / 4 - 25
            switch rng.next() % 4 {
            case 0:
                shapes.append(.circle(lon: cx, lat: cy, radiusM: Double(rng.next() % 300_000 + 1000)))
            case 1:
                let w = Double(rng.next() % 16 + 1) / 4, h = Double(rng.next() % 16 + 1) / 4
                let hole = PolygonTests.square(cx + w / 4, cy + h / 4, cx + w / 2, cy + h / 2)
                shapes.append(.polygons([Polygon(shell: PolygonTests.square(cx, cy, cx + w, cy + h), holes: [hole])]))
            default:
                // Star polygon with grid vertices.
                let n = Int(rng.next() % 10) + 3
                var pts: [(Double, Double)] = []
                for k in 0..<n {
                    let a = 2 * Double.pi * Double(k) / Double(n)
                    let r = Double(rng.next() % 12 + 2) / 4
                    pts.append((((cx + r * cos(a)) * 4).rounded() / 4, ((cy + r * sin(a)) * 4).rounded() / 4))
                }
                pts.append(pts[0])
                let poly = Polygon(shell: Ring(points: pts), holes: [])
                if PolygonValidation.validate([poly]) == nil { shapes.append(.polygons([poly])) }
            }
        }
        return shapes
    }

    @Test(arguments: [1, 2, 3, 4, 5] as [UInt64])
    func indexAgreesWithBruteForceScan(seed: UInt64) {
        var rng = SplitMix64(seed: seed)
        var shapes = Self.randomZones(&rng, count: 300)
        // A few zones far larger than the rest go to the R-tree part of the index.
        for k in 0..<6 {
            let x = Double(k * 15) - 50, y = Double(k % 3) * 10 - 25
            shapes.append(.polygons([Polygon(shell: PolygonTests.square(x, y, x + 40, y + 30), holes: [PolygonTests.square(x + 10, y + 10, x + 20, y + 20)])]))
        }
        shapes.append(.circle(lon: 0, lat: 0, radiusM: 4_000_000))
        // Frames around almost the whole globe, each larger than 8 cells of the coarse grid:
        // the R-tree part (the zones above go to the coarse grid).
        for k in 0..<8 {
            let d = Double(k) / 2
            shapes.append(.polygons([Polygon(shell: PolygonTests.square(-175 + d, -85 + d, 175 - d, 85 - d),
                                             holes: [PolygonTests.square(-170 + d, -80 + d, 170 - d, 80 - d)])]))
        }
        // As built by default, the frames go to the coarse grid (they span at most
        // `maxCoarseSpan` of its cells); admitting only entries of up to `maxCellsPerSide`
        // cells a side there sends them to the R-tree. Both must answer as the scan does.
        // With the budget for the coarse grid's pairs down to what the entries of up to
        // `maxCellsPerSide` cells a side take, no frame fits in it: they go to the R-tree again.
        let wide = ZoneIndex(shapes: shapes)
        let index = ZoneIndex(shapes: shapes, coarseSpan: ZoneIndex.maxCellsPerSide, pairBudget: nil)
        let budgeted = ZoneIndex(shapes: shapes, coarseSpan: ZoneIndex.maxCoarseSpan, pairBudget: index.coarseEntries.count)
        #expect(index.treeLeaves >= 7 && index.treeLeaves < index.leafCount / 2)
        #expect(index.coarseLeaves >= 7 && !index.coarseEntries.isEmpty)
        #expect(wide.treeLeaves < index.treeLeaves && wide.coarseLeaves >= index.coarseLeaves + 7)
        #expect(budgeted.treeLeaves > wide.treeLeaves && budgeted.coarseEntries.count <= index.coarseEntries.count)
        var out: [Int32] = []
        var hits = 0
        // Points: random, on grid (vertices and edges of the grid polygons), and exact vertices.
        var points: [(Double, Double)] = []
        for _ in 0..<3000 {
            points.append((Double.random(in: -55...55, using: &rng), Double.random(in: -30...30, using: &rng)))
            points.append((Double(Int(rng.next() % 480)) / 8 - 55, Double(Int(rng.next() % 240)) / 8 - 30))
        }
        for _ in 0..<1000 {
            points.append((Double.random(in: -180...180, using: &rng), Double.random(in: -90...90, using: &rng)))
            points.append((Double(Int(rng.next() % 2880)) / 8 - 180, Double(Int(rng.next() % 1440)) / 8 - 90))
        }
        for s in shapes {
            if case .polygons(let ps) = s {
                for k in 0..<(ps[0].shell.pointCount - 1) {
                    let r = ps[0].shell
                    points.append((r.x(k), r.y(k)))
                    points.append(((r.x(k) + r.x(k + 1)) / 2, (r.y(k) + r.y(k + 1)) / 2))
                }
            }
        }
        for (x, y) in points {
            index.zones(coveringX: x, y: y, into: &out)
            let expected = index.zonesByScan(x: x, y: y)
            #expect(out == expected, "point \(x), \(y)")
            wide.zones(coveringX: x, y: y, into: &out)
            #expect(out == expected, "point \(x), \(y), frames in the coarse grid")
            budgeted.zones(coveringX: x, y: y, into: &out)
            #expect(out == expected, "point \(x), \(y), coarse grid within a small budget")
            hits += expected.count
        }
        #expect(hits > 100)  // the workload really hits zones
    }

    /// Rings of hundreds to thousands of vertices (country outlines) are located by their
    /// horizontal bands: the answers must be a scan of every edge's, on vertices, edge
    /// midpoints, points just beside edges, points level with a vertex (the ray through it)
    /// and random points.
    @Test(arguments: [11, 12, 13] as [UInt64])
    func bandedRingsAgreeWithBruteForceScan(seed: UInt64) {
        var rng = SplitMix64(seed: seed)
        func grid(_ v: Double) -> Double { (v * 256).rounded() / 256 }
        func star(_ cx: Double, _ cy: Double, _ n: Int, _ r0: Double, _ spread: Double, clockwise: Bool) -> Ring {
            var pts: [(Double, Double)] = []
            for k in 0..<n {
                let a = 2 * Double.pi * Double(k) / Double(n) * (clockwise ? -1 : 1)
                let r = r0 + spread * Double(rng.next() % 1024) / 1024
                let p = (grid(cx + r * cos(a)), grid(cy + r * sin(a)))
                if pts.last.map({ $0 != p }) ?? true { pts.append(p) }
            }
            if pts.last! == pts[0] { pts.removeLast() }
            pts.append(pts[0])
            return Ring(points: pts)
        }
        var shapes: [ZoneShape] = []
        var rings: [Ring] = []
        for z in 0..<12 {
            let cx = Double(z % 4) * 30 - 45, cy = Double(z / 4) * 20 - 20
            let shell = star(cx, cy, 40 + Int(rng.next() % 3000), 5, 4, clockwise: false)
            let holes = z % 2 == 0 ? [star(cx, cy, 33 + Int(rng.next() % 400), 1, 2, clockwise: true)] : []
            let poly = Polygon(shell: shell, holes: holes)
            guard PolygonValidation.validate([poly]) == nil else { continue }
            shapes.append(.polygons([poly]))
            rings += [shell] + holes
        }
        #expect(shapes.count >= 8)
        // A comb: teeth whose edges span the ring's whole height, so every edge would be in
        // every band; the band count must be cut down (bounded lists) and stay exact.
        let teeth = 60 + Int(rng.next() % 200)
        var comb: [(Double, Double)] = [(100, 0)]
        for t in 0..<teeth {
            let x0 = 100 + Double(t) / 8
            comb += [(x0, 20), (x0 + 1.0 / 16, 20), (x0 + 1.0 / 16, 1)]
        }
        comb += [(100 + Double(teeth) / 8, 1), (100 + Double(teeth) / 8, 0), (100, 0)]
        let combRing = Ring(points: comb)
        #expect(PolygonValidation.validate([Polygon(shell: combRing, holes: [])]) == nil)
        shapes.append(.polygons([Polygon(shell: combRing, holes: [])]))
        rings.append(combRing)
        let index = ZoneIndex(shapes: shapes)
        #expect(index.ringBandFirst.filter { $0 >= 0 }.count == rings.count)
        #expect(index.bandEdges.count <= RingBands.maxListingsPerEdge * rings.reduce(0) { $0 + $1.pointCount })
        #expect(index.ringBandCount.last! < Int32((combRing.pointCount - 1) / RingBands.edgesPerBand))
        var points: [(Double, Double)] = []
        for r in rings {
            for k in 0..<(r.pointCount - 1) {
                let ax = r.x(k), ay = r.y(k), bx = r.x(k + 1), by = r.y(k + 1)
                points.append((ax, ay))
                points.append(((ax + bx) / 2, (ay + by) / 2))
                let t = Double.random(in: 0...1, using: &rng)
                let d = Double.random(in: -1e-9...1e-9, using: &rng)
                points.append((ax + t * (bx - ax) + d, ay + t * (by - ay) - d))
                points.append((ax + Double.random(in: -3...3, using: &rng), ay))
            }
            for _ in 0..<200 {
                points.append((Double.random(in: r.bbox.minX...r.bbox.maxX, using: &rng), Double.random(in: r.bbox.minY...r.bbox.maxY, using: &rng)))
            }
        }
        var out: [Int32] = []
        var hits = 0, mismatches = 0
        for (x, y) in points {
            index.zones(coveringX: x, y: y, into: &out)
            let expected = index.zonesByScan(x: x, y: y)
            if out != expected {
                mismatches += 1
                if mismatches <= 5 { Issue.record("point \(x), \(y): index \(out), scan \(expected)") }
            }
            hits += expected.count
        }
        #expect(mismatches == 0)
        #expect(hits > points.count / 3)
        // The same bands, built on their own for polygon validation, locate exactly as the
        // polygons do: inside, outside and on the boundary.
        var bandMismatches = 0
        var seen: [PointLocation: Int] = [:]
        for case .polygons(let ps) in shapes {
            for p in ps {
                let banded = BandedPolygon(p)
                for (x, y) in points where x >= p.bbox.minX - 1 && x <= p.bbox.maxX + 1 && y >= p.bbox.minY - 1 && y <= p.bbox.maxY + 1 {
                    let expected = p.locate(x, y)
                    seen[expected, default: 0] += 1
                    if banded.locate(x, y) != expected {
                        bandMismatches += 1
                        if bandMismatches <= 5 { Issue.record("point \(x), \(y): banded \(banded.locate(x, y)), polygon \(expected)") }
                    }
                }
            }
        }
        #expect(bandMismatches == 0)
        #expect((seen[.inside] ?? 0) > 1000 && (seen[.outside] ?? 0) > 1000 && (seen[.boundary] ?? 0) > 1000, "\(seen)")
    }

    @Test func everyVertexOfAPolygonIsCovered() {
        var rng = SplitMix64(seed: 9)
        let shapes = Self.randomZones(&rng, count: 200)
        for s in shapes {
            guard case .polygons(let ps) = s else { continue }
            let r = ps[0].shell
            for k in 0..<r.pointCount { #expect(s.covers(r.x(k), r.y(k))) }
        }
    }
}
