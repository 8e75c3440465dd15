import Foundation
import Hummingbird
import NIOCore
import TriplineCore
import TriplineStore

typealias Handler = @Sendable (Request, BasicRequestContext, TokenRecord?) async throws -> Response

/// One concern's routes. A controller lists each route once, with the roles that may call it
/// and whether a standby answers it (`table`), and holds the handlers; `TriplineHTTP` turns it
/// into a Hummingbird `RouteCollection` with every handler behind authentication, the query
/// parameter check and the standby check. The OpenAPI document must list exactly the routes of
/// every controller (a test compares them).
protocol Controller: Sendable {
    /// The server answering: its engine host, store, audit log, settings and token cache.
    var http: TriplineHTTP { get }
    static var table: [(RouteSpec, KeyPath<Self, Handler>)] { get }
}

extension Controller {
    static var read: [Role] { TriplineHTTP.read }
    static var write: [Role] { TriplineHTTP.write }

    var host: EngineHost { http.host }
    var store: any TriplineStore { http.store }
    var audit: AuditLog { http.audit }
    var settings: ServerSettings { http.settings }

    /// The routes of this controller as a Hummingbird route collection, each handler wrapped by
    /// `guarded` (authentication and the checks every route shares). Records each path's
    /// methods in `methods`, for the 405 answers.
    func collection(_ guarded: (RouteSpec, @escaping Handler) -> @Sendable (Request, BasicRequestContext) async throws -> Response,
                    methods: inout [String: [String]]) -> RouteCollection<BasicRequestContext> {
        let routes = RouteCollection(context: BasicRequestContext.self)
        for (spec, kp) in Self.table {
            let path = spec.hummingbirdPath
            methods[path, default: []].append(spec.method)
            routes.on(RouterPath(path), method: HTTPRequest.Method(rawValue: spec.method)!, use: guarded(spec, self[keyPath: kp]))
        }
        return routes
    }

    // MARK: - Helpers the handlers share

    /// The caller as the audit log names it.
    func who(_ t: TokenRecord?) -> String { t.map { $0.name.isEmpty ? $0.id : "\($0.name) (\($0.id))" } ?? "local" }

    func now() -> Millis { settings.clock() }

    func body(_ req: Request) async throws -> [UInt8] {
        var buf: ByteBuffer
        do {
            buf = try await req.body.collect(upTo: settings.maxBodyBytes)
        } catch {
            throw APIError(status: .contentTooLarge, code: "body_too_large",
                           message: "the request body is larger than \(settings.maxBodyBytes >> 20) MiB; split it into batches of at most \(settings.options.maxBatchEvents) events")
        }
        return buf.readBytes(length: buf.readableBytes) ?? []
    }

    func param(_ ctx: BasicRequestContext, _ name: String = "id") throws -> String {
        guard let v = ctx.parameters.get(name) else { throw APIError.badRequest("missing path parameter \(name)") }
        if v.utf8.contains(0) || v.contains("%00") { throw APIError.badRequest("path parameter \(name) holds U+0000 (NUL), which no id or name may contain") }
        return v
    }

    func timeParam(_ req: Request, _ name: String) throws -> Millis? {
        guard let s = req.uri.queryParameters.get(name), !s.isEmpty else { return nil }
        switch EventTime.parseText(s) {
        case .success(let t): return t
        case .failure(.malformed(let why)):
            throw APIError.badRequest("query parameter '\(name)=\(s)' is neither RFC 3339 nor epoch milliseconds: \(why)")
        }
    }

    func intParam(_ req: Request, _ name: String, default d: Int, max m: Int) throws -> Int {
        guard let s = req.uri.queryParameters.get(name) else { return d }
        guard let v = Int(s), v >= 0 else { throw APIError.badRequest("query parameter '\(name)' must be a whole number >= 0, got '\(s)'") }
        return min(v, m)
    }

    func jsonBody(_ req: Request) async throws -> DocNode {
        let bytes = try await body(req)
        let text: String
        switch UTF8Text.decode(bytes, file: "request") {
        case .success(let t): text = t
        case .failure(let e): throw ValidationFailure(e)
        }
        switch JSONDocumentParser.parse(text, file: "request") {
        case .success(let d):
            guard d.members != nil else { throw APIError.badRequest("the body must be a JSON object, found \(d.typeName)") }
            return d
        case .failure(let e):
            throw APIError(status: .badRequest, code: "bad_request", message: "the body is not valid JSON", errors: [J.error(e)])
        }
    }

    func optionalString(_ doc: DocNode, _ key: String, pointer: String) throws -> String? {
        guard let n = doc[key] else { return nil }
        if case .null = n.value { return nil }
        guard let s = n.stringValue, !s.isEmpty else { throw APIError.badRequest("\(pointer)/\(key) must be a non-empty string") }
        return s
    }

    func timeField(_ doc: DocNode, _ key: String) throws -> Millis? {
        guard let n = doc[key] else { return nil }
        if let s = n.stringValue {
            switch EventTime.parseRFC3339(s) {
            case .success(let t): return t
            case .failure(.malformed(let why)): throw APIError.badRequest("/\(key) is not an RFC 3339 time: \(why)")
            }
        }
        if let d = n.numberValue, let t = EventTime.fromNumber(d) { return t }
        throw APIError.badRequest("/\(key) must be an RFC 3339 time or whole epoch milliseconds from 0 to \(TimeBounds.maxTime) (year 9999)")
    }
}

extension RouteSpec {
    /// The path in Hummingbird's syntax (`/v1/rules/:id` for `/v1/rules/{id}`).
    var hummingbirdPath: String { path.replacingOccurrences(of: "{", with: ":").replacingOccurrences(of: "}", with: "") }
}
