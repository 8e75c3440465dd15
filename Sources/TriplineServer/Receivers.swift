import Foundation
import TriplineCore
import TriplineMQTT
import TriplineNATS
import TriplineStore

/// Receiver kinds beyond Standard Webhooks: what each needs, and the body each is sent.
/// Group notifications (docs/notifications.md) go to every kind; single alerts (no policy)
/// only to `webhook` receivers.
enum ReceiverKinds {
    static let kinds = ["webhook", "slack", "pagerduty", "nats", "mqtt", "email"]

    /// The fields a kind takes in `POST /v1/webhooks` (besides `kind`).
    static func fields(_ kind: String) -> [String] {
        switch kind {
        case "slack": return ["url", "template"]
        case "pagerduty": return ["url", "routing_key", "template"]
        case "nats": return ["url", "subject", "stream", "template"]
        case "mqtt": return ["url", "topic", "template"]
        case "email": return ["url", "from", "to", "subject", "template"]
        default: return ["url", "min_severity", "secret", "template"]
        }
    }

    static let defaultSlackTemplate = """
        [{{status}}] {{receiver}}: {{count_firing}} firing, {{count_resolved}} resolved ({{group_text}})
        {{#alerts}}- {{labels.rule}}{{#labels.entity}} {{labels.entity}}{{/labels.entity}}{{#labels.zone}} in {{labels.zone}}{{/labels.zone}}: {{status}}{{#annotations.summary}} - {{annotations.summary}}{{/annotations.summary}}
        {{/alerts}}
        """
    static let defaultPagerDutySummary = "{{count_firing}} firing: {{group_text}}{{#first.annotations.summary}} - {{first.annotations.summary}}{{/first.annotations.summary}}"

    /// A notification body (JSON text) as a Mustache context, with a few derived fields.
    static func context(_ body: String) -> [String: Any] {
        guard case .success(let doc) = JSONDocumentParser.parse(body, file: "notification"), var ctx = plain(doc) as? [String: Any] else { return [:] }
        let alerts = (ctx["alerts"] as? [[String: Any]]) ?? []
        ctx["count_firing"] = alerts.filter { ($0["status"] as? String) == "firing" }.count
        ctx["count_resolved"] = alerts.filter { ($0["status"] as? String) == "resolved" }.count
        ctx["first"] = alerts.first ?? [:]
        let gl = (ctx["group_labels"] as? [String: Any]) ?? [:]
        ctx["group_text"] = gl.keys.sorted().map { "\($0)=\(gl[$0] ?? "")" }.joined(separator: ", ")
        return ctx
    }

    static func plain(_ n: DocNode) -> Any {
        switch n.value {
        case .null: return ""
        case .bool(let b): return b
        case .number(let d, let isInt): return isInt && abs(d) < 1e15 ? Int(d) as Any : d as Any
        case .string(let s): return s
        case .array, .pair: return (n.elements ?? []).map(plain)
        case .object(let m): return Dictionary(m.map { ($0.key, plain($0.node)) }, uniquingKeysWith: { a, _ in a })
        }
    }

    static func config(_ r: Receiver) -> [String: String] {
        guard let c = r.config, case .success(let doc) = JSONDocumentParser.parse(c, file: "receiver") else { return [:] }
        var out: [String: String] = [:]
        for m in doc.members ?? [] { if let s = m.node.stringValue { out[m.key] = s } }
        return out
    }

    /// The bytes a webhook, NATS or MQTT receiver sends for a group notification: its
    /// `template` rendered over the notification, or else the notification's JSON.
    static func payload(_ r: Receiver, notification body: String) -> [UInt8] {
        guard let t = config(r)["template"], let tpl = try? AnnotationTemplate(t) else { return Array(body.utf8) }
        return Array(tpl.render(context(body)).utf8)
    }

    /// PagerDuty's severities from Tripline's.
    static func pagerDutySeverity(_ s: String?) -> String {
        switch s {
        case "critical": return "critical"
        case "high": return "error"
        case "medium": return "warning"
        default: return "info"
        }
    }

    /// The HTTP body for a group notification to a Slack or PagerDuty receiver.
    static func httpBody(_ r: Receiver, notification body: String, key: String) -> [UInt8] {
        let ctx = context(body)
        let cfg = config(r)
        if r.kind == "slack" {
            let text = (try? AnnotationTemplate(cfg["template"] ?? defaultSlackTemplate))?.render(ctx) ?? body
            return Array(J.obj([("text", .str(text))]).text.utf8)
        }
        // PagerDuty Events API v2: one event per group notification; the group (and its life)
        // is the incident (dedup_key), so retries and later flushes update the same incident.
        let alerts = (ctx["alerts"] as? [[String: Any]]) ?? []
        let firing = (ctx["count_firing"] as? Int ?? 0) > 0
        let summary = String(((try? AnnotationTemplate(cfg["template"] ?? defaultPagerDutySummary))?.render(ctx) ?? key).prefix(1024))
        let severities = alerts.compactMap { ($0["labels"] as? [String: Any])?["severity"] as? String }
        let worst = ["critical", "high", "medium", "low", "info"].first { severities.contains($0) }
        let incident = key.split(separator: "-").dropLast().joined(separator: "-")
        var details: [(String, J)] = []
        if case .success(let doc) = JSONDocumentParser.parse(body, file: "n"), let gl = doc["group_labels"] {
            details.append(("group_labels", .raw(gl.jsonText)))
            details.append(("alerts", .int(alerts.count)))
        }
        let payload: J = .obj([("summary", .str(summary.isEmpty ? key : summary)), ("source", .str("tripline")),
                               ("severity", .str(pagerDutySeverity(worst))), ("timestamp", .str(EventTime.format(WallClock.system()))),
                               ("component", .str((ctx["route"] as? String) ?? "")), ("group", .str(incident)),
                               ("custom_details", .obj(details))])
        return Array(J.obj([("routing_key", .str(r.secret)), ("event_action", .str(firing ? "trigger" : "resolve")),
                            ("dedup_key", .str("tripline-" + incident)), ("client", .str("Tripline")), ("payload", payload)]).text.utf8)
    }
}

/// NATS receivers: one connection per server URL, JetStream publish with `Nats-Msg-Id` set to
/// the notification's key (the stream drops a repeat within its duplicate window). The C
/// client blocks, so each publish runs on this publisher's own queue.
final class NATSPublisher: @unchecked Sendable {
    private let queue = DispatchQueue(label: "tripline.nats-receivers")
    private var connections: [String: NATSConnection] = [:]
    private var streamsEnsured: Set<String> = []

    func publish(url: String, subject: String, stream: String?, msgId: String, data: [UInt8]) async -> String? {
        await withCheckedContinuation { (c: CheckedContinuation<String?, Never>) in
            queue.async { [self] in
                do {
                    let conn: NATSConnection
                    if let existing = connections[url] {
                        conn = existing
                    } else {
                        conn = try NATSConnection(servers: [url], name: "tripline-receiver", timeout: .seconds(5))
                        connections[url] = conn
                    }
                    if let stream, !streamsEnsured.contains(url + " " + stream) {
                        try conn.ensureStream(StreamSettings(name: stream, subjects: [subject]))
                        streamsEnsured.insert(url + " " + stream)
                    }
                    _ = try conn.publish(OutgoingMessage(subject: subject, data: data, msgId: msgId))
                    c.resume(returning: nil)
                } catch {
                    // A broken connection is rebuilt on the next attempt.
                    connections[url] = nil
                    c.resume(returning: "\(error)")
                }
            }
        }
    }
}

/// MQTT receivers: one connection per broker URL; each notification is published at QoS 1
/// (its JSON, whose `key` lets a consumer drop a repeat) and counts as delivered at the
/// broker's PUBACK.
final class MQTTPublisher: @unchecked Sendable {
    private let queue = DispatchQueue(label: "tripline.mqtt-receivers")
    private var clients: [String: MQTTClient] = [:]

    func publish(url: String, topic: String, data: [UInt8]) async -> String? {
        await withCheckedContinuation { (c: CheckedContinuation<String?, Never>) in
            queue.async { [self] in
                do {
                    let client: MQTTClient
                    if let existing = clients[url], existing.isConnected {
                        client = existing
                    } else {
                        // A client closes once: forget it before trying a new one.
                        clients[url]?.close()
                        clients[url] = nil
                        guard let u = URL(string: url), let host = u.host else { throw MQTTError(call: "url \(url)", code: 3) }
                        client = try MQTTClient(host: host, port: u.port ?? 1883, clientId: "tripline-\(ProcessInfo.processInfo.processIdentifier)-\(clients.count)")
                        clients[url] = client
                    }
                    try client.publish(topic: topic, payload: data)
                    c.resume(returning: nil)
                } catch {
                    c.resume(returning: "\(error)")
                }
            }
        }
    }
}
