import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import TriplineCore
import TriplineStore


/// The server itself: health, the dashboard's files, who the caller is, the OpenAPI document,
/// metrics and the engine's status.
struct SystemController: Controller {
    let http: TriplineHTTP

    static var table: [(RouteSpec, KeyPath<Self, Handler>)] { [
        (RouteSpec(method: "GET", path: "/healthz", roles: [], standby: true), \.healthz),
        (RouteSpec(method: "GET", path: "/", roles: [], standby: true), \.dashboardIndex),
        (RouteSpec(method: "GET", path: "/assets/{file}", roles: [], standby: true), \.dashboardAsset),
        (RouteSpec(method: "GET", path: "/v1/whoami", roles: Role.allCases, standby: true), \.whoami),
        (RouteSpec(method: "GET", path: "/openapi.json", roles: [], standby: true), \.openapi),
        (RouteSpec(method: "GET", path: "/metrics", roles: read, standby: true), \.metricsRoute),
        (RouteSpec(method: "GET", path: "/v1/status", roles: read), \.status),
    ] }
}

extension SystemController {
    // MARK: - Basic routes

    var healthz: Handler {
        { [self] _, _, _ in
            var fields: [(String, J)] = [("status", .str("ok")), ("role", .str(http.role.rawValue))]
            if http.role != .active, let url = (try? http.shared?.activeServer())?.url { fields.append(("active", .str(url))) }
            return API.json(.obj(fields))
        }
    }

    var whoami: Handler {
        { _, _, tok in
            API.json(.obj([("id", .optStr(tok?.id)), ("role", .optStr(tok?.role.rawValue)), ("name", .optStr(tok?.name))]))
        }
    }

    var openapi: Handler {
        { _, _, _ in API.text(OpenAPIDocument.json, contentType: "application/json") }
    }

    var metricsRoute: Handler {
        { [self] _, _, _ in
            API.text(host.metrics.render(now: now(), subscribers: host.alerts.count), contentType: "text/plain; version=0.0.4")
        }
    }

    var status: Handler {
        { [self] _, _, _ in
            let snap = try await host.perform { s -> J in
                let e = s.pipeline
                let st = e.stats
                return .obj([
                    ("watermark", .time(e.watermark)), ("max_event_time", .time(e.maxTime)),
                    ("rules", .int(s.catalog.rules.count)), ("zones", .int(s.catalog.zones.count)), ("entities_known", .int(e.entityCount)),
                    ("events_arrived", .int(st.arrived)), ("events_applied", .int(st.applied)),
                    ("duplicates", .int(st.duplicates)), ("late", .int(st.late)),
                    ("rebuild", .obj([("events", .int(s.rebuiltEvents)), ("seconds", .num(s.rebuildSeconds))])),
                    ("timeline_entries", .int(s.timelineEntries)),
                    ("catalog_problems", .arr(s.catalogProblems.map { .str($0) })),
                    ("expired_rules", .arr(e.expiredRules.map { .obj([("rule", .str(e.rules[$0.rule].id)), ("at", .time($0.at))]) })),
                ])
            }
            if case .obj(var fields) = snap {
                fields += [("stream_subscribers", .int(host.alerts.count)), ("connections", .int(http.connections.count)),
                           ("mode", .str(host.cluster == nil ? "single" : "cluster"))]
                return API.json(.obj(fields))
            }
            return API.json(snap)
        }
    }

    /// The dashboard: static files bundled with the binary (no data in them, so no token).
    var dashboardIndex: Handler {
        { _, _, _ in try Self.asset("index.html") }
    }

    var dashboardAsset: Handler {
        { _, ctx, _ in
            guard let name = ctx.parameters.get("file") else { throw APIError.notFound("no such file") }
            return try Self.asset(name)
        }
    }

    static func asset(_ name: String) throws -> Response {
        guard name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "." || $0 == "-" || $0 == "_" }), !name.hasPrefix("."),
              let dir = Bundle.module.url(forResource: "dashboard", withExtension: nil),
              let data = FileManager.default.contents(atPath: dir.appendingPathComponent(name).path) else {
            throw APIError.notFound("no dashboard file \"\(name)\"")
        }
        let type: String
        switch (name as NSString).pathExtension {
        case "html": type = "text/html; charset=utf-8"
        case "js": type = "text/javascript; charset=utf-8"
        case "css": type = "text/css; charset=utf-8"
        case "svg": type = "image/svg+xml"
        case "json": type = "application/json"
        default: type = "application/octet-stream"
        }
        return Response(status: .ok, headers: [.contentType: type, .cacheControl: "no-cache"], body: ResponseBody(byteBuffer: ByteBuffer(bytes: [UInt8](data))))
    }
}
