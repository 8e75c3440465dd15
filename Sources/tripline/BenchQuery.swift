import ArgumentParser
import Foundation
import TriplineCore

/// `tripline bench-query`: the position index and spatial queries at fleet scale, in process.
/// N entities (half spread over Europe, half over the world), then rounds of M moves (the
/// ingest the server applies between queries) and one query each: `nearby k=10` at a random
/// point, and `within` a 1,000-vertex star polygon over central Europe. Reports insert and
/// move cost, query latency percentiles, answers, and bytes per entity. `--export DIR` writes
/// the final positions, the polygon and the query points, with Tripline's answers, for
/// Benchmarks/peers/postgis_query.py to run the same queries in PostGIS.
struct BenchQuery: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-query",
        abstract: "Measure spatial queries over N latest positions while positions move (build with -c release).")
    @Option(help: "Entities.") var entities = 1_000_000
    @Option(help: "Queries of each kind.") var queries = 2000
    @Option(name: .customLong("moves-between"), help: "Positions moved between two queries.") var movesBetween = 200
    @Option(help: "Vertices of the within polygon.") var vertices = 1000
    @Option(help: "Mean radius of the within polygon in degrees of latitude (1.6 times that in longitude).") var radius = 2.6
    @Option(name: .customLong("cell-deg"), help: "Grid cell side in degrees.") var cellDeg = 0.1
    @Option(help: "Write positions.csv, polygon.geojson, queries.csv and answers.json here.") var export: String?
    @Option(help: "Random seed.") var seed: UInt64 = 1
    @Option(name: .customLong("track-points"), help: "Positions kept per entity for intersects (0: no tracks, no intersects query).") var trackPoints = 10

    func run() throws {
        var g = seed &* 0x9E37_79B9_7F4A_7C15 | 1
        func next() -> UInt64 {
            g ^= g << 13; g ^= g >> 7; g ^= g << 17
            return g
        }
        func uniform(_ a: Double, _ b: Double) -> Double { a + (b - a) * Double(next() >> 11) / Double(1 << 53) }
        func point(_ i: Int) -> (Double, Double) {
            i % 2 == 0 ? (uniform(-10, 40), uniform(35, 70)) : (uniform(-180, 180), uniform(-85, 85))
        }
        let names = (0..<entities).map { "e\($0)" }
        let rss0 = BenchIds.rssBytes()
        let index = PositionIndex(cellDeg: cellDeg)
        var t: Millis = 1_772_409_600_000
        var s = DispatchTime.now().uptimeNanoseconds
        for i in 0..<entities {
            let (x, y) = point(i)
            index.track(entity: Int32(i), lon: x, lat: y, time: t)
        }
        let insertNs = Double(DispatchTime.now().uptimeNanoseconds - s) / Double(entities)
        let rss1 = BenchIds.rssBytes()
        // Tracks, timed apart: every entity with `trackPoints` positions along a short walk
        // from its latest (the oldest first), so that `intersects` reads full tracks.
        let tracks = trackPoints > 0 ? TrackStore(capacity: trackPoints) : nil
        var trackNs: UInt64 = 0, trackAdds = 0, trackMoveNs: UInt64 = 0, trackMoveAdds = 0
        if let tracks {
            s = DispatchTime.now().uptimeNanoseconds
            for i in 0..<entities {
                var x = index.lon[i], y = index.lat[i]
                for k in 0..<trackPoints {
                    tracks.add(entity: Int32(i), lon: x, lat: y, time: t - Millis(trackPoints - k) * 1000)
                    x = min(180, max(-180, x + uniform(-0.01, 0.01))); y = min(85, max(-85, y + uniform(-0.01, 0.01)))
                }
            }
            trackNs += DispatchTime.now().uptimeNanoseconds - s
            trackAdds += entities * trackPoints
        }
        // A star polygon with `vertices` corners over central Europe.
        var ring: [(Double, Double)] = []
        for k in 0..<vertices {
            let a = 2 * Double.pi * Double(k) / Double(vertices)
            let r = radius * uniform(0.85, 1.15)
            ring.append((((15 + r * cos(a) * 1.6) * 1e6).rounded() / 1e6, ((52 + r * sin(a)) * 1e6).rounded() / 1e6))
        }
        ring.append(ring[0])
        let polygon = Polygon(shell: Ring(points: ring), holes: [])
        if let why = PolygonValidation.validate([polygon]) { throw ValidationError("the generated polygon is invalid: \(why)") }
        var moveNs: UInt64 = 0, moves = 0
        var nearNs: [UInt64] = [], withinNs: [UInt64] = [], crossNs: [UInt64] = []
        var withinCounts: [Int] = [], crossCounts: [Int] = []
        var queryPoints: [(Double, Double)] = []
        var nearAnswers: [[String]] = []
        for q in 0..<queries {
            t += 1000
            s = DispatchTime.now().uptimeNanoseconds
            for _ in 0..<movesBetween {
                let e = Int(next() % UInt64(entities))
                let x0 = index.lon[e], y0 = index.lat[e]
                // A short hop (a vehicle reporting), kept in range.
                let x = min(180, max(-180, x0 + uniform(-0.01, 0.01))), y = min(85, max(-85, y0 + uniform(-0.01, 0.01)))
                index.track(entity: Int32(e), lon: x, lat: y, time: t)
                if let tracks {
                    let s2 = DispatchTime.now().uptimeNanoseconds
                    tracks.add(entity: Int32(e), lon: x, lat: y, time: t)
                    trackMoveNs += DispatchTime.now().uptimeNanoseconds - s2
                    trackMoveAdds += 1
                }
            }
            moveNs += DispatchTime.now().uptimeNanoseconds - s
            moves += movesBetween
            let (x, y) = point(q)
            s = DispatchTime.now().uptimeNanoseconds
            let (hits, _) = PositionQuery(area: .nearby(lon: x, lat: y, k: 10, radiusM: nil), limit: 10).run(index, name: { names[Int($0)] }, accept: { _ in true })
            nearNs.append(DispatchTime.now().uptimeNanoseconds - s)
            queryPoints.append((x, y))
            nearAnswers.append(hits.map(\.id))
            s = DispatchTime.now().uptimeNanoseconds
            let (inside, _) = PositionQuery(area: .shape(.polygons([polygon])), limit: 10_000_000).run(index, name: { names[Int($0)] }, accept: { _ in true })
            withinNs.append(DispatchTime.now().uptimeNanoseconds - s)
            withinCounts.append(inside.count)
            if let tracks, q % 4 == 0 {
                // Tracks meeting a 1-degree box at a random point of Europe (one round in four).
                let (bx, by) = (uniform(-10, 39), uniform(35, 69))
                let box = PositionQuery.boxShape(BBox(minX: bx, minY: by, maxX: bx + 1, maxY: by + 1))
                s = DispatchTime.now().uptimeNanoseconds
                let (met, _) = PositionQuery(area: .track(box, nil), limit: 10_000_000).run(index, tracks: tracks, name: { names[Int($0)] }, accept: { _ in true })
                crossNs.append(DispatchTime.now().uptimeNanoseconds - s)
                crossCounts.append(met.count)
            }
        }
        func pct(_ v: [UInt64], _ p: Double) -> Double {
            let sorted = v.sorted()
            return Double(sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))]) / 1000
        }
        let withinMean = Double(withinCounts.reduce(0, +)) / Double(withinCounts.count)
        print("entities \(entities), cell \(cellDeg) deg, \(index.count) with a position")
        print(String(format: "insert: %.0f ns/entity; move: %.0f ns/move (%d moves, %d between queries)", insertNs, Double(moveNs - trackMoveNs) / Double(max(1, moves)), moves, movesBetween))
        print(String(format: "index: %.1f bytes/entity (structures), RSS +%.1f bytes/entity (with %d-byte test names)", Double(index.bytes) / Double(entities),
                     Double(rss1 - rss0) / Double(entities), 0))
        print(String(format: "nearby k=10 (%d queries): p50 %.1f us, p99 %.1f us, max %.1f us", queries, pct(nearNs, 0.5), pct(nearNs, 0.99), pct(nearNs, 1.0)))
        print(String(format: "within %d-vertex polygon, %.0f entities inside on average (%d queries): p50 %.1f us, p99 %.1f us, max %.1f us",
                     vertices, withinMean, queries, pct(withinNs, 0.5), pct(withinNs, 0.99), pct(withinNs, 1.0)))
        if tracks != nil {
            print(String(format: "tracks: %d positions per entity, %.0f ns/position filling them, %.0f ns/position moving (random entities), %.1f bytes/entity", trackPoints,
                         Double(trackNs) / Double(max(1, trackAdds)), Double(trackMoveNs) / Double(max(1, trackMoveAdds)), Double(tracks!.bytes) / Double(entities)))
            print(String(format: "intersects a 1-degree box, %.0f tracks meeting it on average (%d queries): p50 %.1f us, p99 %.1f us, max %.1f us",
                         Double(crossCounts.reduce(0, +)) / Double(max(1, crossCounts.count)), crossNs.count, pct(crossNs, 0.5), pct(crossNs, 0.99), pct(crossNs, 1.0)))
        }
        if let export {
            try FileManager.default.createDirectory(atPath: export, withIntermediateDirectories: true)
            var csv = "id,lon,lat\n"
            csv.reserveCapacity(entities * 32)
            for i in 0..<entities { csv += "\(names[i]),\(index.lon[i]),\(index.lat[i])\n" }
            try csv.write(toFile: export + "/positions.csv", atomically: true, encoding: .utf8)
            let coords = ring.map { "[\($0.0),\($0.1)]" }.joined(separator: ",")
            try "{\"type\":\"Polygon\",\"coordinates\":[[\(coords)]]}\n".write(toFile: export + "/polygon.geojson", atomically: true, encoding: .utf8)
            // Answers on the final positions (the moves above changed them after earlier queries).
            var qcsv = "lon,lat\n"
            var answers: [String] = []
            for (x, y) in queryPoints.prefix(500) {
                qcsv += "\(x),\(y)\n"
                let (hits, _) = PositionQuery(area: .nearby(lon: x, lat: y, k: 10, radiusM: nil), limit: 10).run(index, name: { names[Int($0)] }, accept: { _ in true })
                answers.append("[" + hits.map { "[\"\($0.id)\",\($0.distance!)]" }.joined(separator: ",") + "]")
            }
            try qcsv.write(toFile: export + "/queries.csv", atomically: true, encoding: .utf8)
            let (inside, _) = PositionQuery(area: .shape(.polygons([polygon])), limit: 10_000_000).run(index, name: { names[Int($0)] }, accept: { _ in true })
            try ("{\"nearby\":[" + answers.joined(separator: ",") + "],\"within\":" + String(inside.count) + "}\n").write(toFile: export + "/answers.json", atomically: true, encoding: .utf8)
            print("exported to \(export)")
        }
    }
}
