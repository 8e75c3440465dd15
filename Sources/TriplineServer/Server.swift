import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdWebSocket
import Logging
import NIOConcurrencyHelpers
import NIOCore
import ServiceLifecycle
import TriplineCore
import TriplineStore

/// How a server is started.
public struct ServerSettings: Sendable {
    public var host = "127.0.0.1"
    public var port = 8080
    public var options = HostOptions()
    public var webhooks = WebhookSettings()
    public var retention = RetentionSettings()
    /// A rule without `expires` gets now + this; a later `expires` than now + `ruleMaxLifetime` is refused.
    public var ruleDefaultLifetime: Millis = 90 * 86_400_000
    public var ruleMaxLifetime: Millis = 365 * 86_400_000
    /// Largest request body accepted, in bytes.
    public var maxBodyBytes = 16 << 20
    /// `idle_advance`: when no batch has arrived for this long, event time follows the wall
    /// clock (minus this much). Off (nil) by default: event time only moves with events.
    public var idleAdvance: Millis?
    /// A JetStream stream to read events from (nil: none).
    public var natsInput: NATSInputSettings?
    /// MQTT topics to read events from (nil: none).
    public var mqttInput: MQTTInputSettings?
    /// Event batches read at once (see `TriplineHTTP.inflight`).
    public var maxBodiesInFlight = 32
    /// Header timeout, idle timeout and connection cap (docs/security.md).
    public var limits = ConnectionLimits()
    /// An SSE comment (`:`) or a WebSocket ping this often on every stream, so that a peer that
    /// has gone is noticed and its subscription removed even when no alert matches its filter.
    public var heartbeat: Duration = .seconds(15)
    /// SIGTERM ends streams at once; whatever is still running after this long is cancelled.
    public var shutdownTimeout: Duration = .seconds(10)
    /// Serve HTTPS with this certificate and key (nil: plain HTTP).
    public var tls: TLSFiles?
    /// The URL other servers' clients are sent to while this one is active (nil: the scheme,
    /// host and bound port it listens on).
    public var advertise: String?
    /// Who this server is, as recorded when it holds the active lease (`PID n on HOST since T`).
    public var holder = "PID \(getpid()) on \(ProcessInfo.processInfo.hostName) since \(Date())"
    /// A standby looks for the active lease this often.
    public var takeoverPoll: Duration = .milliseconds(200)
    /// The wall clock (milliseconds since the epoch) for everything that is not event time:
    /// token and rule lifetimes, --max-future, webhook retry times, retention, idle advance.
    /// One clock, injected, so that tests can move it instead of sleeping.
    public var clock: @Sendable () -> Millis = WallClock.system
    /// The server's log level (stderr); at `info` and below every request is logged, with
    /// its request id (`hb.request.id`, also sent back as `Tripline-Request-Id`).
    public var logLevel: Logger.Level = .warning
    /// At shutdown, webhook deliveries due are attempted for at most this long (after the
    /// HTTP server has finished its requests); the rest stay in the outbox.
    public var outboxFlushSeconds = 5.0
    public init() {}
}

/// Whether this server runs the engine. A standby (on a shared store) answers the routes that
/// only read the store, answers every other route 503 naming the active server, and takes
/// over when the active server's lease comes free.
public enum ServerRole: String, Sendable {
    case active
    case standby
    /// Took the lease and is rebuilding the engine from the log.
    case takingOver = "taking_over"
}

/// One documented route: method, OpenAPI path and the roles allowed on it (empty: no token).
public struct RouteSpec: Sendable, Hashable {
    public var method: String
    public var path: String
    public var roles: [Role]
    /// A standby server answers it too (it reads only the store, never the engine).
    public var standby: Bool = false
    /// A cluster's API node answers it (false: it reads the local event log, which a cluster
    /// keeps on its stream instead).
    public var cluster: Bool = true
    public init(method: String, path: String, roles: [Role], standby: Bool = false, cluster: Bool = true) {
        self.method = method
        self.path = path
        self.roles = roles
        self.standby = standby
        self.cluster = cluster
    }
}

/// An error answer: status, a machine-readable code, an explanation, and located items.
/// Thrown from a handler, Hummingbird answers with `response` (`HTTPResponseError`).
struct APIError: HTTPResponseError {
    var status: HTTPResponse.Status
    var code: String
    var message: String
    var errors: [J] = []
    var headers: [(String, String)] = []
    /// More fields of the answer (after `error` and `message`).
    var extra: [(String, J)] = []

    var response: Response {
        var fields: [(String, J)] = [("error", .str(code)), ("message", .str(message))]
        if !errors.isEmpty { fields.append(("errors", .arr(errors))) }
        fields += extra
        var r = API.json(.obj(fields), status: status)
        for (k, v) in headers { r.headers[HTTPField.Name(k)!] = v }
        return r
    }

    func response(from request: Request, context: some RequestContext) throws -> Response { response }

    static func notFound(_ what: String) -> APIError { APIError(status: .notFound, code: "not_found", message: what) }
    static func badRequest(_ what: String) -> APIError { APIError(status: .badRequest, code: "bad_request", message: what) }
    static func invalid(_ f: ValidationFailure, what: String, unit: String = "line") -> APIError {
        APIError(status: .unprocessableContent, code: "invalid_\(what)",
                 message: "\(f.errors.count) problem(s) in the \(what); nothing was stored. Fix them and send it again.",
                 errors: f.errors.map { J.error($0, unit: unit) })
    }
}

enum API {
    static func json(_ v: J, status: HTTPResponse.Status = .ok) -> Response {
        var out: [UInt8] = []
        v.append(to: &out)
        out.append(10)
        return Response(status: status, headers: [.contentType: "application/json"], body: ResponseBody(byteBuffer: ByteBuffer(bytes: out)))
    }

    static func text(_ s: String, contentType: String, status: HTTPResponse.Status = .ok) -> Response {
        Response(status: status, headers: [.contentType: contentType], body: ResponseBody(byteBuffer: ByteBuffer(string: s)))
    }
}

/// The HTTP server: routes, authentication, and the answers of each route.
public final class TriplineHTTP: Sendable {
    public let host: EngineHost
    public let settings: ServerSettings
    public let audit: AuditLog
    let tokenCache = TokenCache()
    /// Event batches being received at once; beyond `maxBodiesInFlight` a batch is answered
    /// 429 before its body is read, so a flood of large bodies cannot grow memory without bound
    /// (at most maxBodiesInFlight x maxBodyBytes are being read, plus the engine's queue).
    let inflight = InflightCounter()
    /// Open connections (the connection cap).
    let connections = ConnectionCounter()
    /// The store servers share (PostgreSQL), for the active lease; nil for a store of one server.
    public let shared: (any SharedStore)?
    let roleBox: NIOLockedValueBox<ServerRole>
    /// This server's advertised URL, once its port is bound.
    let advertised = NIOLockedValueBox<String?>(nil)

    public var store: any TriplineStore { host.store }
    public var role: ServerRole { roleBox.withLockedValue { $0 } }

    /// `standby`: the host holds no engine yet (`EngineHost(..., standby: true)`), and `shared`
    /// is the store whose lease this server waits for.
    public init(host: EngineHost, settings: ServerSettings, audit: AuditLog, shared: (any SharedStore)? = nil, standby: Bool = false) {
        self.host = host
        self.settings = settings
        self.audit = audit
        self.shared = shared
        self.roleBox = NIOLockedValueBox(standby ? .standby : .active)
        host.audit = audit
    }

    /// The 503 of a route a standby does not serve: names the active server (`active` in the
    /// body and the `Tripline-Active` header) and says to retry.
    func standbyRefusal(_ spec: RouteSpec) -> APIError {
        let active = (try? shared?.activeServer())
        let url = active?.url
        let taking = role == .takingOver
        var message = taking
            ? "this server is taking over as the active server (rebuilding from the log); retry in a moment"
            : "this server is a standby: \(spec.method) \(spec.path) needs the engine, which runs on the active server"
        if !taking { message += url.map { "; send it to \($0)" } ?? "; no active server is recorded (retry in a moment)" }
        var headers = [("Retry-After", "1")]
        if let url, !taking { headers.append(("Tripline-Active", url)) }
        return APIError(status: .serviceUnavailable, code: taking ? "taking_over" : "standby", message: message, headers: headers,
                        extra: [("role", .str(role.rawValue)), ("active", taking ? .null : .optStr(url))])
    }

    /// The roles that may read, and that may change things.
    static let read: [Role] = [.operator, .admin, .auditor]
    static let write: [Role] = [.operator, .admin]

    /// Every route the server answers (the OpenAPI document must list exactly these).
    public static var routes: [RouteSpec] {
        SystemController.table.map(\.0) + EventsController.table.map(\.0) + CatalogController.table.map(\.0)
            + AlertsController.table.map(\.0) + NotifyController.table.map(\.0) + PolicyController.table.map(\.0) + AccessController.table.map(\.0)
            + QueryController.table.map(\.0) + [webSocketRoute]
    }

    static let webSocketRoute = RouteSpec(method: "GET", path: "/v1/alerts/ws", roles: read)

    /// The WebSocket route: live alerts as text messages (one alert JSON each).
    public func makeWebSocketRouter() -> Router<BasicWebSocketRequestContext> {
        let router = Router(context: BasicWebSocketRequestContext.self)
        let spec = Self.webSocketRoute
        router.ws(RouterPath(spec.path), shouldUpgrade: { [self] req, _ in
            // Refused here, the request goes on to the HTTP route of the same path, which
            // answers 401/403 with the usual explanation.
            guard (try? authenticate(req, roles: spec.roles, route: spec)) != nil, (try? checkQuery(req, spec)) != nil,
                  role == .active else { return .dontUpgrade }
            return .upgrade([:])
        }) { [self] inbound, outbound, context in
            var q = AlertQuery()
            let p = context.request.uri.queryParameters
            q.rule = p.get("rule")
            q.entity = p.get("entity")
            q.zone = p.get("zone")
            let after = p.get("after").flatMap { Int64($0) }
            let (_, stream) = host.alerts.subscribe()
            let store = self.store
            let filter = q
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    // Until the client closes.
                    for try await _ in inbound {}
                }
                group.addTask {
                    var last = Int64.max
                    if let after {
                        var cq = filter
                        cq.afterId = after
                        cq.limit = 100_000
                        for a in try store.alerts(cq) {
                            try await outbound.writeTextMessage(a.json.text)
                            last = a.id
                        }
                        if last == .max { last = after }
                    }
                    for await a in stream {
                        if last != .max && a.id <= last { continue }
                        if !AlertFilter.matches(a, filter) { continue }
                        try await outbound.writeTextMessage(a.json.text)
                    }
                }
                try await group.next()
                group.cancelAll()
            }
        }
        return router
    }

    /// Refuses a query parameter the route does not document (a guess such as `cursor` for
    /// `after` would otherwise be ignored, and a client would page for ever).
    func checkQuery(_ req: Request, _ spec: RouteSpec) throws {
        let accepted = OpenAPIDocument.queryParameters[spec.method + " " + spec.path] ?? []
        for (name, value) in req.uri.queryParameters where value.utf8.contains(0) || name.utf8.contains(0) {
            throw APIError.badRequest("query parameter '\(name)' holds U+0000 (NUL), which no id or name may contain")
        }
        for (name, _) in req.uri.queryParameters where !accepted.contains(String(name)) {
            let list = accepted.isEmpty ? "it takes no query parameters" : "it accepts: " + accepted.sorted().joined(separator: ", ")
            throw APIError(status: .badRequest, code: "unknown_parameter",
                           message: "unknown query parameter '\(name)' for \(spec.method) \(spec.path); \(list)")
        }
    }

    /// A route's handler behind what every route shares: the request count, authentication,
    /// the query parameter check and the standby check. Every error leaves as an APIError
    /// (Hummingbird's HTTPResponseError), which Hummingbird turns into the JSON answer after
    /// the metrics middleware counted it.
    func guarded(_ spec: RouteSpec, _ handler: @escaping Handler) -> @Sendable (Request, BasicRequestContext) async throws -> Response {
        { [self] req, ctx in
            host.metrics.add(\.httpRequests, 1)
            do {
                let token = try authenticate(req, roles: spec.roles, route: spec)
                try checkQuery(req, spec)
                if !spec.standby && role != .active { throw standbyRefusal(spec) }
                if !spec.cluster && host.cluster != nil {
                    throw APIError(status: .notImplemented, code: "not_in_cluster_mode",
                                   message: "\(spec.method) \(spec.path) reads the event log, which a cluster keeps on its JetStream stream rather than in this API node's store; it is not available on a cluster API node yet (run it on a single-node server, or replay the stream with tripline replay)")
                }
                return try await handler(req, ctx, token)
            } catch let e as APIError {
                throw e

            } catch let e as ValidationFailure {
                throw APIError.invalid(e, what: "request")
            } catch {
                throw APIError(status: .internalServerError, code: "internal", message: "\(error)")
            }
        }
    }

    /// Builds the router: every controller's routes, each behind authentication and the shared checks.
    public func makeRouter() -> Router<BasicRequestContext> {
        let router = Router(context: BasicRequestContext.self)
        // Every route's request count, errors and latency (swift-metrics, into the process-wide
        // Prometheus registry that /metrics also renders).
        _ = Metrics.processRegistry
        router.add(middleware: RequestIDMiddleware())
        router.add(middleware: MetricsMiddleware())
        if settings.logLevel <= .info { router.add(middleware: LogRequestsMiddleware(settings.logLevel)) }
        // Each concern's routes as one route collection (Controllers/), every handler behind
        // the same checks.
        var methodsByPath: [String: [String]] = [:]
        router.addRoutes(SystemController(http: self).collection(guarded, methods: &methodsByPath))
        router.addRoutes(EventsController(http: self).collection(guarded, methods: &methodsByPath))
        router.addRoutes(CatalogController(http: self).collection(guarded, methods: &methodsByPath))
        router.addRoutes(AlertsController(http: self).collection(guarded, methods: &methodsByPath))
        router.addRoutes(NotifyController(http: self).collection(guarded, methods: &methodsByPath))
        router.addRoutes(PolicyController(http: self).collection(guarded, methods: &methodsByPath))
        router.addRoutes(QueryController(http: self).collection(guarded, methods: &methodsByPath))
        router.addRoutes(AccessController(http: self).collection(guarded, methods: &methodsByPath))
        // Other methods on a known path (TRACE among them): 405 naming the allowed ones.
        methodsByPath[Self.webSocketRoute.path, default: []].append("GET")
        for (path, methods) in methodsByPath {
            let allow = Set(methods).sorted().joined(separator: ", ")
            for m in ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE"] where !methods.contains(m) {
                router.on(RouterPath(path), method: HTTPRequest.Method(rawValue: m)!) { _, _ in
                    APIError(status: .methodNotAllowed, code: "method_not_allowed", message: "\(m) is not allowed here; this path takes \(allow)",
                             headers: [("Allow", allow)]).response
                }
            }
        }
        // The same path without an upgrade (or with a refused token): explain.
        let ws = Self.webSocketRoute
        router.on(RouterPath(ws.path), method: .get) { [self] req, _ in
            do {
                _ = try authenticate(req, roles: ws.roles, route: ws)
                try checkQuery(req, ws)
                if role != .active { throw standbyRefusal(ws) }
                return APIError(status: .badRequest, code: "websocket_required",
                                message: "this route is a WebSocket: send an Upgrade: websocket request (or use GET /v1/alerts/stream for Server-Sent Events)").response
            } catch let e as APIError {
                return e.response
            }
        }
        return router
    }

    /// A standby's wait: looks for the active lease every `takeoverPoll`; once it has it,
    /// rebuilds the engine from the log (on a thread of its own), records the takeover and
    /// becomes active (the caller then starts the active server's work). False when
    /// cancelled first.
    func standBy() async -> Bool {
        guard let shared else { return false }
        while !Task.isCancelled {
            try? await Task.sleep(for: settings.takeoverPoll)
            if Task.isCancelled { return false }
            let previous = (try? shared.activeServer())?.holder
            guard let url = advertised.withLockedValue({ $0 }), (try? shared.tryTakeActive(holder: settings.holder, url: url)) == true else { continue }
            roleBox.withLockedValue { $0 = .takingOver }
            let started = DispatchTime.now().uptimeNanoseconds
            let host = self.host
            let failure: String? = await withCheckedContinuation { c in
                let t = Thread {
                    do { try host.activate(); c.resume(returning: nil) } catch { c.resume(returning: "\(error)") }
                }
                t.stackSize = 8 << 20
                t.start()
            }
            if let failure {
                FileHandle.standardError.write(Data("tripline: took the active lease but could not rebuild the engine: \(failure); exiting so that another server can take over\n".utf8))
                exit(1)
            }
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
            let rebuilt = host.rebuiltEventsAtActivation
            _ = try? audit.record(actor: "server", action: "server.takeover", target: "active", detail: .obj([
                ("previous", .optStr(previous)), ("holder", .str(settings.holder)), ("url", .str(url)),
                ("rebuilt_events", .int(rebuilt)), ("rebuild_seconds", .num(seconds)),
            ]))
            roleBox.withLockedValue { $0 = .active }
            FileHandle.standardError.write(Data("tripline: took over as the active server (previous: \(previous ?? "unknown")); rebuilt the engine from \(rebuilt) logged events in \(String(format: "%.2f", seconds)) s\n".utf8))
            return true
        }
        return false
    }

    /// Runs the server until it is stopped; `onRunning` gets the bound port. An active server
    /// also runs webhook delivery, retention and idle advance; a standby waits to take over.
    public func run(onRunning: @escaping @Sendable (Int) async -> Void = { _ in }) async throws {
        var logger = Logger(label: "tripline")
        logger.logLevel = settings.logLevel
        let scheme = settings.tls == nil ? "http" : "https"
        let app = Application(
            router: makeRouter(),
            server: .guardedWebSocket(webSocketRouter: makeWebSocketRouter(), limits: settings.limits, counter: connections,
                                      pingEvery: settings.heartbeat, tls: try settings.tls?.configuration()),
            configuration: .init(address: .hostname(settings.host, port: settings.port), serverName: "tripline"),
            onServerRunning: { [self] ch in
                let port = ch.localAddress?.port ?? 0
                let url = settings.advertise ?? "\(scheme)://\(Self.urlHost(settings.host)):\(port)"
                advertised.withLockedValue { $0 = url }
                if role == .active, let shared { try? shared.setActiveURL(url) }
                await onRunning(port)
            },
            logger: logger
        )
        // Started in this order, shut down in the reverse order (Services.swift).
        var config = ServiceGroupConfiguration(services: [.init(service: ActiveWorkService(http: self, logger: logger)),
                                                          .init(service: app), .init(service: StreamCloser(alerts: host.alerts))],
                                               gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        config.maximumGracefulShutdownDuration = settings.shutdownTimeout
        try await ServiceGroup(configuration: config).run()
    }

    /// The host part of an advertised URL for a listening address (a wildcard address names
    /// this machine; an IPv6 literal gets brackets).
    static func urlHost(_ h: String) -> String {
        if h == "0.0.0.0" || h == "::" || h.isEmpty { return ProcessInfo.processInfo.hostName }
        return h.contains(":") ? "[\(h)]" : h
    }

    /// Ends every live alert stream when a graceful shutdown begins (services shut down in
    /// reverse order, so this runs before the HTTP server waits for its requests to finish).
    struct StreamCloser: Service {
        let alerts: AlertBroadcaster
        func run() async throws {
            try? await gracefulShutdown()
            alerts.finishAll()
        }
    }

    // MARK: - Authentication

    func authenticate(_ req: Request, roles: [Role], route: RouteSpec) throws -> TokenRecord? {
        if roles.isEmpty { return nil }
        var secret: String?
        if let h = req.headers[.authorization] {
            let parts = h.split(separator: " ", maxSplits: 1)
            guard parts.count == 2, parts[0].lowercased() == "bearer" else {
                throw APIError(status: .unauthorized, code: "unauthorized", message: "the Authorization header must be 'Bearer <token>'",
                               headers: [("WWW-Authenticate", "Bearer")])
            }
            secret = String(parts[1]).trimmingCharacters(in: .whitespaces)
        } else if let q = req.uri.queryParameters.get("access_token"),
                  OpenAPIDocument.queryParameters[route.method + " " + route.path]?.contains("access_token") == true {
            secret = q  // only on the streams: EventSource and a browser WebSocket cannot set headers
        }
        guard let secret else {
            throw APIError(status: .unauthorized, code: "unauthorized",
                           message: "this route needs an API token: send 'Authorization: Bearer <token>' (create one with 'tripline token create --data DIR --role admin')",
                           headers: [("WWW-Authenticate", "Bearer")])
        }
        let hash = Tokens.hash(secret)
        guard let tok = try tokenCache.lookup(hash, store: store) else {
            throw APIError(status: .unauthorized, code: "unauthorized", message: "the API token is not valid (unknown or revoked)",
                           headers: [("WWW-Authenticate", "Bearer error=\"invalid_token\"")])
        }
        guard roles.contains(tok.role) else {
            throw APIError(status: .forbidden, code: "forbidden",
                           message: "your token has role '\(tok.role.rawValue)'; \(route.method) \(route.path) needs one of: \(roles.map(\.rawValue).joined(separator: ", "))")
        }
        return tok
    }

}

final class InflightCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var n = 0
    func enter(limit: Int) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        if n >= limit { return false }
        n += 1
        return true
    }
    func leave() {
        lock.lock()
        n -= 1
        lock.unlock()
    }
}

/// Recently seen token hashes, so that a request costs no store read.
final class TokenCache: @unchecked Sendable {
    private let lock = NSLock()
    private var cache: [String: TokenRecord] = [:]

    func lookup(_ hash: String, store: any TriplineStore) throws -> TokenRecord? {
        lock.lock()
        if let t = cache[hash] { lock.unlock(); return t }
        lock.unlock()
        guard let t = try store.token(hash: hash) else { return nil }
        lock.lock()
        if cache.count > 10_000 { cache.removeAll() }
        cache[hash] = t
        lock.unlock()
        return t
    }

    func clear() {
        lock.lock()
        cache.removeAll()
        lock.unlock()
    }
}


/// Sends every answer back with the request's id (`Tripline-Request-Id`, the `hb.request.id`
/// of the server's log lines), error answers included, so that a client can quote it.
struct RequestIDMiddleware<Context: RequestContext>: RouterMiddleware {
    static var header: HTTPField.Name { HTTPField.Name("Tripline-Request-Id")! }
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var response: Response
        do {
            response = try await next(request, context)
        } catch let e as any HTTPResponseError {
            response = try e.response(from: request, context: context)
        }
        response.headers[Self.header] = context.id
        return response
    }
}
