import Foundation
import Hummingbird
import TriplineCore
import TriplineStore

/// Notifications: silences, webhook receivers and their deliveries (the outbox).
struct NotifyController: Controller {
    let http: TriplineHTTP

    static var table: [(RouteSpec, KeyPath<Self, Handler>)] { [
        (RouteSpec(method: "GET", path: "/v1/silences", roles: read, standby: true), \.listSilences),
        (RouteSpec(method: "POST", path: "/v1/silences", roles: write), \.postSilence),
        (RouteSpec(method: "DELETE", path: "/v1/silences/{id}", roles: write), \.deleteSilence),
        (RouteSpec(method: "GET", path: "/v1/webhooks", roles: write, standby: true), \.listWebhooks),
        (RouteSpec(method: "POST", path: "/v1/webhooks", roles: write), \.postWebhook),
        (RouteSpec(method: "DELETE", path: "/v1/webhooks/{id}", roles: write), \.deleteWebhook),
        (RouteSpec(method: "GET", path: "/v1/webhooks/deliveries", roles: write, standby: true), \.listDeliveries),
        (RouteSpec(method: "POST", path: "/v1/webhooks/deliveries/redrive", roles: write), \.redrive),
    ] }
}

extension NotifyController {
    /// The idempotency key a delivery is sent under.
    static func webhookId(_ d: Delivery) -> String {
        if let text = d.notification, case .success(let doc) = JSONDocumentParser.parse(text, file: "notification"), let k = doc["key"]?.stringValue { return k }
        return "alert-\(d.alertId)"
    }

    // MARK: - Silences

    func silenceJSON(_ s: Silence, now: Millis) -> J {
        .obj([("id", .int(s.id)),
              ("matchers", .obj([("rule", .optStr(s.rule)), ("zone", .optStr(s.zone)), ("entity", .optStr(s.entity)), ("severity", .optStr(s.severity))])),
              ("starts_at", .time(s.startsAt)), ("ends_at", .time(s.endsAt)), ("active", .bool(s.startsAt <= now && now < s.endsAt)),
              ("creator", .str(s.creator)), ("comment", .str(s.comment)), ("created_at", .time(s.createdAt))])
    }

    var listSilences: Handler {
        { [self] _, _, _ in
            let now = now()
            return API.json(.obj([("silences", .arr(try store.silences().map { silenceJSON($0, now: now) }))]))
        }
    }

    var postSilence: Handler {
        { [self] req, _, tok in
            let doc = try await jsonBody(req)
            guard let m = doc["matchers"], m.members != nil else {
                throw APIError.badRequest("a silence needs \"matchers\": {rule, zone, entity, severity} (at least one), \"ends_at\" or \"duration\", and a \"comment\"")
            }
            for k in m.members!.map(\.key) where !["rule", "zone", "entity", "severity"].contains(k) {
                throw APIError.badRequest("/matchers/\(k) is not a matcher; use rule, zone, entity or severity")
            }
            let now = now()
            var s = Silence(rule: try optionalString(m, "rule", pointer: "/matchers"), zone: try optionalString(m, "zone", pointer: "/matchers"),
                            entity: try optionalString(m, "entity", pointer: "/matchers"), severity: try optionalString(m, "severity", pointer: "/matchers"),
                            startsAt: try timeField(doc, "starts_at") ?? now, endsAt: 0, creator: who(tok), comment: "", createdAt: now)
            if s.rule == nil && s.zone == nil && s.entity == nil && s.severity == nil {
                throw APIError.badRequest("a silence needs at least one matcher (rule, zone, entity or severity); there is no silence of everything")
            }
            if let sev = s.severity, Severity(rawValue: sev) == nil {
                throw APIError.badRequest("/matchers/severity \"\(sev)\" is not one of info, low, medium, high, critical")
            }
            if let e = try timeField(doc, "ends_at") {
                s.endsAt = e
            } else if let d = doc["duration"]?.stringValue {
                switch DurationText.parse(d) {
                case .failure(let e): throw APIError.badRequest("/duration: \(e.message)")
                case .success(let ms):
                    guard ms > 0 else { throw APIError.badRequest("/duration must be longer than 0, such as 2h") }
                    s.endsAt = s.startsAt + ms
                }
            } else {
                throw APIError.badRequest("a silence needs \"ends_at\" (RFC 3339) or \"duration\" (e.g. 2h)")
            }
            guard s.endsAt > s.startsAt else { throw APIError.badRequest("ends_at must be after starts_at") }
            guard let c = doc["comment"]?.stringValue, !c.trimmingCharacters(in: .whitespaces).isEmpty else {
                throw APIError.badRequest("a silence needs a \"comment\" saying why")
            }
            s.comment = c
            s.id = try store.addSilence(s)
            // Entities are named by pseudonym in the audit log (it is never rewritten).
            var named = s
            named.entity = s.entity.map(audit.pseudonym)
            try audit.record(actor: who(tok), action: "silence.create", target: String(s.id), detail: silenceJSON(named, now: now))
            try await host.refreshNotifications()
            return API.json(silenceJSON(s, now: now), status: .created)
        }
    }

    var deleteSilence: Handler {
        { [self] _, ctx, tok in
            guard let id = Int64(try param(ctx)), try store.endSilence(id: id, at: now()) else { throw APIError.notFound("no silence with this id") }
            try audit.record(actor: who(tok), action: "silence.end", target: String(id))
            try await host.refreshNotifications()
            return Response(status: .noContent)
        }
    }

    // MARK: - Webhooks

    func receiverJSON(_ r: Receiver) -> J {
        var f: [(String, J)] = [("id", .str(r.id)), ("kind", .str(r.kind)), ("url", .str(r.url)), ("min_severity", .optStr(r.minSeverity))]
        for (k, v) in ReceiverKinds.config(r).sorted(by: { $0.key < $1.key }) { f.append((k, .str(v))) }
        f.append(("created_at", .time(r.createdAt)))
        return .obj(f)
    }

    var listWebhooks: Handler {
        { [self] _, _, _ in API.json(.obj([("webhooks", .arr(try store.receivers().map(receiverJSON)))])) }
    }

    /// A receiver of any kind: `webhook` (the default: Standard Webhooks, signed), `slack`
    /// (an incoming-webhook URL), `pagerduty` (Events API v2: the events URL and a routing key)
    /// or `nats` (a server URL and a JetStream subject).
    var postWebhook: Handler {
        { [self] req, _, tok in
            let doc = try await jsonBody(req)
            let kind = try optionalString(doc, "kind", pointer: "") ?? "webhook"
            guard ReceiverKinds.kinds.contains(kind) else {
                throw APIError.badRequest("/kind \"\(kind)\" is not one of \(ReceiverKinds.kinds.joined(separator: ", "))")
            }
            let allowed = ["kind"] + ReceiverKinds.fields(kind)
            for k in doc.members!.map(\.key) where !allowed.contains(k) {
                throw APIError.badRequest("/\(k) is not a field of a \(kind) receiver; it takes \(ReceiverKinds.fields(kind).joined(separator: ", "))")
            }
            var u = try optionalString(doc, "url", pointer: "")
            if kind == "pagerduty" && u == nil { u = "https://events.pagerduty.com/v2/enqueue" }
            guard let u, let url = URL(string: u), let scheme = url.scheme, url.host != nil,
                  (kind == "nats" ? ["nats"] : kind == "mqtt" ? ["mqtt"] : kind == "email" ? ["smtp"] : ["http", "https"]).contains(scheme) else {
                throw APIError.badRequest(kind == "nats" ? "/url must be a NATS server URL such as nats://127.0.0.1:4222"
                    : kind == "mqtt" ? "/url must be an MQTT broker URL such as mqtt://127.0.0.1:1883"
                    : kind == "email" ? "/url must be an SMTP relay URL such as smtp://127.0.0.1:25" : "/url must be an http(s) URL")
            }
            let minSev = try optionalString(doc, "min_severity", pointer: "")
            if let m = minSev, Severity(rawValue: m) == nil { throw APIError.badRequest("/min_severity \"\(m)\" is not one of info, low, medium, high, critical") }
            var config: [(String, J)] = []
            var secret = ""
            // A payload template, for every kind but email (whose subject and body come below).
            if kind != "email", let t = try optionalString(doc, "template", pointer: "") {
                if let e = AnnotationTemplate.check(t) { throw APIError.badRequest("/template is not a valid Mustache template: \(e)") }
                config.append(("template", .str(t)))
            }
            if kind == "pagerduty" {
                guard let k = try optionalString(doc, "routing_key", pointer: "") else {
                    throw APIError.badRequest("a pagerduty receiver needs \"routing_key\": the integration key of a PagerDuty service (Events API v2)")
                }
                secret = k
            }
            switch kind {
            case "nats":
                guard let subject = try optionalString(doc, "subject", pointer: ""), !subject.contains(" "), !subject.contains("*"), !subject.contains(">") else {
                    throw APIError.badRequest("a nats receiver needs \"subject\": a JetStream subject without spaces or wildcards, such as alerts.depot")
                }
                config.append(("subject", .str(subject)))
                if let stream = try optionalString(doc, "stream", pointer: "") { config.append(("stream", .str(stream))) }
            case "email":
                guard let from = try optionalString(doc, "from", pointer: ""), from.contains("@"), !from.contains(" "), !from.contains("\n") else {
                    throw APIError.badRequest("an email receiver needs \"from\": the sender address, such as tripline@depot.example")
                }
                guard let to = try optionalString(doc, "to", pointer: "") else {
                    throw APIError.badRequest("an email receiver needs \"to\": one or more addresses, separated by commas")
                }
                let addrs = to.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
                if let bad = addrs.first(where: { !$0.contains("@") || $0.contains(" ") || $0.contains("\n") || $0.contains("<") || $0.contains(">") }) {
                    throw APIError.badRequest("/to: \"\(bad)\" is not an email address")
                }
                config += [("from", .str(from)), ("to", .str(addrs.joined(separator: ",")))]
                for key in ["subject", "template"] {
                    if let t = try optionalString(doc, key, pointer: "") {
                        if let e = AnnotationTemplate.check(t) { throw APIError.badRequest("/\(key) is not a valid Mustache template: \(e)") }
                        config.append((key, .str(t)))
                    }
                }
            case "mqtt":
                guard let topic = try optionalString(doc, "topic", pointer: ""), !topic.contains("+"), !topic.contains("#") else {
                    throw APIError.badRequest("an mqtt receiver needs \"topic\": a topic to publish to, without wildcards, such as tripline/alerts")
                }
                config.append(("topic", .str(topic)))
            case "webhook":
                secret = try optionalString(doc, "secret", pointer: "") ?? WebhookSignature.newSecret()
            default:
                break
            }
            let r = Receiver(id: (kind == "webhook" ? "wh_" : kind == "email" ? "em_" : kind.prefix(2) + "_") + Tokens.randomHex(6), url: u, secret: secret, minSeverity: minSev,
                             createdAt: now(), kind: kind, config: config.isEmpty ? nil : J.obj(config).text)
            try store.addReceiver(r)
            try audit.record(actor: who(tok), action: "webhook.create", target: r.id,
                             detail: .obj([("kind", .str(kind)), ("url", .str(u)), ("min_severity", .optStr(minSev))]))
            try await host.refreshNotifications()
            guard case .obj(var fields) = receiverJSON(r) else { fatalError() }
            if kind == "webhook" {
                fields.append(("secret", .str(secret)))
                fields.append(("note", .str("verify deliveries with this secret (Standard Webhooks: webhook-id, webhook-timestamp, webhook-signature); it is not shown again")))
            }
            return API.json(.obj(fields), status: .created)
        }
    }

    var deleteWebhook: Handler {
        { [self] _, ctx, tok in
            let id = try param(ctx)
            guard try store.deleteReceiver(id: id) else { throw APIError.notFound("no webhook receiver with this id") }
            try audit.record(actor: who(tok), action: "webhook.delete", target: id)
            try await host.refreshNotifications()
            return Response(status: .noContent)
        }
    }

    var listDeliveries: Handler {
        { [self] req, _, _ in
            let p = req.uri.queryParameters
            if let s = p.get("state"), !["pending", "delivered", "dead"].contains(s) {
                throw APIError.badRequest("state must be pending, delivered or dead")
            }
            let after = Int64(p.get("after") ?? "0") ?? 0
            let limit = max(1, try intParam(req, "limit", default: 100, max: 1000))
            let rows = try store.deliveries(state: p.get("state"), receiver: p.get("receiver"), afterId: after, limit: limit)
            let list: [J] = rows.map {
                .obj([("id", .int($0.id)), ("receiver", .str($0.receiver)), ("alert", .int($0.alertId)), ("webhook_id", .str(Self.webhookId($0))), ("kind", .str($0.notification == nil ? "alert" : "group")),
                      ("state", .str($0.state)), ("attempts", .int($0.attempts)), ("next_attempt_at", .time($0.nextAttemptAt)),
                      ("last_error", .optStr($0.lastError)), ("updated_at", .time($0.updatedAt))])
            }
            return API.json(.obj([("deliveries", .arr(list)), ("next", rows.count == limit ? .int(rows.last!.id) : .null)]))
        }
    }

    var redrive: Handler {
        { [self] req, _, _ in
            let doc = try await jsonBody(req)
            var ids: [Int64]?
            if let list = doc["ids"]?.elements {
                ids = try list.enumerated().map { i, n in
                    guard let d = n.numberValue, d.isFinite, d == d.rounded(), d >= 1, d <= 9_007_199_254_740_991 else {
                        throw APIError.badRequest("/ids/\(i) must be a delivery id (a whole number >= 1)")
                    }
                    return Int64(d)
                }
            }
            let n = try store.redrive(ids: ids, now: now())
            host.onDeliveriesQueued?()
            return API.json(.obj([("redriven", .int(n))]))
        }
    }
}
