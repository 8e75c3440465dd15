import Foundation
import Hummingbird
import TriplineCore
import TriplineNotify
import TriplineStore

/// The notification policy (docs/notifications.md): stored, versioned and audited like rules,
/// and where a given alert goes under it.
struct PolicyController: Controller {
    let http: TriplineHTTP

    static var table: [(RouteSpec, KeyPath<Self, Handler>)] { [
        (RouteSpec(method: "GET", path: "/v1/policy", roles: read, standby: true), \.getPolicy),
        (RouteSpec(method: "PUT", path: "/v1/policy", roles: write), \.putPolicy),
        (RouteSpec(method: "DELETE", path: "/v1/policy", roles: write), \.deletePolicy),
        (RouteSpec(method: "GET", path: "/v1/policy/versions", roles: read, standby: true), \.policyVersions),
        (RouteSpec(method: "GET", path: "/v1/alerts/{id}/routes", roles: read), \.alertRoutes),
        (RouteSpec(method: "GET", path: "/v1/notifications/groups", roles: read, standby: true), \.groups),
    ] }
}

extension PolicyController {
    func recordJSON(_ r: PolicyRecord, text: Bool) -> J {
        var f: [(String, J)] = [("version", .int(r.version)), ("status", .str(r.deleted ? "deleted" : "active")),
                                ("created_at", .time(r.createdAt)), ("created_by", .str(r.createdBy)), ("sha256", .str(r.sha256))]
        if text && !r.deleted { f.append(("policy", .str(r.text))) }
        return .obj(f)
    }

    var getPolicy: Handler {
        { [self] _, _, _ in
            guard let r = try PolicyFiles.current(store) else {
                throw APIError.notFound("no notification policy is set: each alert goes to every webhook receiver on its own (PUT /v1/policy to route and group them)")
            }
            return API.json(recordJSON(r, text: true))
        }
    }

    var policyVersions: Handler {
        { [self] _, _, _ in
            API.json(.obj([("versions", .arr(try PolicyFiles.versions(store).map { recordJSON($0, text: true) }))]))
        }
    }

    var putPolicy: Handler {
        { [self] req, _, tok in
            let bytes = try await body(req)
            let text: String
            switch UTF8Text.decode(bytes, file: "request") {
            case .success(let t): text = t
            case .failure(let e): throw APIError.invalid(ValidationFailure(e), what: "policy")
            }
            let receivers = Set(try store.receivers().map(\.id))
            let dry = req.uri.queryParameters.get("dry_run") == "true"
            let policy: NotificationPolicy
            switch PolicyFiles.decode(text, file: "request", receivers: receivers) {
            case .success(let p): policy = p
            case .failure(let f):
                if dry { return API.json(.obj([("valid", .bool(false)), ("message", .str("\(f.errors.count) problem(s)")), ("errors", .arr(f.errors.map { J.error($0) }))])) }
                throw APIError.invalid(f, what: "policy")
            }
            if dry {
                return API.json(.obj([("valid", .bool(true)), ("routes", .int(policy.allRoutes.count)), ("receivers", .arr(policy.receivers.sorted().map { .str($0) }))]))
            }
            let author = who(tok)
            let now = now()
            let sha = PolicyFiles.sha256(text)
            let used = policy.receivers.sorted()
            // On the engine thread, between jobs: the switch from one webhook per alert to the
            // policy falls between two alert ids (see EngineHost.setPolicyActive).
            let result = try await host.perform { [store, audit] s -> (Int, Bool) in
                if let cur = try PolicyFiles.current(store), cur.text == text { return (cur.version, false) }
                let v = (Int(try store.meta("notify.policy.last") ?? "0") ?? 0) + 1
                let rec = PolicyRecord(version: v, text: text, createdAt: now, createdBy: author, sha256: sha)
                if !s.policyActive {
                    var fresh = NotifierState()
                    fresh.cursor = s.nextAlertId - 1
                    try store.setMeta(NotifyMeta.state, String(decoding: try JSONEncoder().encode(fresh), as: UTF8.self))
                }
                try store.setMeta(NotifyMeta.version(v), String(decoding: try JSONEncoder().encode(rec), as: UTF8.self))
                try store.setMeta("notify.policy.last", String(v))
                try store.setMeta(NotifyMeta.current, String(v))
                s.policyActive = true
                try audit.record(actor: author, action: "policy.update", target: "v\(v)",
                                 detail: .obj([("version", .int(v)), ("sha256", .str(sha)), ("receivers", .arr(used.map { .str($0) }))]))
                return (v, true)
            }
            return API.json(.obj([("version", .int(result.0)), ("changed", .bool(result.1))]))
        }
    }

    var deletePolicy: Handler {
        { [self] _, _, tok in
            let author = who(tok)
            let now = now()
            let found = try await host.perform { [store, audit] s -> Bool in
                guard let cur = try PolicyFiles.current(store) else { return false }
                let v = (Int(try store.meta("notify.policy.last") ?? "0") ?? 0) + 1
                let rec = PolicyRecord(version: v, text: "", createdAt: now, createdBy: author, sha256: "", deleted: true)
                try store.setMeta(NotifyMeta.version(v), String(decoding: try JSONEncoder().encode(rec), as: UTF8.self))
                try store.setMeta("notify.policy.last", String(v))
                try store.setMeta(NotifyMeta.current, "0")
                try store.setMeta(NotifyMeta.state, "{}")
                s.policyActive = false
                try audit.record(actor: author, action: "policy.delete", target: "v\(v)", detail: .obj([("replaced", .int(cur.version))]))
                return true
            }
            if !found { throw APIError.notFound("no notification policy is set") }
            return Response(status: .noContent)
        }
    }

    /// The notification groups as the router holds them now (the active server), or as last
    /// saved (a standby): each group's receiver, labels, timers and alerts.
    var groups: Handler {
        { [self] _, _, _ in
            guard let rec = try PolicyFiles.current(store) else {
                return API.json(.obj([("policy_version", .null), ("source", .str("none")), ("groups", .arr([]))]))
            }
            let policy = try PolicyFiles.decode(rec.text, file: "policy v\(rec.version)", receivers: nil).get()
            let receivers = Dictionary(policy.allRoutes.map { ($0.path, $0.receiver) }, uniquingKeysWith: { a, _ in a })
            var source = "live"
            var state: NotifierState
            if let live = host.notifySnapshot.current {
                state = live.state
            } else {
                source = "saved"
                state = try store.meta(NotifyMeta.state).flatMap { try? JSONDecoder().decode(NotifierState.self, from: Data($0.utf8)) } ?? NotifierState()
            }
            func labels(_ l: LabelSet) -> J { .obj(l.sorted { $0.key < $1.key }.map { ($0.key, .str($0.value)) }) }
            let groups = state.groups.values.sorted { (receivers[$0.route] ?? "", $0.key) < (receivers[$1.route] ?? "", $1.key) }.map { g -> J in
                let alerts = g.alerts.values.sorted { ($0.time, $0.id) < ($1.time, $1.id) }.map { a -> J in
                    .obj([("id", .int(a.id)), ("rule", .optStr(a.labels["rule"])), ("status", .str(a.firing ? "firing" : "resolved")),
                          ("time", .time(a.time)), ("labels", labels(a.labels)), ("notified", .bool(g.notifiedFiring.contains(a.fingerprint)))])
                }
                return .obj([("group", .str(g.key)), ("route", .str(g.route)), ("receiver", .optStr(receivers[g.route])),
                             ("group_labels", labels(g.labels)), ("next_flush_at", .time(g.nextFlush)),
                             ("last_sent_at", g.lastSent.map { .time($0) } ?? .null), ("notifications_sent", .int(g.seq)), ("alerts", .arr(alerts))])
            }
            return API.json(.obj([("policy_version", .int(rec.version)), ("source", .str(source)), ("groups", .arr(groups))]))
        }
    }

    /// "This alert goes to": the routes its labels reach under the current policy, with the
    /// group each puts it in, and whether a mute interval or an inhibition holds now.
    var alertRoutes: Handler {
        { [self] _, ctx, _ in
            guard let id = Int64(try param(ctx)), let a = try store.alert(id: id) else { throw APIError.notFound("no alert with this id") }
            guard let rec = try PolicyFiles.current(store) else {
                // No policy: one webhook per alert, to each webhook receiver at or above its
                // minimum severity (a silenced alert to none).
                let sev = try await host.perform { s in s.catalog.rules.first { $0.id == a.rule }?.severity }
                let takers = try store.receivers().filter { r in
                    r.kind == "webhook" && a.silence == nil && (r.minSeverity.flatMap(Severity.init(rawValue:)).map { m in sev.map { $0 >= m } ?? true } ?? true)
                }
                return API.json(.obj([("alert", .int(id)), ("policy_version", .null), ("labels", .obj([])),
                                      ("routes", .arr(takers.map { .obj([("route", .null), ("receiver", .str($0.id)), ("group", .null), ("group_labels", .obj([])),
                                                                         ("muted_now", .bool(false))]) })),
                                      ("inhibited_by", .arr([]))]))
            }
            let policy = try PolicyFiles.decode(rec.text, file: "policy v\(rec.version)", receivers: nil).get()
            let catalog = try await host.perform { s in s.catalog }
            let na = AlertLabelling.make(a, rules: Dictionary(catalog.rules.map { ($0.id, $0) }, uniquingKeysWith: { x, _ in x }),
                                         zones: Dictionary(catalog.zones.map { ($0.id, $0.category) }, uniquingKeysWith: { x, _ in x }))
            let state = try store.meta(NotifyMeta.state).flatMap { try? JSONDecoder().decode(NotifierState.self, from: Data($0.utf8)) } ?? NotifierState()
            let inhibitedBy = state.active.values.filter { $0.fingerprint != na.fingerprint && policy.inhibits(source: $0.labels, target: na.labels) }
            let now = now()
            let routes: [J] = policy.routes(for: na.labels).map { r in
                let (key, gl) = Notifier.groupKey(r, na.labels)
                return .obj([("route", .str(r.path)), ("receiver", .str(r.receiver)), ("group", .str(key)),
                             ("group_labels", .obj(gl.sorted { $0.key < $1.key }.map { ($0.key, .str($0.value)) })),
                             ("group_wait_s", .num(Double(r.groupWait) / 1000)), ("group_interval_s", .num(Double(r.groupInterval) / 1000)),
                             ("repeat_interval_s", .num(Double(r.repeatInterval) / 1000)), ("muted_now", .bool(!policy.mayNotify(r, at: now)))])
            }
            return API.json(.obj([("alert", .int(id)), ("policy_version", .int(rec.version)),
                                  ("labels", .obj(na.labels.sorted { $0.key < $1.key }.map { ($0.key, .str($0.value)) })),
                                  ("routes", .arr(routes)),
                                  ("inhibited_by", .arr(inhibitedBy.map { .obj([("alert", .int($0.id)), ("rule", .optStr($0.labels["rule"]))]) }))]))
        }
    }
}
