import Foundation
import Logging
import ServiceLifecycle
import TriplineCore

// The server's parts as swift-service-lifecycle services. `TriplineHTTP.run` runs, in this
// order: the active server's work (below), the HTTP application, and the stream closer. A
// service group shuts down in reverse order, so SIGTERM first ends the live streams, then
// the HTTP server stops accepting and finishes the requests in progress (each acknowledged
// batch is committed before its answer), and only then the active work drains: idle advance
// and retention stop, the webhook outbox is flushed for a bounded time, and the engine host
// finishes whatever is still queued.

/// A loop that ends when it is cancelled, stopped when graceful shutdown begins.
struct LoopService: Service {
    let name: String
    let body: @Sendable () async -> Void
    func run() async throws {
        await cancelWhenGracefulShutdown { await body() }
    }
}

/// The engine host's thread: started when the service starts; at shutdown, returns once
/// every queued job has been processed and committed.
struct EngineHostService: Service {
    let host: EngineHost
    func run() async throws {
        host.start()
        try? await gracefulShutdown()
        await host.drain()
    }
}

/// Webhook delivery: delivers until shutdown, then flushes what is due for at most
/// `flushSeconds` (the rest stays in the durable outbox).
struct WebhookService: Service {
    let dispatcher: WebhookDispatcher
    let flushSeconds: Double
    func run() async throws {
        await cancelWhenGracefulShutdown { await dispatcher.run() }
        await dispatcher.flush(seconds: flushSeconds)
        await dispatcher.shutdown()
    }
}

/// Everything only the active server runs: the engine host, webhook delivery, retention and
/// idle advance, as a service group of their own (started in that order, stopped in the
/// reverse order). On a standby it first waits to take over; a standby shut down before
/// that just returns.
struct ActiveWorkService: Service {
    let http: TriplineHTTP
    let logger: Logger

    func run() async throws {
        if http.role != .active {
            let took = await cancelWhenGracefulShutdown { await http.standBy() }
            guard took else { return }
        }
        let host = http.host
        let dispatcher = WebhookDispatcher(store: http.store, metrics: host.metrics, settings: http.settings.webhooks, clock: http.settings.clock)
        host.onDeliveriesQueued = { dispatcher.notify() }
        let router = NotificationRouter(store: http.store, host: host, clock: http.settings.clock)
        router.onQueued = { dispatcher.notify() }
        let retention = RetentionService(store: http.store, settings: http.settings.retention, clock: http.settings.clock, audit: http.audit)
        retention.onEventsDeleted = { _ = try? await host.trimTimeline() }
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = [
            .init(service: EngineHostService(host: host)),
            .init(service: WebhookService(dispatcher: dispatcher, flushSeconds: http.settings.outboxFlushSeconds)),
            .init(service: LoopService(name: "notification-router") { await router.run() }),
            .init(service: LoopService(name: "retention") { await retention.run() }),
        ]
        if let n = http.settings.natsInput {
            let input = NATSEventInput(settings: n, host: host, store: http.store)
            services.append(.init(service: LoopService(name: "nats-input") {
                await withTaskCancellationHandler { await input.run() } onCancel: { input.stop() }
            }))
        }
        if let m = http.settings.mqttInput {
            let input = MQTTEventInput(settings: m, host: host)
            services.append(.init(service: LoopService(name: "mqtt-input") {
                await withTaskCancellationHandler { await input.run() } onCancel: { input.stop() }
            }))
        }
        if let idle = http.settings.idleAdvance {
            services.append(.init(service: LoopService(name: "idle-advance") { await host.runIdleAdvance(idle: idle, clock: http.settings.clock) }))
        }
        let group = ServiceGroup(configuration: ServiceGroupConfiguration(services: services, logger: logger))
        try await group.run()
    }
}
