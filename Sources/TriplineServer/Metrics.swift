import Foundation
import Metrics
import NIOConcurrencyHelpers
import Prometheus
import TriplineCore
import TriplineStore

/// The server's metrics, recorded through swift-metrics (`Counter`, `Gauge`, `Timer`) into a
/// swift-prometheus registry of this server's own, and rendered in the Prometheus text format
/// at `/metrics` together with the process-wide registry that Hummingbird's
/// `MetricsMiddleware` records every route's requests and latency into.
///
/// The counters are also kept as plain numbers (`counters`), for the server's own reads.
public final class Metrics: @unchecked Sendable {
    public struct Counters: Sendable {
        public var eventsReceived = 0
        public var eventsDuplicate = 0
        public var eventsLate = 0
        public var batchesRefused = 0
        /// Batches decoded (and their positions' zones looked up) on the decode stage, and
        /// batches the engine thread decoded itself (the stage had no copy of the current
        /// engine's names yet: after a start, a catalog change or a rebuild).
        public var batchesDecodedAhead = 0
        public var batchesDecodedOnEngine = 0
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

    /// This server's metrics (a process may run several servers, in tests).
    public let registry = PrometheusCollectorRegistry()
    let factory: PrometheusMetricsFactory
    private let lock = NSLock()
    private var c = Counters()
    private let counterFor: [WritableKeyPath<Counters, Int>: CoreMetrics.Counter]
    private let gaugeFor: [WritableKeyPath<Counters, Int>: CoreMetrics.Gauge]
    private var perRule: [String: CoreMetrics.Counter] = [:]
    private let commitTimer: CoreMetrics.Timer
    private let watermarkGauge, lagGauge, subscribersGauge, uptimeGauge: CoreMetrics.Gauge
    private var watermark: Millis = .min
    /// Group-commit latency buckets (seconds).
    static let buckets: [Double] = [0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1]
    private let started = Date()

    public init() {
        var f = PrometheusMetricsFactory(registry: registry)
        f.durationHistogramBuckets["tripline_commit_seconds"] = Self.buckets.map { .nanoseconds(Int64(($0 * 1e9).rounded())) }
        factory = f
        func counter(_ name: String, _ dims: [(String, String)] = []) -> CoreMetrics.Counter { CoreMetrics.Counter(label: name, dimensions: dims, factory: f) }
        func gauge(_ name: String) -> CoreMetrics.Gauge { CoreMetrics.Gauge(label: name, dimensions: [], factory: f) }
        counterFor = [
            \.eventsReceived: counter("tripline_events_received_total"),
            \.eventsDuplicate: counter("tripline_events_duplicate_total"),
            \.eventsLate: counter("tripline_events_late_total"),
            \.batchesRefused: counter("tripline_batches_refused_total"),
            \.overloaded: counter("tripline_ingest_overloaded_total"),
            \.batchesDecodedAhead: counter("tripline_ingest_batches_decoded_total", [("on", "decode_stage")]),
            \.batchesDecodedOnEngine: counter("tripline_ingest_batches_decoded_total", [("on", "engine")]),
            \.alertsEmitted: counter("tripline_alerts_emitted_total"),
            \.committedRows: counter("tripline_committed_rows_total"),
            \.webhookDelivered: counter("tripline_webhook_deliveries_total", [("outcome", "delivered")]),
            \.webhookFailed: counter("tripline_webhook_deliveries_total", [("outcome", "failed")]),
            \.webhookDead: counter("tripline_webhook_deliveries_total", [("outcome", "dead")]),
            \.httpRequests: counter("tripline_http_requests_total"),
        ]
        gaugeFor = [\.queueDepthEvents: gauge("tripline_ingest_queue_events"), \.outboxDepth: gauge("tripline_webhook_outbox_depth")]
        commitTimer = CoreMetrics.Timer(label: "tripline_commit_seconds", dimensions: [], factory: f)
        watermarkGauge = gauge("tripline_watermark_seconds")
        lagGauge = gauge("tripline_lag_seconds")
        subscribersGauge = gauge("tripline_stream_subscribers")
        uptimeGauge = gauge("tripline_uptime_seconds")
    }

    /// The registry of the process-wide swift-metrics backend (bootstrapped once, on first
    /// use): Hummingbird's `MetricsMiddleware` records requests there.
    public static let processRegistry: PrometheusCollectorRegistry = {
        let r = PrometheusCollectorRegistry()
        var f = PrometheusMetricsFactory(registry: r)
        f.defaultDurationHistogramBuckets = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]
            .map { .nanoseconds(Int64(($0 * 1e9).rounded())) }
        MetricsSystem.bootstrap(f)
        return r
    }()

    public func add(_ k: WritableKeyPath<Counters, Int>, _ n: Int) {
        lock.lock()
        c[keyPath: k] += n
        lock.unlock()
        if n > 0 { counterFor[k]?.increment(by: n) }
    }

    public func set(_ k: WritableKeyPath<Counters, Int>, _ v: Int) {
        lock.lock()
        c[keyPath: k] = v
        lock.unlock()
        gaugeFor[k]?.record(v)
    }

    public var counters: Counters {
        lock.lock()
        defer { lock.unlock() }
        return c
    }

    func observeCommit(nanoseconds: UInt64, rows: Int) {
        lock.lock()
        c.commits += 1
        lock.unlock()
        commitTimer.recordNanoseconds(Int64(clamping: nanoseconds))
        add(\.committedRows, rows)
    }

    func countAlerts(_ alerts: [StoredAlert]) {
        if alerts.isEmpty { return }
        var n: [String: Int] = [:]
        // By index: `for a in alerts` copies each alert, retaining all its strings.
        for i in alerts.indices { n[alerts[i].rule, default: 0] += 1 }
        lock.lock()
        var handles: [(CoreMetrics.Counter, Int)] = []
        for (rule, k) in n {
            let h = perRule[rule] ?? CoreMetrics.Counter(label: "tripline_alerts_total", dimensions: [("rule", rule)], factory: factory)
            perRule[rule] = h
            handles.append((h, k))
        }
        lock.unlock()
        for (h, k) in handles { h.increment(by: k) }
    }

    func setWatermark(_ w: Millis) {
        lock.lock()
        watermark = w
        lock.unlock()
    }

    /// The Prometheus exposition text: this server's metrics, then the process-wide ones
    /// (per-route requests and latency).
    public func render(now: Millis, subscribers: Int) -> String {
        lock.lock()
        let wm = watermark
        lock.unlock()
        watermarkGauge.record(wm == .min ? 0 : Double(wm) / 1000)
        lagGauge.record(wm == .min ? 0 : Double(now - wm) / 1000)
        subscribersGauge.record(subscribers)
        uptimeGauge.record(Date().timeIntervalSince(started).rounded())
        var out: [UInt8] = []
        registry.emit(into: &out)
        Self.processRegistry.emit(into: &out)
        return String(decoding: out, as: UTF8.self)
    }
}
