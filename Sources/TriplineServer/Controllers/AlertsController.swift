import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import TriplineCore
import TriplineStore


/// Alerts: the list, one alert, the live stream (Server-Sent Events; the WebSocket is
/// `TriplineHTTP.makeWebSocketRouter`), an alert's explanation and its feedback.
struct AlertsController: Controller {
    let http: TriplineHTTP

    static var table: [(RouteSpec, KeyPath<Self, Handler>)] { [
        (RouteSpec(method: "GET", path: "/v1/alerts", roles: read, standby: true), \.listAlerts),
        (RouteSpec(method: "GET", path: "/v1/alerts/stream", roles: read), \.streamAlerts),
        (RouteSpec(method: "GET", path: "/v1/alerts/{id}", roles: read, standby: true), \.getAlert),
        (RouteSpec(method: "GET", path: "/v1/alerts/{id}/explain", roles: read, cluster: false), \.explainAlert),
        (RouteSpec(method: "POST", path: "/v1/alerts/{id}/feedback", roles: write), \.postFeedback),
        (RouteSpec(method: "GET", path: "/v1/alerts/{id}/feedback", roles: read, standby: true), \.listFeedback),
    ] }
}

extension AlertsController {
    // MARK: - Alerts

    var listAlerts: Handler {
        { [self] req, _, _ in
            var q = AlertQuery()
            let p = req.uri.queryParameters
            q.rule = p.get("rule")
            if let s = p.get("state") {
                guard s == "firing" || s == "resolved" else { throw APIError.badRequest("state must be 'firing' or 'resolved', got '\(s)'") }
                q.state = s
            }
            q.entity = p.get("entity")
            q.zone = p.get("zone")
            q.from = try timeParam(req, "from")
            q.to = try timeParam(req, "to")
            if let a = p.get("after") {
                guard let v = Int64(a) else { throw APIError.badRequest("'after' must be an alert id (a whole number)") }
                q.afterId = v
            }
            q.limit = max(1, try intParam(req, "limit", default: 100, max: 1000))
            let rows = try store.alerts(q)
            let next: J = rows.count == q.limit ? .int(rows.last!.id) : .null
            return API.json(.obj([("alerts", .arr(rows.map(\.json))), ("next", next)]))
        }
    }

    var getAlert: Handler {
        { [self] _, ctx, _ in
            guard let id = Int64(try param(ctx)), let a = try store.alert(id: id) else { throw APIError.notFound("no alert with this id") }
            return API.json(a.json)
        }
    }

    var streamAlerts: Handler {
        { [self] req, _, _ in
            var q = AlertQuery()
            q.rule = req.uri.queryParameters.get("rule")
            q.entity = req.uri.queryParameters.get("entity")
            q.zone = req.uri.queryParameters.get("zone")
            var after: Int64?
            if let h = req.headers[HTTPField.Name("Last-Event-ID")!] { after = Int64(h) }
            if let a = req.uri.queryParameters.get("after") { after = Int64(a) }
            // Subscribe first, then catch up from the store, so nothing falls in between.
            let (_, stream) = host.alerts.subscribe()
            let store = self.store
            let filter = q, start = after, heartbeat = settings.heartbeat
            let body = ResponseBody { writer in
                try await writer.write(ByteBuffer(string: ": tripline alert stream\nretry: 2000\n\n"))
                var last = start ?? Int64.max
                if let start {
                    var cq = filter
                    cq.afterId = start
                    cq.limit = 1000
                    while true {
                        let rows = try store.alerts(cq)
                        for a in rows {
                            try await writer.write(ByteBuffer(string: "id: \(a.id)\nevent: alert\ndata: \(a.json.text)\n\n"))
                            last = a.id
                        }
                        if rows.count < cq.limit { break }
                        cq.afterId = rows.last!.id
                    }
                }
                // Alerts and heartbeats in one sequence: a heartbeat write to a peer that has gone
                // fails, which ends this body and the subscription with it.
                for await item in AlertBroadcaster.withHeartbeat(stream, every: heartbeat) {
                    guard let a = item else {
                        try await writer.write(ByteBuffer(string: ":\n\n"))
                        continue
                    }
                    if last != .max && a.id <= last { continue }
                    if !AlertFilter.matches(a, filter) { continue }
                    try await writer.write(ByteBuffer(string: "id: \(a.id)\nevent: alert\ndata: \(a.json.text)\n\n"))
                }
                try await writer.finish(nil)
            }
            return Response(status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-cache"], body: body)
        }
    }

    /// The rule version's text, the evidence events, the numbers and the window of an alert.
    var explainAlert: Handler {
        { [self] _, ctx, tok in
            guard let id = Int64(try param(ctx)), let alert = try store.alert(id: id) else { throw APIError.notFound("no alert with this id") }
            guard let version = try store.ruleVersions(alert.rule).first(where: { $0.version == alert.version }),
                  case .success(let ruleDoc) = JSONDocumentParser.parse(version.json, file: "rule") else {
                throw APIError.notFound("the rule version of this alert is no longer stored")
            }
            var reader = DocReader(file: "rule")
            guard let rule = RuleCodec.decodeRule(ruleDoc, "", &reader, SensitiveTags()) else {
                throw APIError(status: .internalServerError, code: "internal", message: "the stored rule version does not decode")
            }
            let line = try JSONDocumentParser.parse(alert.line, file: "alert").get()
            let evidence = (line["evidence"]?.elements ?? []).compactMap(\.stringValue)
            var numbers: [String: String] = [:]
            var members: [String] = []
            for m in line["details"]?.members ?? [] {
                switch m.node.value {
                case .number(let d, _):
                    var b: [UInt8] = []
                    JSONText.appendNumber(d, to: &b)
                    numbers[m.key] = String(decoding: b, as: UTF8.self)
                case .array(let a):
                    members = a.compactMap(\.stringValue)
                    numbers[m.key] = members.joined(separator: ", ")
                case .null: numbers[m.key] = "infinite"
                default: break
                }
            }
            var keyText = ""
            if let e = alert.entity { keyText = e }
            if let a = alert.pairA, let b = alert.pairB { keyText = "\(a) and \(b)" }
            if keyText.isEmpty, let z = alert.zone { keyText = "zone \(z)" }
            let explanation = AlertExplanation(rule: rule, firing: alert.firing, time: alert.time, keyText: keyText, details: numbers,
                                               group: line["key"]?["group"]?.stringValue)
            let candidates = [alert.entity, alert.pairA, alert.pairB].compactMap { $0 } + members
            let resolved = try await host.resolveEvidence(evidence, candidates: candidates)
            let events: [J] = evidence.map { eid in
                if let (seq, l) = resolved[eid] { return .obj([("id", .str(eid)), ("seq", .int(seq)), ("event", .raw(l))]) }
                return .obj([("id", .str(eid)), ("event", .null), ("note", .str("no longer stored (retention or erasure)"))])
            }
            try audit.record(actor: who(tok), action: "alert.explain", target: "alert \(id)", detail: .obj([("evidence_events", .int(resolved.count))]))
            return API.json(.obj([
                ("alert", alert.json),
                ("rule", .obj([("id", .str(alert.rule)), ("version", .int(alert.version)), ("kind", .str(rule.kind.rawValue)), ("text", .raw(version.json))])),
                ("explanation", .str(explanation.sentence)),
                ("window", explanation.windowFrom.map { .obj([("from_exclusive", .time($0)), ("to", .time(explanation.windowTo!))]) } ?? .null),
                ("numbers", line["details"].map { .raw(DocJSON.encode($0)) } ?? .obj([])),
                ("evidence", .arr(events)),
            ]))
        }
    }

    // MARK: - Feedback

    var postFeedback: Handler {
        { [self] req, ctx, tok in
            guard let id = Int64(try param(ctx)), try store.alert(id: id) != nil else { throw APIError.notFound("no alert with this id") }
            let doc = try await jsonBody(req)
            guard let v = doc["verdict"]?.stringValue, v == "useful" || v == "false_positive" else {
                throw APIError.badRequest("/verdict must be \"useful\" or \"false_positive\"")
            }
            var f = Feedback(alertId: id, verdict: v, comment: doc["comment"]?.stringValue ?? "", by: who(tok), at: now())
            f.id = try store.addFeedback(f)
            try audit.record(actor: who(tok), action: "feedback.create", target: "alert \(id)", detail: .obj([("verdict", .str(v)), ("comment", .str(f.comment))]))
            return API.json(f.json, status: .created)
        }
    }

    var listFeedback: Handler {
        { [self] _, ctx, _ in
            guard let id = Int64(try param(ctx)), try store.alert(id: id) != nil else { throw APIError.notFound("no alert with this id") }
            return API.json(.obj([("feedback", .arr(try store.feedback(alertId: id).map(\.json)))]))
        }
    }
}

extension Feedback {
    /// The feedback's JSON form (the alert's feedback list, an entity's export).
    var json: J {
        .obj([("id", .int(id)), ("alert", .int(alertId)), ("verdict", .str(verdict)), ("comment", .str(comment)), ("by", .str(by)), ("at", .time(at))])
    }
}
