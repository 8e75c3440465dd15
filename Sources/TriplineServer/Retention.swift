import Foundation
import TriplineCore
import TriplineStore

public struct RetentionSettings: Sendable {
    /// Events stored longer ago than this are deleted (counted from when they were received,
    /// so a backfill of last year's events is kept as long as live ones).
    public var events: Millis = 30 * 86_400_000
    /// Alerts created longer ago than this are deleted (with their deliveries and feedback).
    public var alerts: Millis = 365 * 86_400_000
    /// Audit records older than this are deleted from the start of the chain.
    public var audit: Millis = 730 * 86_400_000
    /// How often the service looks.
    public var intervalSeconds = 60.0
    /// Rows (log batches, alerts, audit records) per transaction: small, so ingestion's
    /// commits interleave with deletion and never wait long.
    public var chunk = 64
    public init() {}
}

/// Deletes data past its retention period, in small transactions.
public final class RetentionService: @unchecked Sendable {
    let store: any TriplineStore
    let settings: RetentionSettings
    let clock: @Sendable () -> Millis
    let audit: AuditLog?

    public init(store: any TriplineStore, settings: RetentionSettings, clock: @escaping @Sendable () -> Millis, audit: AuditLog?) {
        self.store = store
        self.settings = settings
        self.clock = clock
        self.audit = audit
    }

    /// One pass: deletes everything past retention, chunk by chunk. Returns the counts.
    @discardableResult
    public func runOnce() throws -> (events: Int, alerts: Int, audit: Int) {
        let now = clock()
        var ev = 0, al = 0, au = 0
        while true {
            let n = try store.deleteLog(storedBefore: now - settings.events, limit: settings.chunk)
            if n == 0 { break }
            ev += n
        }
        while true {
            let n = try store.deleteAlerts(createdBefore: now - settings.alerts, limit: settings.chunk * 16)
            if n == 0 { break }
            al += n
        }
        while true {
            let n = try store.deleteAudit(before: now - settings.audit, limit: settings.chunk * 16)
            if n == 0 { break }
            au += n
        }
        if ev + al + au > 0 {
            try store.compact()
            try audit?.record(actor: "retention", action: "retention.delete", target: "store",
                              detail: .obj([("events", .int(ev)), ("alerts", .int(al)), ("audit_records", .int(au)),
                                            ("events_before", .time(now - settings.events)), ("alerts_before", .time(now - settings.alerts)),
                                            ("audit_before", .time(now - settings.audit))]))
        }
        return (ev, al, au)
    }

    /// Called after a pass that deleted events (the server trims its timeline index).
    public var onEventsDeleted: (@Sendable () async -> Void)?

    public func run() async {
        while !Task.isCancelled {
            if let r = try? runOnce(), r.events > 0 { await onEventsDeleted?() }
            try? await Task.sleep(nanoseconds: UInt64(settings.intervalSeconds * 1e9))
        }
    }
}
