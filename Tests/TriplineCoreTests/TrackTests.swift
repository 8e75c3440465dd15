import Foundation
import Testing
@testable import TriplineCore

/// Tracks for `intersects` queries: the store against a naive "every position, stably sorted
/// by time, the last K" reference under random late arrivals; the circle test against a dense
/// sampling of each segment; and the antimeridian cut by hand.
@Suite struct TrackTests {
    struct Rng {
        var s: UInt64
        mutating func next() -> UInt64 { s ^= s << 13; s ^= s >> 7; s ^= s << 17; return s }
        mutating func unit() -> Double { Double(next() % 1_000_000) / 1_000_000 }
        mutating func int(_ n: Int) -> Int { Int(next() % UInt64(n)) }
    }

    @Test func storeKeepsTheLastPositionsByEventTimeUnderLateArrivals() {
        var rng = Rng(s: 0x9E37_79B9_7F4A_7C15)
        var compared = 0
        for capacity in [1, 2, 3, 10] {
            let store = TrackStore(capacity: capacity)
            var all: [[(Double, Double, Millis, Int)]] = Array(repeating: [], count: 20)
            for arrival in 0..<3_000 {
                let e = rng.int(20)
                // Times mostly rising, often late, with ties.
                let t = Millis(arrival / 3 - rng.int(40))
                let x = rng.unit() * 10, y = rng.unit() * 10
                store.add(entity: Int32(e), lon: x, lat: y, time: t)
                all[e].append((x, y, t, arrival))
                if arrival % 97 == 0 || arrival == 2_999 {
                    for k in 0..<20 {
                        let want = all[k].sorted { $0.2 != $1.2 ? $0.2 < $1.2 : $0.3 < $1.3 }.suffix(capacity).flatMap { [$0.0, $0.1] }
                        var got: [Double] = []
                        store.points(Int32(k), span: nil, into: &got)
                        #expect(got == Array(want), "capacity \(capacity), entity \(k), after arrival \(arrival)")
                        compared += 1
                    }
                }
            }
        }
        #expect(compared > 1_000)
    }

    @Test func spansTakeTheLastPointsOrTheLastDuration() {
        let store = TrackStore(capacity: 5)
        for (i, t) in [0, 10, 20, 30, 40, 50].enumerated() { store.add(entity: 3, lon: Double(i), lat: 0, time: Millis(t)) }
        var got: [Double] = []
        store.points(3, span: nil, into: &got)
        #expect(got == [1, 0, 2, 0, 3, 0, 4, 0, 5, 0])
        store.points(3, span: .points(2), into: &got)
        #expect(got == [4, 0, 5, 0])
        store.points(3, span: .duration(20), into: &got)
        #expect(got == [3, 0, 4, 0, 5, 0])  // times 30, 40, 50: at most 20 older than 50
        store.points(3, span: .duration(0), into: &got)
        #expect(got == [5, 0])
        store.points(7, span: nil, into: &got)
        #expect(got.isEmpty)
    }

    @Test func aSegmentAcrossTheAntimeridianGoesTheShortWay() {
        let segs = TrackGeometry.segments([179, 10, -179, 12])
        #expect(segs.count == 2)
        #expect(segs[0] == (179, 10, 180, 11))
        #expect(segs[1] == (-180, 11, -179, 12))
        // A box just east of the antimeridian is met; one in the middle of the world is not.
        let east = PositionQuery.boxShape(BBox(minX: -179.5, minY: 0, maxX: -179.2, maxY: 20))
        let middle = PositionQuery.boxShape(BBox(minX: -10, minY: 0, maxX: 10, maxY: 20))
        #expect(TrackGeometry.meets(east, [179, 10, -179, 12]))
        #expect(!TrackGeometry.meets(middle, [179, 10, -179, 12]))
        // Touching a corner counts (closed sets).
        let box = PositionQuery.boxShape(BBox(minX: 0, minY: 0, maxX: 1, maxY: 1))
        #expect(TrackGeometry.meets(box, [2, 0, 1, 1, 2, 2]))
        #expect(!TrackGeometry.meets(box, [2, 0, 1.0000001, 1, 2, 2]))
    }

    /// Circles: the answer agrees with the nearest of 2,000 samples along each segment
    /// wherever that sample's distance is clearly inside or outside the radius.
    /// The query's refusals by box (of the whole track, then of the span) drop nothing:
    /// `intersects` answers exactly the entities whose span meets the shape by the exact test
    /// alone, over tracks built by late arrivals and drops (so that boxes shrink as well as
    /// grow), with tracks and shapes across the antimeridian.
    @Test(arguments: [3, 4, 5] as [UInt64])
    func intersectsAgreesWithTestingEveryTrack(seed: UInt64) {
        var rng = Rng(s: seed &* 0x9E37_79B9_7F4A_7C15 | 1)
        let store = TrackStore(capacity: 1 + rng.int(6))
        let index = PositionIndex()
        let entities = 400
        for arrival in 0..<6_000 {
            let e = Int32(rng.int(entities))
            // Half near the antimeridian, half over a patch of Europe; times mostly rising.
            let x = e % 2 == 0 ? (rng.unit() < 0.5 ? 178 + rng.unit() * 2 : -180 + rng.unit() * 2) : rng.unit() * 10
            let y = rng.unit() * 10 + (e % 2 == 0 ? -5 : 45)
            let t = Millis(arrival * 10 - rng.int(200))
            store.add(entity: e, lon: x, lat: y, time: t)
            index.track(entity: e, lon: x, lat: y, time: t)
        }
        var pts: [Double] = []
        var met = 0, compared = 0
        for q in 0..<120 {
            let shape: ZoneShape
            switch q % 3 {
            case 0:
                let x0 = rng.unit() * 360 - 180, y0 = rng.unit() * 20 - 10 + (q % 2 == 0 ? 0 : 45)
                let x1 = x0 + rng.unit() * 4 > 180 ? x0 + rng.unit() * 4 - 360 : x0 + rng.unit() * 4
                shape = PositionQuery.boxShape(BBox(minX: x0, minY: y0, maxX: x1, maxY: y0 + rng.unit() * 3))
            case 1:
                shape = .circle(lon: rng.unit() * 10, lat: 45 + rng.unit() * 10, radiusM: 1_000 + rng.unit() * 150_000)
            default:
                let cx = rng.unit() * 10, cy = 45 + rng.unit() * 10, r = 0.2 + rng.unit() * 2
                var ring: [(Double, Double)] = []
                for k in 0..<7 { let a = Double(k) / 7 * 2 * Double.pi; ring.append((cx + r * cos(a), cy + r * sin(a))) }
                ring.append(ring[0])
                shape = .polygons([Polygon(shell: Ring(points: ring), holes: [])])
            }
            let span: TrackStore.Span? = [nil, .points(1 + rng.int(3)), .duration(Millis(rng.int(3_000)))][q % 3 == 0 ? rng.int(3) : q % 3]
            var want: [Int32] = []
            for e in 0..<Int32(entities) {
                store.points(e, span: span, into: &pts)
                if !pts.isEmpty && TrackGeometry.meets(shape, pts) { want.append(e) }
            }
            let (hits, _) = PositionQuery(area: .track(shape, span), limit: 100_000).run(index, tracks: store, name: { String(format: "%05d", $0) }, accept: { _ in true })
            #expect(hits.map(\.entity) == want, "query \(q)")
            met += want.count
            compared += 1
        }
        #expect(compared == 120 && met > 200)
    }

    @Test func circlesAgreeWithDenseSampling() {
        var rng = Rng(s: 42)
        var decided = 0, met = 0
        for _ in 0..<400 {
            let cx = rng.unit() * 20 - 10, cy = rng.unit() * 120 - 60
            let r = 1_000 + rng.unit() * 200_000
            var pts: [Double] = []
            for _ in 0..<(1 + rng.int(4)) { pts += [cx + (rng.unit() - 0.5) * 8, cy + (rng.unit() - 0.5) * 6] }
            var best = Double.infinity
            let n = pts.count / 2
            if n == 1 { best = Haversine.distance(cx, cy, pts[0], pts[1]) }
            for i in 0..<max(0, n - 1) {
                for k in 0...2_000 {
                    let f = Double(k) / 2_000
                    let x = pts[2 * i] + (pts[2 * i + 2] - pts[2 * i]) * f, y = pts[2 * i + 1] + (pts[2 * i + 3] - pts[2 * i + 1]) * f
                    best = min(best, Haversine.distance(cx, cy, x, y))
                }
            }
            let got = TrackGeometry.meets(.circle(lon: cx, lat: cy, radiusM: r), pts)
            if best < r * 0.99 { #expect(got, "centre \(cx),\(cy) r \(r) track \(pts)"); decided += 1; met += 1 }
            else if best > r * 1.01 { #expect(!got, "centre \(cx),\(cy) r \(r) track \(pts)"); decided += 1 }
        }
        #expect(decided > 300 && met > 20 && decided - met > 20)
    }
}
