import Foundation
import Hummingbird
import NIOCore
import TriplineCore
import TriplineStore

/// Spatial queries over the latest positions (docs/queries.md): the nearest entities to a
/// point, those within a radius, a zone, a box or a GeoJSON shape, filtered by kind, tags,
/// ids and numeric conditions on the latest reading of a metric or an attribute of the
/// latest position, paged by cursor. Each page is a look at the data and lands in the audit
/// log.
struct QueryController: Controller {
    let http: TriplineHTTP

    static var table: [(RouteSpec, KeyPath<Self, Handler>)] { [
        (RouteSpec(method: "GET", path: "/v1/query/nearby", roles: read), \.nearby),
        (RouteSpec(method: "GET", path: "/v1/query/within", roles: read), \.withinGet),
        (RouteSpec(method: "POST", path: "/v1/query/within", roles: read), \.withinPost),
        (RouteSpec(method: "GET", path: "/v1/query/intersects", roles: read), \.intersectsGet),
        (RouteSpec(method: "POST", path: "/v1/query/intersects", roles: read), \.intersectsPost),
        (RouteSpec(method: "GET", path: "/v1/query/stream", roles: read), \.stream),
        (RouteSpec(method: "POST", path: "/v1/query/stream", roles: read), \.streamPost),
        (RouteSpec(method: "GET", path: "/v1/map/stream", roles: read), \.mapStream),
    ] }
}

/// The filters every query takes, parsed from its query parameters.
struct QueryFilters: Sendable {
    var kinds: Set<String>?
    var ids: Set<String>?
    /// key, and the value it must have (nil: the tag is present).
    var tags: [(String, String?)] = []
    var conditions: [Condition] = []
    var limit = 100
    var cursor: String?
    /// What a page holds: the entities as objects, their ids only, or only how many answer.
    var output = Output.objects

    enum Output: String, Sendable, CaseIterable { case objects, ids, count }

    struct Condition: Sendable {
        enum Source: String, Sendable { case metric, attr }
        enum Op: String, Sendable, CaseIterable { case ge = ">=", le = "<=", ne = "!=", gt = ">", lt = "<", eq = "=" }
        var source: Source
        var name: String
        var op: Op
        var value: Double
        var text: String

        func holds(_ v: Double) -> Bool {
            switch op {
            case .ge: return v >= value
            case .le: return v <= value
            case .ne: return v != value
            case .gt: return v > value
            case .lt: return v < value
            case .eq: return v == value
            }
        }

        /// `metric:temp_c>8`, `attr:speed<=30`.
        static func parse(_ s: String) throws -> Condition {
            let usage = "write where=metric:<name><op><number> or where=attr:<name><op><number>, with <op> one of >=, <=, !=, >, <, = (e.g. where=metric:temp_c>8)"
            let source: Source
            let rest: Substring
            if s.hasPrefix("metric:") { source = .metric; rest = s.dropFirst(7) }
            else if s.hasPrefix("attr:") { source = .attr; rest = s.dropFirst(5) }
            else { throw APIError.badRequest("query parameter 'where=\(s)' must start with metric: or attr:; \(usage)") }
            guard let opStart = rest.firstIndex(where: { "<>=!".contains($0) }) else {
                throw APIError.badRequest("query parameter 'where=\(s)' has no comparison; \(usage)")
            }
            let name = String(rest[..<opStart])
            guard !name.isEmpty else { throw APIError.badRequest("query parameter 'where=\(s)' names no \(source.rawValue); \(usage)") }
            let tail = rest[opStart...]
            guard let op = Op.allCases.first(where: { tail.hasPrefix($0.rawValue) }) else {
                throw APIError.badRequest("query parameter 'where=\(s)' has an unknown comparison; \(usage)")
            }
            let num = tail.dropFirst(op.rawValue.count)
            guard let v = Double(num), v.isFinite else {
                throw APIError.badRequest("query parameter 'where=\(s)': '\(num)' is not a finite number; \(usage)")
            }
            return Condition(source: source, name: name, op: op, value: v, text: s)
        }
    }

    static func parse(_ req: Request) throws -> QueryFilters {
        var f = QueryFilters()
        let q = req.uri.queryParameters
        func list(_ name: String) -> [String]? {
            let all = q.getAll(name)
            if all.isEmpty { return nil }
            return all.flatMap { $0.split(separator: ",").map(String.init) }.filter { !$0.isEmpty }
        }
        if let k = list("kind") { f.kinds = Set(k) }
        if let i = list("id") { f.ids = Set(i) }
        for t in q.getAll("tag") {
            if let c = t.firstIndex(of: ":") {
                let key = String(t[..<c])
                guard !key.isEmpty else { throw APIError.badRequest("query parameter 'tag=\(t)' names no tag; write tag=<key>:<value> or tag=<key>") }
                f.tags.append((key, String(t[t.index(after: c)...])))
            } else {
                guard !t.isEmpty else { throw APIError.badRequest("query parameter 'tag' is empty; write tag=<key>:<value> or tag=<key>") }
                f.tags.append((t, nil))
            }
        }
        f.conditions = try q.getAll("where").map(Condition.parse)
        if let l = q.get("limit") {
            guard let v = Int(l), v >= 1, v <= 10_000 else { throw APIError.badRequest("query parameter 'limit' must be a whole number from 1 to 10000, got '\(l)'") }
            f.limit = v
        }
        f.cursor = q.get("cursor")
        if let o = q.get("output") {
            guard let v = Output(rawValue: o) else {
                throw APIError.badRequest("query parameter 'output' must be one of objects, ids, count, got '\(o)'")
            }
            f.output = v
            if v == .count && (q.get("limit") != nil || f.cursor != nil) {
                throw APIError.badRequest("output=count answers how many entities match over all pages at once; leave out 'limit' and 'cursor'")
            }
        }
        return f
    }

    var json: J {
        .obj([
            ("kind", kinds.map { .arr($0.sorted().map { .str($0) }) } ?? .null),
            ("id", .int(ids?.count ?? 0)),
            ("tag", .arr(tags.map { t -> J in .str(t.1.map { v in t.0 + ":" + v } ?? t.0) })),
            ("where", .arr(conditions.map { .str($0.text) })),
            ("limit", .int(limit)),
            ("cursor", .bool(cursor != nil)),
        ])
    }
}

extension QueryController {
    var nearby: Handler {
        { [self] req, _, tok in
            let q = req.uri.queryParameters
            func number(_ name: String, _ range: ClosedRange<Double>) throws -> Double? {
                guard let s = q.get(name) else { return nil }
                guard let v = Double(s), v.isFinite, range.contains(v) else {
                    throw APIError.badRequest("query parameter '\(name)' must be a number from \(range.lowerBound) to \(range.upperBound), got '\(s)'")
                }
                return v
            }
            guard let lon = try number("lon", -180...180), let lat = try number("lat", -90...90) else {
                throw APIError.badRequest("give the point as query parameters lon and lat (degrees), e.g. /v1/query/nearby?lon=4.9&lat=52.37&k=10")
            }
            var k: Int?
            if let s = q.get("k") {
                guard let v = Int(s), v >= 1, v <= 100_000 else { throw APIError.badRequest("query parameter 'k' must be a whole number from 1 to 100000, got '\(s)'") }
                k = v
            }
            let radius = try number("radius_m", 0...(Haversine.earthRadiusM * Double.pi))
            guard k != nil || radius != nil else {
                throw APIError.badRequest("give k (the k nearest), radius_m (all within that many metres), or both")
            }
            let filters = try QueryFilters.parse(req)
            let detail: [(String, J)] = [("lon", .num(lon)), ("lat", .num(lat)), ("k", k.map { .int($0) } ?? .null), ("radius_m", radius.map { .num($0) } ?? .null)]
            return try await run(.nearby(lon: lon, lat: lat, k: k, radiusM: radius), name: "nearby", detail: detail, filters, tok)
        }
    }

    var withinGet: Handler {
        { [self] req, _, tok in
            let q = req.uri.queryParameters
            let zone = q.get("zone"), bbox = q.get("bbox")
            guard (zone == nil) != (bbox == nil) else {
                throw APIError.badRequest("give exactly one of zone=<zone id> or bbox=<min lon>,<min lat>,<max lon>,<max lat>; for a GeoJSON shape, POST it to /v1/query/within")
            }
            let filters = try QueryFilters.parse(req)
            if let zone {
                let shape = try await zoneShape(zone)
                return try await run(.shape(shape), name: "within", detail: [("zone", .str(zone))], filters, tok)
            }
            let box = try Self.bbox(bbox!)
            return try await run(.box(box), name: "within", detail: [("bbox", .arr([.num(box.minX), .num(box.minY), .num(box.maxX), .num(box.maxY)]))], filters, tok)
        }
    }

    var withinPost: Handler {
        { [self] req, _, tok in
            let filters = try QueryFilters.parse(req)
            let shape = try await postedShape(req)
            return try await run(.shape(shape), name: "within", detail: [("geometry_vertices", .int(Self.vertexCount(shape)))], filters, tok)
        }
    }

    /// `track=<n>` (the last n positions) or `track=<duration>` (positions at most that much
    /// older than the newest); absent: every position the server keeps.
    static func trackSpan(_ req: Request) throws -> (TrackStore.Span?, J) {
        guard let t = req.uri.queryParameters.get("track") else { return (nil, .null) }
        if let n = Int(t) {
            guard n >= 1 else { throw APIError.badRequest("query parameter 'track=\(t)' must be at least 1 position, or a duration such as 30m") }
            return (.points(n), .int(n))
        }
        switch DurationText.parse(t) {
        case .success(let d): return (.duration(d), .str(t))
        case .failure:
            throw APIError.badRequest("query parameter 'track=\(t)' must be a whole number of positions (track=10) or a duration (track=30m, 2h, 1d)")
        }
    }

    /// The server keeps tracks (not `serve --track-points 0`).
    func requireTracks() async throws {
        let kept = try await host.read { s in s.latest.tracks?.capacity ?? 0 }
        guard kept > 0 else {
            throw APIError(status: .conflict, code: "no_tracks",
                           message: "this server keeps no tracks (started with --track-points 0); start it with --track-points N to answer intersects queries")
        }
    }

    var intersectsGet: Handler {
        { [self] req, _, tok in
            let q = req.uri.queryParameters
            let zone = q.get("zone"), bbox = q.get("bbox")
            guard (zone == nil) != (bbox == nil) else {
                throw APIError.badRequest("give exactly one of zone=<zone id> or bbox=<min lon>,<min lat>,<max lon>,<max lat>; for a GeoJSON shape, POST it to /v1/query/intersects")
            }
            let (span, spanJ) = try Self.trackSpan(req)
            let filters = try QueryFilters.parse(req)
            try await requireTracks()
            if let zone {
                let shape = try await zoneShape(zone)
                return try await run(.track(shape, span), name: "intersects", detail: [("zone", .str(zone)), ("track", spanJ)], filters, tok)
            }
            let box = try Self.bbox(bbox!)
            return try await run(.track(PositionQuery.boxShape(box), span), name: "intersects",
                                 detail: [("bbox", .arr([.num(box.minX), .num(box.minY), .num(box.maxX), .num(box.maxY)])), ("track", spanJ)], filters, tok)
        }
    }

    var intersectsPost: Handler {
        { [self] req, _, tok in
            let (span, spanJ) = try Self.trackSpan(req)
            let filters = try QueryFilters.parse(req)
            let shape = try await postedShape(req)
            try await requireTracks()
            return try await run(.track(shape, span), name: "intersects", detail: [("geometry_vertices", .int(Self.vertexCount(shape))), ("track", spanJ)], filters, tok)
        }
    }

    /// The request's GeoJSON body as a shape (a Polygon, a MultiPolygon, or a Feature of one or
    /// of a circle), validated as a zone is; 422 naming the bad coordinate otherwise.
    func postedShape(_ req: Request) async throws -> ZoneShape {
        let doc = try await jsonBody(req)
        switch ZoneCodec.queryShape(doc, file: "request") {
        case .success(let s): return s
        case .failure(let e):
            throw APIError(status: .unprocessableContent, code: "invalid_geometry",
                           message: "the body is not a usable GeoJSON Polygon, MultiPolygon or Feature: \(e.errors.first.map(\.description) ?? "")",
                           errors: e.errors.map { J.error($0) })
        }
    }

    /// The shape of zone `id`; 404 naming it when there is none.
    func zoneShape(_ id: String) async throws -> ZoneShape {
        guard let shape = try await host.read({ s in s.catalog.zones.first(where: { $0.id == id })?.shape }) else {
            throw APIError.notFound("no zone \"\(id)\"")
        }
        return shape
    }

    /// Vertices of a shape, for the audit record (a circle counts one).
    static func vertexCount(_ shape: ZoneShape) -> Int {
        switch shape {
        case .polygons(let ps): return ps.reduce(0) { $0 + $1.shell.pointCount + $1.holes.reduce(0) { $0 + $1.pointCount } }
        case .circle: return 1
        }
    }

    /// `bbox=<min lon>,<min lat>,<max lon>,<max lat>`.
    static func bbox(_ text: String) throws -> BBox {
        let parts = text.split(separator: ",", omittingEmptySubsequences: false).map { Double($0.trimmingCharacters(in: .whitespaces)) }
        guard parts.count == 4, let x0 = parts[0], let y0 = parts[1], let x1 = parts[2], let y1 = parts[3],
              (-180...180).contains(x0), (-180...180).contains(x1), (-90...90).contains(y0), (-90...90).contains(y1), y0 <= y1 else {
            throw APIError.badRequest("query parameter 'bbox=\(text)' must be <min lon>,<min lat>,<max lon>,<max lat> in degrees with min lat <= max lat (min lon > max lon crosses the antimeridian)")
        }
        return BBox(minX: x0, minY: y0, maxX: x1, maxY: y1)
    }

    /// Runs the query on the engine thread and answers one page; audits it.
    func run(_ area: PositionQuery.Area, name: String, detail: [(String, J)], _ f: QueryFilters, _ tok: TokenRecord?) async throws -> Response {
        var nearby = false
        if case .nearby = area { nearby = true }
        var after: PositionQuery.Cursor?
        if let c = f.cursor {
            guard let parsed = PositionQuery.Cursor.parse(c, nearby: nearby) else {
                throw APIError.badRequest("query parameter 'cursor' is not a cursor this query gave; send the 'cursor' of the previous page unchanged, with the same parameters")
            }
            after = parsed
        }
        let query = PositionQuery(area: area, limit: f.limit, after: after)
        let detail = detail + [("filters", f.json), ("output", .str(f.output.rawValue))]
        if f.output == .count {
            let (n, watermark): (Int, Millis?) = try await host.read { s in
                (query.count(s.latest.index, tracks: s.latest.tracks, accept: s.queryAccept(f)), s.pipeline.watermark)
            }
            try audit.record(actor: who(tok), action: "positions.query", target: name, detail: .obj(detail + [("answers", .int(n))]))
            var out = Self.pageHead(name, watermark)
            out += Array("\(n)}\n".utf8)
            return Response(status: .ok, headers: [.contentType: "application/json"], body: ResponseBody(byteBuffer: ByteBuffer(bytes: out)))
        }
        let idsOnly = f.output == .ids
        struct Row: Sendable { var id: String; var kind: String; var lon: Double; var lat: Double; var time: Millis; var distance: Double? }
        let (rows, next, watermark): ([Row], PositionQuery.Cursor?, Millis?) = try await host.read { s in
            let index = s.latest.index
            let p = s.pipeline
            let (hits, next) = query.run(index, tracks: s.latest.tracks, name: { p.entityName($0) }, accept: s.queryAccept(f))
            let rows = hits.map { h in
                let i = Int(h.entity)
                return Row(id: h.id, kind: idsOnly ? "" : s.entityInfo(h.id)?.kind ?? "unknown", lon: index.lon[i], lat: index.lat[i], time: index.time[i], distance: h.distance)
            }
            return (rows, next, p.watermark)
        }
        try audit.record(actor: who(tok), action: "positions.query", target: name,
                         detail: .obj(detail + [("answers", .int(rows.count))]))
        // Written straight to bytes: a page of 10,000 answers as a tree of J values cost
        // more than the query itself.
        var out = Self.pageHead(name, watermark)
        out.reserveCapacity(out.count + 32 + rows.count * (idsOnly ? 16 : 110))
        out += Array("\(rows.count),\"\(idsOnly ? "ids" : "entities")\":[".utf8)
        for (i, r) in rows.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            if idsOnly {
                JSONText.appendString(r.id, to: &out)
                continue
            }
            out += Array("{\"id\":".utf8)
            JSONText.appendString(r.id, to: &out)
            out += Array(",\"kind\":".utf8)
            JSONText.appendString(r.kind, to: &out)
            out += Array(",\"lon\":".utf8)
            JSONText.appendNumber(r.lon, to: &out)
            out += Array(",\"lat\":".utf8)
            JSONText.appendNumber(r.lat, to: &out)
            out += Array(",\"time\":\"".utf8)
            EventTime.append(r.time, to: &out)
            out.append(UInt8(ascii: "\""))
            if let d = r.distance {
                out += Array(",\"distance_m\":".utf8)
                JSONText.appendNumber(d, to: &out)
            }
            out.append(UInt8(ascii: "}"))
        }
        out += Array("],\"cursor\":".utf8)
        if let next { JSONText.appendString(next.text, to: &out) } else { out += Array("null".utf8) }
        out += Array("}\n".utf8)
        return Response(status: .ok, headers: [.contentType: "application/json"], body: ResponseBody(byteBuffer: ByteBuffer(bytes: out)))
    }

    /// `{"query":…,"watermark":…,"count":` — the start every page shares.
    static func pageHead(_ name: String, _ watermark: Millis?) -> [UInt8] {
        var out: [UInt8] = Array("{\"query\":".utf8)
        JSONText.appendString(name, to: &out)
        out += Array(",\"watermark\":".utf8)
        if let w = watermark, w != .min { JSONText.appendString(EventTime.format(w), to: &out) } else { out += Array("null".utf8) }
        out += Array(",\"count\":".utf8)
        return out
    }

    /// A standing query over SSE: `event: snapshot` (the answer now, by id), then `event: enter`
    /// and `event: leave` as entities come into and go out of the answer, and comments as
    /// heartbeats.
    var stream: Handler {
        { [self] req, _, tok in
            let q = req.uri.queryParameters
            let filters = try QueryFilters.parse(req)
            let area: StandingQuery.Area
            var detail: [(String, J)] = []
            switch q.get("query") {
            case "nearby":
                guard let ls = q.get("lon"), let lon = Double(ls), (-180...180).contains(lon),
                      let as_ = q.get("lat"), let lat = Double(as_), (-90...90).contains(lat),
                      let rs = q.get("radius_m"), let r = Double(rs), r.isFinite, r >= 0 else {
                    throw APIError.badRequest("a standing nearby query needs lon (-180 to 180), lat (-90 to 90) and radius_m (metres >= 0); it has no k")
                }
                area = .radius(lon: lon, lat: lat, radiusM: r)
                detail = [("lon", .num(lon)), ("lat", .num(lat)), ("radius_m", .num(r))]
            case "within":
                let zone = q.get("zone"), bbox = q.get("bbox")
                guard (zone == nil) != (bbox == nil) else { throw APIError.badRequest("a standing within query needs exactly one of zone=<zone id> or bbox=<min lon>,<min lat>,<max lon>,<max lat>") }
                if let zone {
                    let shape = try await zoneShape(zone)
                    area = .covers(ZoneIndex(shapes: [shape]))
                    detail = [("zone", .str(zone))]
                } else {
                    let box = try Self.bbox(bbox!)
                    area = .box(box)
                    detail = [("bbox", .arr([.num(box.minX), .num(box.minY), .num(box.maxX), .num(box.maxY)]))]
                }
            default:
                throw APIError.badRequest("give query=nearby (with lon, lat, radius_m) or query=within (with zone or bbox)")
            }
            return try await openStanding(area, target: q.get("query") ?? "", detail: detail, filters, tok)
        }
    }

    /// A standing query over a posted GeoJSON shape (Polygon, MultiPolygon, or a Feature of
    /// one or of a circle): `within` that shape, as `GET /v1/query/stream?query=within`.
    var streamPost: Handler {
        { [self] req, _, tok in
            let filters = try QueryFilters.parse(req)
            let shape = try await postedShape(req)
            return try await openStanding(.covers(ZoneIndex(shapes: [shape])), target: "within",
                                          detail: [("geometry_vertices", .int(Self.vertexCount(shape)))], filters, tok)
        }
    }

    /// Registers a standing query, audits it, and streams its snapshot and changes.
    func openStanding(_ area: StandingQuery.Area, target: String, detail: [(String, J)], _ filters: QueryFilters, _ tok: TokenRecord?) async throws -> Response {
        let (events, cont) = AsyncStream<String>.makeStream(bufferingPolicy: .bufferingNewest(100_000))
        let (id, snapshot) = try await host.read { s in s.registerStanding(area: area, filters: filters, out: cont) }
        let host = self.host
        cont.onTermination = { _ in Task { try? await host.perform { s in s.standing[id] = nil } } }
        try audit.record(actor: who(tok), action: "positions.stream", target: target,
                         detail: .obj(detail + [("filters", filters.json), ("answers", .int(snapshot.count))]))
        let heartbeat = settings.heartbeat
        let body = ResponseBody { writer in
            try await writer.write(ByteBuffer(string: ": tripline query stream\nretry: 2000\n\n"))
            try await writer.write(ByteBuffer(string: "event: snapshot\ndata: {\"entities\":[" + snapshot.joined(separator: ",") + "]}\n\n"))
            for await item in AlertBroadcaster.withHeartbeat(events, every: heartbeat) {
                try await writer.write(ByteBuffer(string: item ?? ":\n\n"))
            }
            try await writer.finish(nil)
        }
        return Response(status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-cache"], body: body)
    }

    /// A map viewport over SSE: `event: frame` now and then every `interval_ms` when something
    /// changed (points or clusters, see MapViewport), comments as heartbeats otherwise.
    var mapStream: Handler {
        { [self] req, _, tok in
            let q = req.uri.queryParameters
            guard let bboxText = q.get("bbox") else {
                throw APIError.badRequest("give the viewport as bbox=<min lon>,<min lat>,<max lon>,<max lat>, e.g. /v1/map/stream?bbox=4.7,52.2,5.1,52.5")
            }
            let box = try Self.bbox(bboxText)
            func whole(_ name: String, _ range: ClosedRange<Int>, _ fallback: Int) throws -> Int {
                guard let s = q.get(name) else { return fallback }
                guard let v = Int(s), range.contains(v) else {
                    throw APIError.badRequest("query parameter '\(name)' must be a whole number from \(range.lowerBound) to \(range.upperBound), got '\(s)'")
                }
                return v
            }
            let maxPoints = try whole("max_points", 0...20_000, 2_000)
            let interval = try whole("interval_ms", 100...60_000, 1_000)
            var columns = 32, rows = 20
            if let g = q.get("grid") {
                let parts = g.split(separator: "x", omittingEmptySubsequences: false).map { Int($0) }
                guard parts.count == 2, let c = parts[0], let r = parts[1], (1...256).contains(c), (1...256).contains(r) else {
                    throw APIError.badRequest("query parameter 'grid=\(g)' must be <columns>x<rows>, each from 1 to 256 (e.g. grid=32x20)")
                }
                columns = c
                rows = r
            }
            let filters = try QueryFilters.parse(req)
            let viewport = MapViewport(box: box, filters: filters, maxPoints: maxPoints, columns: columns, rows: rows)
            let first = try await host.read { s in s.mapFrame(viewport) }
            try audit.record(actor: who(tok), action: "positions.map", target: bboxText,
                             detail: .obj([("bbox", .arr([.num(box.minX), .num(box.minY), .num(box.maxX), .num(box.maxY)])),
                                           ("max_points", .int(maxPoints)), ("filters", filters.json), ("answers", .int(first.count))]))
            let host = self.host
            let body = ResponseBody { writer in
                try await writer.write(ByteBuffer(string: ": tripline map stream\nretry: 2000\n\nevent: frame\ndata: \(first.json ?? "{}")\n\n"))
                while !Task.isCancelled {
                    try await Task.sleep(for: .milliseconds(interval))
                    let next = try await host.read { s in s.mapFrame(viewport) }
                    try await writer.write(ByteBuffer(string: next.json.map { "event: frame\ndata: \($0)\n\n" } ?? ":\n\n"))
                }
                try await writer.finish(nil)
            }
            return Response(status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-cache"], body: body)
        }
    }
}
