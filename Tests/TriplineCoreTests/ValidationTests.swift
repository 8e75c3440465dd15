import Foundation
import Testing
import TriplineTesting
@testable import TriplineCore

@Suite struct PolygonValidationTests {
    func ring(_ pts: [(Double, Double)]) -> Ring { Ring(points: pts) }
    func validate(_ shell: [(Double, Double)], holes: [[(Double, Double)]] = []) -> String? {
        PolygonValidation.validate([Polygon(shell: ring(shell), holes: holes.map(ring))])
    }
    let square: [(Double, Double)] = [(0, 0), (10, 0), (10, 10), (0, 10), (0, 0)]

    /// The sweep relates only segments whose boxes meet; relating every later segment in the
    /// same order (the unpruned reference) gives the same verdict and the same message, on
    /// random polygons on a coarse grid (so that vertices, edges and rings often touch, cross
    /// or overlap): stars, with holes, with vertices swapped or repeated, and several parts.
    @Test(arguments: Array(1...4) as [UInt64])
    func prunedSweepGivesTheMessagesOfRelatingEveryPair(seed: UInt64) {
        var rng = SplitMix64(seed: seed)
        func star(_ cx: Double, _ cy: Double, _ r: Double, _ n: Int) -> [(Double, Double)] {
            var pts: [(Double, Double)] = (0..<n).map { k in
                let a = 2 * Double.pi * Double(k) / Double(n)
                let rr = r * (0.4 + Double(rng.next() % 60) / 100)
                // On a grid of 1/4: collinear runs, shared vertices and touching edges happen.
                return (((cx + rr * cos(a)) * 4).rounded() / 4, ((cy + rr * sin(a)) * 4).rounded() / 4)
            }
            switch rng.next() % 6 {
            case 0: pts.swapAt(Int(rng.next() % UInt64(n)), Int(rng.next() % UInt64(n)))
            case 1: let k = Int(rng.next() % UInt64(n - 1)); pts.insert(pts[k], at: k + 2)
            default: break
            }
            pts.append(pts[0])
            return pts
        }
        var verdicts = [0, 0]
        for _ in 0..<400 {
            var parts: [Polygon] = []
            for _ in 0..<(1 + Int(rng.next() % 3)) {
                let cx = Double(rng.next() % 30), cy = Double(rng.next() % 30), r = 2 + Double(rng.next() % 10)
                let holes = (0..<Int(rng.next() % 3)).map { _ in
                    ring(star(cx + Double(rng.next() % 5) - 2, cy + Double(rng.next() % 5) - 2, r / 3, 4 + Int(rng.next() % 8)))
                }
                parts.append(Polygon(shell: ring(star(cx, cy, r, 5 + Int(rng.next() % 40))), holes: holes))
            }
            let pruned = PolygonValidation.validate(parts, pruned: true)
            #expect(pruned == PolygonValidation.validate(parts, pruned: false))
            verdicts[pruned == nil ? 0 : 1] += 1
        }
        // Both verdicts are common, so the comparison covers messages and acceptances.
        #expect(verdicts[0] > 40 && verdicts[1] > 40, "\(verdicts)")
    }

    @Test func simpleSquareIsValid() { #expect(validate(square) == nil) }
    @Test func repeatedConsecutiveVerticesAreTolerated() {
        #expect(validate([(0, 0), (10, 0), (10, 0), (10, 10), (0, 10), (0, 0)]) == nil)
    }
    @Test func bowtieIsInvalid() {
        let msg = validate([(0, 0), (10, 10), (10, 0), (0, 10), (0, 0)])
        #expect(msg?.contains("intersects itself") == true)
    }
    @Test func spikeIsInvalid() {
        #expect(validate([(0, 0), (10, 0), (10, 10), (10, 15), (10, 10), (0, 10), (0, 0)]) != nil)
    }
    @Test func collapsedRingIsInvalid() {
        #expect(validate([(0, 0), (5, 5), (10, 10), (0, 0)]) != nil)
    }
    @Test func selfTouchingRingIsInvalid() {
        // The shell pinches itself at (5, 0).
        #expect(validate([(0, 0), (5, 0), (10, 0), (10, 10), (5, 0), (0, 10), (0, 0)]) != nil)
    }
    @Test func holeInsideIsValidAndHoleOutsideIsNot() {
        #expect(validate(square, holes: [[(2, 2), (4, 2), (4, 4), (2, 4), (2, 2)]]) == nil)
        #expect(validate(square, holes: [[(20, 2), (24, 2), (24, 4), (20, 4), (20, 2)]])?.contains("outside") == true)
    }
    @Test func holeCrossingShellIsInvalid() {
        #expect(validate(square, holes: [[(8, 2), (12, 2), (12, 4), (8, 4), (8, 2)]]) != nil)
    }
    @Test func holeTouchingShellAtOnePointIsValidAtTwoIsNot() {
        #expect(validate(square, holes: [[(0, 5), (3, 4), (3, 6), (0, 5)]]) == nil)
        // Touching at two points cuts the interior in two.
        #expect(validate(square, holes: [[(0, 5), (5, 0), (10, 5), (5, 4), (0, 5)]])?.contains("disconnected") == true)
    }
    @Test func nestedHolesAreInvalid() {
        #expect(validate(square, holes: [[(1, 1), (9, 1), (9, 9), (1, 9), (1, 1)], [(3, 3), (4, 3), (4, 4), (3, 4), (3, 3)]]) != nil)
    }
    @Test func multiPolygonPartsMayTouchAtAPointButNotOverlapOrShareEdges() {
        let a = Polygon(shell: ring(square), holes: [])
        let touching = Polygon(shell: ring([(10, 10), (20, 10), (20, 20), (10, 20), (10, 10)]), holes: [])
        let sharing = Polygon(shell: ring([(10, 0), (20, 0), (20, 10), (10, 10), (10, 0)]), holes: [])
        let overlapping = Polygon(shell: ring([(5, 5), (15, 5), (15, 15), (5, 15), (5, 5)]), holes: [])
        let inside = Polygon(shell: ring([(2, 2), (3, 2), (3, 3), (2, 3), (2, 2)]), holes: [])
        #expect(PolygonValidation.validate([a, touching]) == nil)
        #expect(PolygonValidation.validate([a, sharing]) != nil)
        #expect(PolygonValidation.validate([a, overlapping]) != nil)
        #expect(PolygonValidation.validate([a, inside]) != nil)
    }
    /// Parts long enough to be located by bands (a country and its islands): an island
    /// inside the mainland, or a mainland inside an island's outline, is an overlap; an island
    /// off the coast, or inside the mainland's hole (a lake), is not.
    @Test func longPartsAreCheckedForOverlapByBands() {
        func circle(_ cx: Double, _ cy: Double, _ r: Double, _ n: Int, clockwise: Bool = false) -> [(Double, Double)] {
            var pts: [(Double, Double)] = (0..<n).map { k in
                let a = 2 * Double.pi * Double(k) / Double(n) * (clockwise ? -1 : 1)
                return (((cx + r * cos(a)) * 1024).rounded() / 1024, ((cy + r * sin(a)) * 1024).rounded() / 1024)
            }
            pts.append(pts[0])
            return pts
        }
        let mainland = Polygon(shell: ring(circle(0, 0, 10, 600)), holes: [ring(circle(0, 0, 3, 200, clockwise: true))])
        #expect(RingBands(mainland.shell) != nil && RingBands(mainland.holes[0]) != nil)
        #expect(PolygonValidation.validate([mainland]) == nil)
        let offshore = Polygon(shell: ring(circle(12, 0, 1, 80)), holes: [])
        let inLake = Polygon(shell: ring(circle(0, 0, 1, 80)), holes: [])
        let onLand = Polygon(shell: ring(circle(6, 0, 1, 80)), holes: [])
        let around = Polygon(shell: ring(circle(0, 0, 20, 300)), holes: [])
        #expect(PolygonValidation.validate([mainland, offshore]) == nil)
        #expect(PolygonValidation.validate([offshore, mainland]) == nil)
        #expect(PolygonValidation.validate([mainland, inLake]) == nil)
        #expect(PolygonValidation.validate([mainland, onLand])?.contains("overlap") == true)
        #expect(PolygonValidation.validate([onLand, mainland])?.contains("overlap") == true)
        #expect(PolygonValidation.validate([mainland, around])?.contains("overlap") == true)
    }

    @Test func ringsSpanningMoreThan180DegreesAreRefused() {
        let msg = validate([(-170, 0), (170, 0), (170, 10), (-170, 10), (-170, 0)])
        #expect(msg?.contains("antimeridian") == true)
    }
}
