import Foundation
import Testing
import TriplineTesting
@testable import TriplineCore

/// The position index and its queries against a brute-force scan of the same positions:
/// nearest k, radius, box (across the antimeridian too), polygon and circle shapes, filters,
/// and paging by cursor, after random moves, stale updates and removals.
@Suite struct PositionIndexTests {
    /// A random world: clusters (a city's worth in a few cells), points near the poles and
    /// the antimeridian, exact duplicates, points on cell edges.
    static func world(_ rng: inout SplitMix64, entities n: Int, cellDeg: Double) -> (PositionIndex, [String], [(Double, Double)?]) {
        let index = PositionIndex(cellDeg: cellDeg)
        var names: [String] = []
        var pos: [(Double, Double)?] = Array(repeating: nil, count: n)
        var time: [Millis] = Array(repeating: .min, count: n)
        for i in 0..<n { names.append("e\(String(rng.next() % 100_000, radix: 36))-\(i)") }
        func point(_ rng: inout SplitMix64) -> (Double, Double) {
            switch rng.next() % 6 {
            case 0: return (Double.random(in: -180...180, using: &rng), Double.random(in: -90...90, using: &rng))
            case 1: return (Double.random(in: 4.8...5.0, using: &rng), Double.random(in: 52.3...52.4, using: &rng))
            case 2: return (Double.random(in: 179.5...180, using: &rng) * (rng.next() % 2 == 0 ? 1 : -1), Double.random(in: -10...10, using: &rng))
            case 3: return (Double.random(in: -180...180, using: &rng), Double.random(in: 88...90, using: &rng) * (rng.next() % 2 == 0 ? 1 : -1))
            case 4:
                // On cell edges (near the city when cells are small).
                let cols = UInt64(360 / cellDeg), rows = UInt64(180 / cellDeg)
                let c = cols > 1000 ? UInt64((4.8 + 180) / cellDeg) + rng.next() % 40 : rng.next() % (cols + 1)
                let r = rows > 1000 ? UInt64((52.3 + 90) / cellDeg) + rng.next() % 20 : rng.next() % (rows + 1)
                return (min(180, Double(c) * cellDeg - 180), min(90, Double(r) * cellDeg - 90))
            default: return (4.9, 52.35)
            }
        }
        for _ in 0..<(n * 3) {
            let e = Int(rng.next() % UInt64(n))
            if rng.next() % 20 == 0 {
                index.remove(entity: Int32(e))
                pos[e] = nil
                time[e] = .min
                continue
            }
            let p = point(&rng)
            // Sometimes an older fix, which must change nothing.
            let t: Millis = time[e] == .min ? 1000 : (rng.next() % 5 == 0 ? time[e] - 1 : time[e] + Millis(rng.next() % 1000))
            index.track(entity: Int32(e), lon: p.0, lat: p.1, time: t)
            if t >= time[e] { pos[e] = p; time[e] = t }
        }
        return (index, names, pos)
    }

    static func bruteNearby(_ pos: [(Double, Double)?], _ names: [String], x: Double, y: Double, accept: (Int) -> Bool) -> [(String, Double)] {
        var all: [(String, Double)] = []
        for (i, p) in pos.enumerated() {
            guard let p, accept(i) else { continue }
            all.append((names[i], Haversine.distance(x, y, p.0, p.1)))
        }
        return all.sorted { $0.1 != $1.1 ? $0.1 < $1.1 : $0.0.utf8.lexicographicallyPrecedes($1.0.utf8) }
    }

    /// Every page of a query, concatenated.
    static func allPages(_ q: PositionQuery, _ index: PositionIndex, _ names: [String], accept: (Int32) -> Bool) -> (hits: [PositionQuery.Hit], pages: Int) {
        var q = q
        var out: [PositionQuery.Hit] = []
        var pages = 0
        while true {
            let (hits, next) = q.run(index, name: { names[Int($0)] }, accept: accept)
            out += hits
            pages += 1
            guard let next else { return (out, pages) }
            // Through its text form, as a client sends it back.
            let nearby: Bool
            if case .nearby = q.area { nearby = true } else { nearby = false }
            q.after = PositionQuery.Cursor.parse(next.text, nearby: nearby)
            #expect(q.after == next)
            if pages > 10_000 { Issue.record("paging does not end"); return (out, pages) }
        }
    }

    @Test(arguments: [1, 2, 3, 4] as [UInt64])
    func nearestAndRadiusAgreeWithAScan(seed: UInt64) {
        var rng = SplitMix64(seed: seed)
        let cell = [0.01, 0.05, 1.0, 7.5][Int(seed % 4)]
        let (index, names, pos) = Self.world(&rng, entities: 1500, cellDeg: cell)
        // Both ways of reading a box: the tile walk and the scan of non-empty cells.
        index.forcedWalk = [false, nil, true, true][Int(seed % 4)]
        #expect(index.count == pos.compactMap { $0 }.count)
        for q in 0..<60 {
            let x = q % 3 == 0 ? Double.random(in: 4.8...5.0, using: &rng) : Double.random(in: -180...180, using: &rng)
            let y = q % 3 == 0 ? Double.random(in: 52.3...52.4, using: &rng) : Double.random(in: -90...90, using: &rng)
            let mod = 1 + Int(rng.next() % 4)
            let accept: (Int) -> Bool = { $0 % mod == 0 }
            let want = Self.bruteNearby(pos, names, x: x, y: y, accept: accept)
            let k = [1, 10, 57, 5000][Int(rng.next() % 4)]
            // Pages of one only for small k (each page searches again).
            let limit = k > 100 ? [100, 10_000][Int(rng.next() % 2)] : [1, 7, 100, 10_000][Int(rng.next() % 4)]
            let (got, _) = Self.allPages(PositionQuery(area: .nearby(lon: x, lat: y, k: k, radiusM: nil), limit: limit), index, names, accept: { accept(Int($0)) })
            let expect = Array(want.prefix(k))
            #expect(got.map(\.id) == expect.map(\.0), "k=\(k) limit=\(limit) at \(x),\(y)")
            #expect(got.map { $0.distance! } == expect.map(\.1))
            // Counting answers what paging answers, without the pages.
            #expect(PositionQuery(area: .nearby(lon: x, lat: y, k: k, radiusM: nil), limit: 1).count(index, accept: { accept(Int($0)) }) == expect.count)
            // Radius alone, and radius with k.
            let r = [10.0, 2_500, 300_000, 5_000_000][Int(rng.next() % 4)]
            let inR = want.filter { $0.1 <= r }
            let (gotR, _) = Self.allPages(PositionQuery(area: .nearby(lon: x, lat: y, k: nil, radiusM: r), limit: max(limit, 50)), index, names, accept: { accept(Int($0)) })
            #expect(gotR.map(\.id) == inR.map(\.0), "radius \(r) at \(x),\(y)")
            let (gotRK, _) = Self.allPages(PositionQuery(area: .nearby(lon: x, lat: y, k: 5, radiusM: r), limit: 2), index, names, accept: { accept(Int($0)) })
            #expect(gotRK.map(\.id) == inR.prefix(5).map(\.0))
            #expect(PositionQuery(area: .nearby(lon: x, lat: y, k: nil, radiusM: r), limit: 1).count(index, accept: { accept(Int($0)) }) == inR.count)
            #expect(PositionQuery(area: .nearby(lon: x, lat: y, k: 5, radiusM: r), limit: 1).count(index, accept: { accept(Int($0)) }) == min(5, inR.count))
        }
    }

    @Test(arguments: [5, 6, 7] as [UInt64])
    func boxesAndShapesAgreeWithAScan(seed: UInt64) {
        var rng = SplitMix64(seed: seed)
        let (index, names, pos) = Self.world(&rng, entities: 1500, cellDeg: [0.01, 0.3, 2.0][Int(seed % 3)])
        index.forcedWalk = [false, nil, true][Int(seed % 3)]
        func sortedIds(_ f: (Double, Double) -> Bool, _ accept: (Int) -> Bool) -> [String] {
            pos.indices.filter { i in pos[i].map { f($0.0, $0.1) } ?? false && accept(i) }.map { names[$0] }.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        }
        for q in 0..<50 {
            let mod = 1 + Int(rng.next() % 3)
            let accept: (Int) -> Bool = { $0 % mod == 0 }
            let limit = [3, 50, 10_000][Int(rng.next() % 3)]
            // A box; every fourth crosses the antimeridian (minX > maxX).
            var x0 = Double.random(in: -180...180, using: &rng), x1 = Double.random(in: -180...180, using: &rng)
            if (x0 > x1) != (q % 4 == 0) { swap(&x0, &x1) }
            let y0 = Double.random(in: -90...60, using: &rng), y1 = y0 + Double.random(in: 0...30, using: &rng)
            let box = BBox(minX: x0, minY: y0, maxX: x1, maxY: y1)
            let inBox: (Double, Double) -> Bool = { x, y in
                y >= y0 && y <= y1 && (x0 <= x1 ? (x >= x0 && x <= x1) : (x >= x0 || x <= x1))
            }
            let (got, _) = Self.allPages(PositionQuery(area: .box(box), limit: limit), index, names, accept: { accept(Int($0)) })
            #expect(got.map(\.id) == sortedIds(inBox, accept), "box \(box)")
            #expect(PositionQuery(area: .box(box), limit: 1).count(index, accept: { accept(Int($0)) }) == sortedIds(inBox, accept).count)
            // A star polygon with a hole around the clustered city, or a circle.
            let shape: ZoneShape
            if q % 3 == 0 {
                shape = .circle(lon: Double.random(in: 4.8...5.0, using: &rng), lat: Double.random(in: 52.3...52.4, using: &rng), radiusM: Double.random(in: 100...20_000, using: &rng))
            } else {
                func star(_ r0: Double, _ n: Int, cw: Bool) -> Ring {
                    var pts: [(Double, Double)] = []
                    for k in 0..<n {
                        let a = 2 * Double.pi * Double(k) / Double(n) * (cw ? -1 : 1)
                        let r = r0 * (0.6 + 0.4 * Double(rng.next() % 1000) / 1000)
                        pts.append((4.9 + r * cos(a), 52.35 + r * sin(a) * 0.6))
                    }
                    pts.append(pts[0])
                    return Ring(points: pts)
                }
                let poly = Polygon(shell: star(0.12, 20 + Int(rng.next() % 2000), cw: false), holes: q % 2 == 0 ? [star(0.02, 12, cw: true)] : [])
                shape = .polygons([poly])
            }
            let (gotS, _) = Self.allPages(PositionQuery(area: .shape(shape), limit: limit), index, names, accept: { accept(Int($0)) })
            #expect(gotS.map(\.id) == sortedIds({ shape.covers($0, $1) }, accept))
            #expect(PositionQuery(area: .shape(shape), limit: 1).count(index, accept: { accept(Int($0)) }) == sortedIds({ shape.covers($0, $1) }, accept).count)
        }
    }

    /// Ordering by the 8-byte prefix first, then by the whole id, is code point order: ids that
    /// share prefixes, are prefixes of each other, or hold multi-byte characters.
    @Test func idPrefixesOrderAsTheWholeIds() {
        var rng = SplitMix64(seed: 9)
        let alphabet = ["a", "b", "A", "0", "-", "é", "ß", "日", "😀", "\u{7F}"]
        var ids: [String] = []
        for _ in 0..<3_000 {
            var s = ["", "truck-", "truck-0", "vessel"][Int(rng.next() % 4)]
            for _ in 0..<Int(rng.next() % 12) { s += alphabet[Int(rng.next() % UInt64(alphabet.count))] }
            ids.append(s)
        }
        let want = ids.sorted { Array($0.unicodeScalars.map(\.value)).lexicographicallyPrecedes(Array($1.unicodeScalars.map(\.value))) }
        let got = ids.map { (PositionQuery.idPrefix($0), $0) }
            .sorted { $0.0 != $1.0 ? $0.0 < $1.0 : PositionQuery.idLess($0.1, $1.1) }.map(\.1)
        #expect(got == want)
        for (a, b) in zip(ids, ids.dropFirst()) where PositionQuery.idPrefix(a) < PositionQuery.idPrefix(b) {
            #expect(PositionQuery.idLess(a, b), "\(a) \(b)")
        }
    }

    @Test func aCursorResumesAfterTheLastAnswerAndRefusesForeignText() {
        let index = PositionIndex()
        let names = ["b", "a", "c", "d"]
        for (i, p) in [(5.0, 52.0), (5.001, 52.0), (5.001, 52.0), (5.002, 52.0)].enumerated() {
            index.track(entity: Int32(i), lon: p.0, lat: p.1, time: 1)
        }
        let q = PositionQuery(area: .nearby(lon: 5.0, lat: 52.0, k: 3, radiusM: nil), limit: 2)
        let (first, next) = q.run(index, name: { names[Int($0)] }, accept: { _ in true })
        // a and c are at the same distance: by id.
        #expect(first.map(\.id) == ["b", "a"])
        let c = try! #require(next)
        #expect(c.returned == 2)
        var q2 = q
        q2.after = c
        let (second, last) = q2.run(index, name: { names[Int($0)] }, accept: { _ in true })
        #expect(second.map(\.id) == ["c"])
        #expect(last == nil)
        #expect(PositionQuery.Cursor.parse(c.text, nearby: false) == nil)
        #expect(PositionQuery.Cursor.parse("not a cursor", nearby: true) == nil)
        #expect(PositionQuery.Cursor.parse("", nearby: true) == nil)
    }

    @Test func removedAndMovedEntitiesLeaveTheirOldCells() {
        let index = PositionIndex(cellDeg: 1)
        index.track(entity: 3, lon: 10.5, lat: 10.5, time: 5)
        index.track(entity: 4, lon: 10.6, lat: 10.6, time: 5)
        index.track(entity: 3, lon: 20.5, lat: 20.5, time: 4) // older: ignored
        #expect(index.within(box: BBox(minX: 10, minY: 10, maxX: 11, maxY: 11), accept: { _ in true }).sorted() == [3, 4])
        index.track(entity: 3, lon: 20.5, lat: 20.5, time: 6)
        #expect(index.within(box: BBox(minX: 10, minY: 10, maxX: 11, maxY: 11), accept: { _ in true }) == [4])
        index.remove(entity: 4)
        #expect(index.within(box: BBox(minX: -180, minY: -90, maxX: 180, maxY: 90), accept: { _ in true }) == [3])
        #expect(index.count == 1 && !index.has(4) && index.has(3))
    }
}
