import AsyncHTTPClient
import Crypto
import Foundation
import NIOCore
import NIOHTTP1
import TriplineCore
import TriplineStore

public struct WebhookSettings: Sendable {
    /// Attempts before a delivery becomes dead (a dead letter, listable and re-drivable).
    public var maxAttempts = 8
    /// First retry delay; each further one doubles, up to `maxBackoffMs`, with +-20 % jitter.
    public var backoffMs: Millis = 1000
    public var maxBackoffMs: Millis = 300_000
    /// A receiver that does not answer within this many seconds has failed this attempt.
    public var timeoutSeconds = 10.0
    /// Deliveries in flight at once.
    public var concurrency = 16
    public init() {}
}

/// Standard Webhooks signing (https://www.standardwebhooks.com): the secret is `whsec_` +
/// base64 of the key; the signature is `v1,` + base64(HMAC-SHA256(key, "id.timestamp.body")).
public enum WebhookSignature {
    public static func newSecret() -> String {
        var g = SystemRandomNumberGenerator()
        return "whsec_" + Data((0..<24).map { _ in UInt8.random(in: 0...255, using: &g) }).base64EncodedString()
    }

    public static func sign(secret: String, id: String, timestamp: Int64, body: [UInt8]) -> String {
        let keyText = secret.hasPrefix("whsec_") ? String(secret.dropFirst(6)) : secret
        let key = SymmetricKey(data: Data(base64Encoded: keyText) ?? Data(keyText.utf8))
        var msg = Array("\(id).\(timestamp).".utf8)
        msg += body
        let mac = HMAC<SHA256>.authenticationCode(for: msg, using: key)
        return "v1," + Data(mac).base64EncodedString()
    }
}

/// Delivers the durable outbox: at least once, with a stable idempotency key per alert
/// (`webhook-id: alert-<id>`), exponential backoff, and dead letters after `maxAttempts`.
/// It runs beside the engine and only reads and updates the outbox, so a slow or failing
/// receiver never slows ingestion.
public final class WebhookDispatcher: @unchecked Sendable {
    let store: any TriplineStore
    let metrics: Metrics
    let settings: WebhookSettings
    /// AsyncHTTPClient: a pool of keep-alive connections per receiver (at most
    /// `concurrency` each), a connect timeout and a deadline per request.
    let client: HTTPClient
    private let lock = NSLock()
    private var woken = false

    let clock: @Sendable () -> Millis
    /// NATS receivers' connections.
    let nats = NATSPublisher()
    /// MQTT receivers' connections.
    let mqtt = MQTTPublisher()
    /// Email receivers.
    let smtp = SMTPSender()

    public init(store: any TriplineStore, metrics: Metrics, settings: WebhookSettings, clock: @escaping @Sendable () -> Millis = WallClock.system) {
        self.clock = clock
        self.store = store
        self.metrics = metrics
        self.settings = settings
        var config = HTTPClient.Configuration(redirectConfiguration: .disallow)
        let ms = Int64(settings.timeoutSeconds * 1000)
        config.timeout = HTTPClient.Configuration.Timeout(connect: .milliseconds(min(ms, 5000)), read: .milliseconds(ms))
        config.connectionPool = HTTPClient.Configuration.ConnectionPool(idleTimeout: .seconds(60),
                                                                          concurrentHTTP1ConnectionsPerHostSoftLimit: settings.concurrency)
        client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: config)
    }

    deinit { try? client.syncShutdown() }

    /// Closes the connection pool (after the last delivery).
    public func shutdown() async {
        try? await client.shutdown()
    }

    /// New deliveries were committed: look at once instead of at the next poll.
    public func notify() {
        lock.lock()
        woken = true
        lock.unlock()
    }

    private func takeWoken() -> Bool {
        lock.lock()
        defer { lock.unlock() }
        let w = woken
        woken = false
        return w
    }

    func now() -> Millis { clock() }

    public func run() async {
        // The outbox depth gauge is a count over the outbox index: at most once a second, so a
        // deep backlog costs no more per delivery than a shallow one.
        var depthAt: Millis = 0
        while !Task.isCancelled {
            let due = (try? store.dueDeliveries(now: now(), limit: 256)) ?? []
            if now() - depthAt >= 1000, let depth = try? store.pendingDeliveryCount() {
                metrics.set(\.outboxDepth, depth)
                depthAt = now()
            }
            if due.isEmpty {
                for _ in 0..<5 {
                    if takeWoken() || Task.isCancelled { break }
                    try? await Task.sleep(nanoseconds: 50_000_000)
                }
                continue
            }
            await deliverAll(due)
        }
    }

    /// Attempts each delivery, `settings.concurrency` at a time.
    func deliverAll(_ due: [Delivery]) async {
        let receivers = Dictionary(((try? store.receivers()) ?? []).map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        await withTaskGroup(of: Void.self) { group in
            var running = 0
            for d in due {
                if running >= settings.concurrency {
                    await group.next()
                    running -= 1
                }
                group.addTask { await self.deliver(d, receiver: receivers[d.receiver]) }
                running += 1
            }
        }
    }

    /// At shutdown: attempts the deliveries due now (those the last batches queued among
    /// them), round after round, until none is due or `seconds` have passed. What is left
    /// stays in the outbox for the next server.
    public func flush(seconds: Double) async {
        let end = ContinuousClock.now + .milliseconds(Int64(seconds * 1000))
        while ContinuousClock.now < end {
            let due = (try? store.dueDeliveries(now: now(), limit: 256)) ?? []
            if due.isEmpty { return }
            await deliverAll(due)
        }
    }

    func deliver(_ d: Delivery, receiver: Receiver?) async {
        var d = d
        let now = self.now()
        // A group notification of the policy (its body and key were fixed when it was flushed),
        // or one alert.
        var body: [UInt8] = []
        var msgId = ""
        if let receiver, let text = d.notification, case .success(let doc) = JSONDocumentParser.parse(text, file: "notification"),
           let key = doc["key"]?.stringValue {
            let status = doc["status"]?.stringValue ?? "firing"
            body = Array(J.obj([("type", .str("notification.\(status)")), ("timestamp", .time(now)), ("data", .raw(text))]).text.utf8)
            msgId = key
            _ = receiver
        } else if d.notification == nil, receiver != nil, let alert = try? store.alert(id: d.alertId) {
            body = Array(J.obj([("type", .str(alert.firing ? "alert.firing" : "alert.resolved")), ("timestamp", .time(now)), ("data", alert.json)]).text.utf8)
            msgId = "alert-\(alert.id)"
        }
        guard let receiver, !msgId.isEmpty, receiver.kind == "webhook" || d.notification != nil else {
            d.state = "dead"
            d.lastError = receiver == nil ? "receiver deleted" : msgId.isEmpty ? (d.notification == nil ? "alert no longer stored" : "notification body unreadable")
                : "a \(receiver!.kind) receiver takes group notifications only (set a notification policy)"
            d.updatedAt = now
            try? store.updateDelivery(d)
            return
        }
        d.attempts += 1
        var failure: String?
        switch receiver.kind {
        case "email":
            failure = await smtp.send(receiver, notification: d.notification ?? "", key: msgId, now: now)
        case "mqtt":
            failure = await mqtt.publish(url: receiver.url, topic: ReceiverKinds.config(receiver)["topic"] ?? "",
                                         data: ReceiverKinds.payload(receiver, notification: d.notification ?? ""))
        case "nats":
            let cfg = ReceiverKinds.config(receiver)
            failure = await nats.publish(url: receiver.url, subject: cfg["subject"] ?? "", stream: cfg["stream"], msgId: msgId,
                                         data: ReceiverKinds.payload(receiver, notification: d.notification ?? ""))
        default:
            var req = HTTPClientRequest(url: receiver.url)
            req.method = .POST
            req.headers.add(name: "Content-Type", value: "application/json")
            req.headers.add(name: "User-Agent", value: "tripline")
            if receiver.kind == "webhook" {
                // A group notification through the receiver's template, when it has one.
                if let text = d.notification, ReceiverKinds.config(receiver)["template"] != nil {
                    body = ReceiverKinds.payload(receiver, notification: text)
                }
                let ts = now / 1000
                req.headers.add(name: "webhook-id", value: msgId)
                req.headers.add(name: "webhook-timestamp", value: String(ts))
                req.headers.add(name: "webhook-signature", value: WebhookSignature.sign(secret: receiver.secret, id: msgId, timestamp: ts, body: body))
            } else {
                body = ReceiverKinds.httpBody(receiver, notification: d.notification ?? "", key: msgId)
            }
            req.body = .bytes(ByteBuffer(bytes: body))
            do {
                let resp = try await client.execute(req, deadline: .now() + .milliseconds(Int64(settings.timeoutSeconds * 1000)))
                // Read (and drop) at most 64 KiB of the answer, so the connection can be reused.
                _ = try? await resp.body.collect(upTo: 64 << 10)
                let code = Int(resp.status.code)
                if !(200..<300).contains(code) { failure = "HTTP \(code)" }
            } catch let e as HTTPClientError {
                failure = e == .deadlineExceeded || e == .readTimeout ? "no answer within \(settings.timeoutSeconds) s" : "\(e)"
            } catch {
                failure = "\(error)"
            }
        }
        d.updatedAt = self.now()
        if let failure {
            d.lastError = failure
            metrics.add(\.webhookFailed, 1)
            if d.attempts >= settings.maxAttempts {
                d.state = "dead"
                metrics.add(\.webhookDead, 1)
            } else {
                let base = min(settings.maxBackoffMs, settings.backoffMs << min(20, d.attempts - 1))
                let jitter = Millis(Double(base) * Double.random(in: -0.2...0.2))
                d.nextAttemptAt = d.updatedAt + base + jitter
            }
        } else {
            d.state = "delivered"
            d.lastError = nil
            metrics.add(\.webhookDelivered, 1)
        }
        try? store.updateDelivery(d)
    }
}
