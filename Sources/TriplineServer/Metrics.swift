import Foundation
import TriplineCore
import TriplineStore

/// The server's counters and gauges, rendered in the Prometheus text format at `/metrics`.
public final class Metrics: @unchecked Sendable {
    public struct Counters: Sendable {
        public var eventsReceived = 0
        public var eventsDuplicate = 0
        public var eventsLate = 0
        public var batchesRefused = 0
        public var overloaded = 0
        public var alertsEmitted = 0
        public var queueDepthEvents = 0
        public var commits = 0
        public var committedRows = 0
        public var webhookDelivered = 0
        public var webhookFailed = 0
        public var webhookDead = 0
        public var outboxDepth = 0
        public var httpRequests = 0
    }

    private let lock = NSLock()
    private var c = Counters()
    private var perRule: [String: Int] = [:]
    private var watermark: Millis = .min
    /// Commit latency buckets (seconds) and their counts.
    static let buckets: [Double] = [0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1]
    private var commitBuckets = Array(repeating: 0, count: buckets.count)
    private var commitSum = 0.0
    private let started = Date()

    public init() {}

    public func add(_ k: WritableKeyPath<Counters, Int>, _ n: Int) {
        lock.lock()
        c[keyPath: k] += n
        lock.unlock()
    }

    public func set(_ k: WritableKeyPath<Counters, Int>, _ v: Int) {
        lock.lock()
        c[keyPath: k] = v
        lock.unlock()
    }

    public var counters: Counters {
        lock.lock()
        defer { lock.unlock() }
        return c
    }

    func observeCommit(nanoseconds: UInt64, rows: Int) {
        let s = Double(nanoseconds) / 1e9
        lock.lock()
        c.commits += 1
        c.committedRows += rows
        commitSum += s
        for (i, b) in Self.buckets.enumerated() where s <= b { commitBuckets[i] += 1 }
        lock.unlock()
    }

    func countAlerts(_ alerts: [StoredAlert]) {
        if alerts.isEmpty { return }
        lock.lock()
        for a in alerts { perRule[a.rule, default: 0] += 1 }
        lock.unlock()
    }

    func setWatermark(_ w: Millis) {
        lock.lock()
        watermark = w
        lock.unlock()
    }

    /// The Prometheus exposition text.
    public func render(now: Millis, subscribers: Int) -> String {
        lock.lock()
        let c = self.c, perRule = self.perRule, wm = watermark, buckets = commitBuckets, sum = commitSum
        lock.unlock()
        var out = ""
        func metric(_ name: String, _ type: String, _ help: String, _ samples: [(String, Double)]) {
            out += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
            for (labels, v) in samples {
                let value = v == v.rounded() && abs(v) < 1e15 ? String(Int64(v)) : String(v)
                out += "\(name)\(labels) \(value)\n"
            }
        }
        metric("tripline_events_received_total", "counter", "Events received in accepted batches.", [("", Double(c.eventsReceived))])
        metric("tripline_events_duplicate_total", "counter", "Events not applied because their id was already accepted.", [("", Double(c.eventsDuplicate))])
        metric("tripline_events_late_total", "counter", "Events before the watermark (stored, not applied).", [("", Double(c.eventsLate))])
        metric("tripline_batches_refused_total", "counter", "Batches refused for invalid lines.", [("", Double(c.batchesRefused))])
        metric("tripline_ingest_overloaded_total", "counter", "Batches answered 429 because the ingest queue was full.", [("", Double(c.overloaded))])
        metric("tripline_ingest_queue_events", "gauge", "Events waiting for the engine.", [("", Double(c.queueDepthEvents))])
        metric("tripline_alerts_total", "counter", "Alerts emitted, per rule.",
               perRule.keys.sorted().map { ("{rule=\"\(Self.escape($0))\"}", Double(perRule[$0]!)) })
        metric("tripline_alerts_emitted_total", "counter", "Alerts emitted, all rules.", [("", Double(c.alertsEmitted))])
        let lag = wm == .min ? 0 : Double(now - wm) / 1000
        metric("tripline_watermark_seconds", "gauge", "The engine's watermark (event time), seconds since the epoch.", [("", wm == .min ? 0 : Double(wm) / 1000)])
        metric("tripline_lag_seconds", "gauge", "Wall clock minus watermark.", [("", lag)])
        out += "# HELP tripline_commit_seconds Group commit latency.\n# TYPE tripline_commit_seconds histogram\n"
        for (i, b) in Self.buckets.enumerated() { out += "tripline_commit_seconds_bucket{le=\"\(b)\"} \(buckets[i])\n" }
        out += "tripline_commit_seconds_bucket{le=\"+Inf\"} \(c.commits)\ntripline_commit_seconds_sum \(sum)\ntripline_commit_seconds_count \(c.commits)\n"
        metric("tripline_committed_rows_total", "counter", "Log rows committed.", [("", Double(c.committedRows))])
        metric("tripline_webhook_deliveries_total", "counter", "Webhook delivery attempts by outcome.",
               [("{outcome=\"delivered\"}", Double(c.webhookDelivered)), ("{outcome=\"failed\"}", Double(c.webhookFailed)),
                ("{outcome=\"dead\"}", Double(c.webhookDead))])
        metric("tripline_webhook_outbox_depth", "gauge", "Deliveries waiting in the outbox.", [("", Double(c.outboxDepth))])
        metric("tripline_stream_subscribers", "gauge", "Live alert stream subscribers.", [("", Double(subscribers))])
        metric("tripline_http_requests_total", "counter", "HTTP requests served.", [("", Double(c.httpRequests))])
        metric("tripline_uptime_seconds", "gauge", "Seconds since start.", [("", Date().timeIntervalSince(started).rounded())])
        return out
    }

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"").replacingOccurrences(of: "\n", with: "\\n")
    }
}
