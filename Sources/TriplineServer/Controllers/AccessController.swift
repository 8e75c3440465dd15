import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import TriplineCore
import TriplineStore


/// Accountability: the audit log (list and verify) and API tokens.
struct AccessController: Controller {
    let http: TriplineHTTP

    static var table: [(RouteSpec, KeyPath<Self, Handler>)] { [
        (RouteSpec(method: "GET", path: "/v1/audit", roles: [.auditor, .admin], standby: true), \.listAudit),
        (RouteSpec(method: "GET", path: "/v1/audit/verify", roles: [.auditor, .admin], standby: true), \.verifyAudit),
        (RouteSpec(method: "GET", path: "/v1/tokens", roles: [.admin], standby: true), \.listTokens),
        (RouteSpec(method: "POST", path: "/v1/tokens", roles: [.admin]), \.postToken),
        (RouteSpec(method: "DELETE", path: "/v1/tokens/{id}", roles: [.admin]), \.deleteToken),
    ] }
}

extension AccessController {
    // MARK: - Audit

    var listAudit: Handler {
        { [self] req, _, _ in
            let after = Int64(req.uri.queryParameters.get("after") ?? "0") ?? 0
            let limit = max(1, try intParam(req, "limit", default: 100, max: 1000))
            let rows = try store.auditRecords(afterSeq: after, limit: limit)
            return API.json(.obj([("records", .arr(rows.map(\.json))), ("next", rows.count == limit ? .int(rows.last!.seq) : .null)]))
        }
    }

    var verifyAudit: Handler {
        { [self] req, _, _ in
            let v = try AuditLog.verify(store: store, expectHead: req.uri.queryParameters.get("expect_head"))
            return API.json(.obj([("ok", .bool(v.ok)), ("records", .int(v.records)), ("head", .str(v.head)),
                                  ("first_bad", v.firstBad.map { .int($0) } ?? .null), ("problem", .optStr(v.problem))]),
                            status: v.ok ? .ok : .conflict)
        }
    }

    // MARK: - Tokens

    var listTokens: Handler {
        { [self] _, _, _ in
            API.json(.obj([("tokens", .arr(try store.tokens().map {
                .obj([("id", .str($0.id)), ("role", .str($0.role.rawValue)), ("name", .str($0.name)), ("created_at", .time($0.createdAt))])
            }))]))
        }
    }

    var postToken: Handler {
        { [self] req, _, tok in
            let bytes = try await body(req)
            guard case .success(let doc) = JSONDocumentParser.parse(String(decoding: bytes, as: UTF8.self), file: "request"),
                  let roleText = doc["role"]?.stringValue else {
                throw APIError.badRequest("send {\"role\": \"ingest|operator|admin|auditor\", \"name\": \"...\"}")
            }
            guard let role = Role(rawValue: roleText) else {
                throw APIError.badRequest("unknown role '\(roleText)': use one of ingest, operator, admin, auditor")
            }
            let (rec, secret) = try Tokens.create(store: store, role: role, name: doc["name"]?.stringValue ?? "", now: now())
            try audit.record(actor: who(tok), action: "token.create", target: rec.id, detail: .obj([("role", .str(role.rawValue)), ("name", .str(rec.name))]))
            return API.json(.obj([("id", .str(rec.id)), ("role", .str(role.rawValue)), ("name", .str(rec.name)), ("token", .str(secret)),
                                  ("note", .str("the token is shown only now; it is stored as a hash"))]), status: .created)
        }
    }

    var deleteToken: Handler {
        { [self] _, ctx, tok in
            let id = try param(ctx)
            guard try store.deleteToken(id: id) else { throw APIError.notFound("no token with this id") }
            try audit.record(actor: who(tok), action: "token.delete", target: id)
            http.tokenCache.clear()
            return Response(status: .noContent)
        }
    }
}
