import Foundation
import Testing
@testable import TriplineCore

@Suite struct PolygonValidationTests {
    func ring(_ pts: [(Double, Double)]) -> Ring { Ring(points: pts) }
    func validate(_ shell: [(Double, Double)], holes: [[(Double, Double)]] = []) -> String? {
        PolygonValidation.validate([Polygon(shell: ring(shell), holes: holes.map(ring))])
    }
    let square: [(Double, Double)] = [(0, 0), (10, 0), (10, 10), (0, 10), (0, 0)]

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
