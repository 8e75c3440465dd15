import Foundation
import TriplineCore

/// A run of the event log: consecutive arrivals (every valid event line received, in
/// arrival order, late and duplicate ones included), stored as one NDJSON blob. Lines starting
/// with `#` are control records (`#advance <ms>`: an operator's "advance event time"), which a
/// rebuild replays at the same point. Event `firstSeq + k` is the k-th line.
public struct LogBatch: Sendable, Equatable {
    public var firstSeq: Int64
    public var count: Int
    public var maxTime: Millis
    /// When it was committed (wall clock): retention counts from here.
    public var storedAt: Millis
    /// Lines, each ending with a newline.
    public var lines: [UInt8]
    public init(firstSeq: Int64, count: Int, maxTime: Millis, storedAt: Millis, lines: [UInt8]) {
        self.firstSeq = firstSeq
        self.count = count
        self.maxTime = maxTime
        self.storedAt = storedAt
        self.lines = lines
    }

    /// Calls `body` with each line (without newline) and its seq.
    public func forEachLine(_ body: (UnsafeBufferPointer<UInt8>, Int64) throws -> Void) rethrows {
        try lines.withUnsafeBufferPointer { p in
            var start = 0
            var seq = firstSeq
            while true {
                let i = NDJSON.nextNewline(p, from: start)
                if i == p.count { break }
                try body(UnsafeBufferPointer(rebasing: p[start..<i]), seq)
                seq += 1
                start = i + 1
            }
        }
    }
}

/// A stored alert: the canonical line `tripline replay` prints, plus the server's own fields.
public struct StoredAlert: Sendable, Equatable {
    public var id: Int64
    public var rule: String
    public var version: Int
    public var firing: Bool
    public var time: Millis
    public var entity: String?
    public var zone: String?
    public var pairA: String?
    public var pairB: String?
    /// The canonical alert line (spec section 4), without newline.
    public var line: String
    /// Silence that matched it at emission (the alert is stored and delivered as suppressed).
    public var silence: Int64?
    public var createdAt: Millis
    public init(id: Int64, rule: String, version: Int, firing: Bool, time: Millis, entity: String?, zone: String?,
                pairA: String?, pairB: String?, line: String, silence: Int64?, createdAt: Millis) {
        self.id = id
        self.rule = rule
        self.version = version
        self.firing = firing
        self.time = time
        self.entity = entity
        self.zone = zone
        self.pairA = pairA
        self.pairB = pairB
        self.line = line
        self.silence = silence
        self.createdAt = createdAt
    }
}

/// One version of a rule: its canonical JSON text, or a deletion marker.
public struct RuleVersion: Sendable, Equatable {
    public var rule: String
    public var version: Int
    public var json: String
    public var deleted: Bool
    public var createdAt: Millis
    public var createdBy: String
    public init(rule: String, version: Int, json: String, deleted: Bool, createdAt: Millis, createdBy: String) {
        self.rule = rule
        self.version = version
        self.json = json
        self.deleted = deleted
        self.createdAt = createdAt
        self.createdBy = createdBy
    }
}

/// A zone or an entity as stored: its id and its canonical JSON text.
public struct CatalogItem: Sendable, Equatable {
    public var id: String
    public var json: String
    public var updatedAt: Millis
    public init(id: String, json: String, updatedAt: Millis) {
        self.id = id
        self.json = json
        self.updatedAt = updatedAt
    }
}

public enum Role: String, Sendable, CaseIterable, Comparable {
    case ingest, auditor, `operator`, admin
    public static func < (a: Role, b: Role) -> Bool {
        allCases.firstIndex(of: a)! < allCases.firstIndex(of: b)!
    }
}

public struct TokenRecord: Sendable, Equatable {
    public var id: String
    public var hash: String
    public var role: Role
    public var name: String
    public var createdAt: Millis
    public init(id: String, hash: String, role: Role, name: String, createdAt: Millis) {
        self.id = id
        self.hash = hash
        self.role = role
        self.name = name
        self.createdAt = createdAt
    }
}

/// A silence: alerts matching every given matcher, emitted while it is active (wall clock),
/// are stored and marked `suppressed_by`, not delivered to webhooks.
public struct Silence: Sendable, Equatable {
    public var id: Int64 = 0
    public var rule: String?
    public var zone: String?
    public var entity: String?
    public var severity: String?
    public var startsAt: Millis
    public var endsAt: Millis
    public var creator: String
    public var comment: String
    public var createdAt: Millis

    public init(id: Int64 = 0, rule: String?, zone: String?, entity: String?, severity: String?, startsAt: Millis, endsAt: Millis,
                creator: String, comment: String, createdAt: Millis) {
        self.id = id
        self.rule = rule
        self.zone = zone
        self.entity = entity
        self.severity = severity
        self.startsAt = startsAt
        self.endsAt = endsAt
        self.creator = creator
        self.comment = comment
        self.createdAt = createdAt
    }

    public func matches(_ a: StoredAlert, severity sev: String, at now: Millis) -> Bool {
        guard startsAt <= now && now < endsAt else { return false }
        if let rule, rule != a.rule { return false }
        if let zone, zone != a.zone { return false }
        if let entity, entity != a.entity && entity != a.pairA && entity != a.pairB { return false }
        if let severity, severity != sev { return false }
        return true
    }
}

public struct Feedback: Sendable, Equatable {
    public var id: Int64 = 0
    public var alertId: Int64
    public var verdict: String
    public var comment: String
    public var by: String
    public var at: Millis
    public init(id: Int64 = 0, alertId: Int64, verdict: String, comment: String, by: String, at: Millis) {
        self.id = id
        self.alertId = alertId
        self.verdict = verdict
        self.comment = comment
        self.by = by
        self.at = at
    }
}

/// A webhook receiver. `secret` is the Standard Webhooks `whsec_` secret.
public struct Receiver: Sendable, Equatable {
    public var id: String
    public var url: String
    public var secret: String
    /// Only alerts of rules at or above this severity (nil: all).
    public var minSeverity: String?
    public var createdAt: Millis
    /// `webhook` (Standard Webhooks), `slack`, `pagerduty` or `nats` (docs/notifications.md).
    public var kind: String
    /// The kind's settings as JSON (subject, stream, template, ...); nil for a plain webhook.
    public var config: String?
    public init(id: String, url: String, secret: String, minSeverity: String?, createdAt: Millis, kind: String = "webhook", config: String? = nil) {
        self.id = id
        self.url = url
        self.secret = secret
        self.minSeverity = minSeverity
        self.createdAt = createdAt
        self.kind = kind
        self.config = config
    }
}

/// Meta keys of the notification policy and the notifier.
public enum NotifyMeta {
    /// The notifier's state (JSON), written with each flush.
    public static let state = "notify.state"
    /// The current policy version (a number); each version is `notify.policy.<n>` (JSON:
    /// text, format, author, time, comment).
    public static let current = "notify.policy.current"
    public static func version(_ n: Int) -> String { "notify.policy.\(n)" }
}

/// One alert, or one group notification of the notification policy, to deliver to one
/// receiver (the durable outbox).
public struct Delivery: Sendable, Equatable {
    public var id: Int64 = 0
    public var receiver: String
    /// The alert; for a group notification, the newest alert it lists (retention deletes the
    /// delivery with that alert).
    public var alertId: Int64
    /// A group notification's body (JSON, with its stable `key`); nil for a single alert.
    public var notification: String?
    public var attempts = 0
    public var nextAttemptAt: Millis
    /// pending, delivered or dead.
    public var state = "pending"
    public var lastError: String?
    public var updatedAt: Millis
    public init(id: Int64 = 0, receiver: String, alertId: Int64, notification: String? = nil, attempts: Int = 0, nextAttemptAt: Millis, state: String = "pending",
                lastError: String? = nil, updatedAt: Millis) {
        self.id = id
        self.receiver = receiver
        self.alertId = alertId
        self.notification = notification
        self.attempts = attempts
        self.nextAttemptAt = nextAttemptAt
        self.state = state
        self.lastError = lastError
        self.updatedAt = updatedAt
    }
}

/// What an alert query selects. Every field is optional; results are ordered by id.
public struct AlertQuery: Sendable {
    public var rule: String?
    public var state: String?
    public var entity: String?
    public var zone: String?
    public var from: Millis?
    public var to: Millis?
    public var afterId: Int64?
    public var limit: Int = 100
    public init() {}
}

/// The event log and what is written with it. Writes of the log and of the alerts it
/// produced happen in one transaction (`commit`), so that a batch is acknowledged only once
/// both are durable, and a restart can rebuild the engine from the log.
public protocol EventLogStore: Sendable {
    /// Appends a log batch, alerts and their webhook deliveries in one transaction.
    func commit(log: LogBatch?, alerts: [StoredAlert], deliveries: [Delivery]) throws
    /// Calls `body` with every log batch in seq order.
    func forEachLogBatch(_ body: (LogBatch) throws -> Void) throws
    /// The lines of the given seqs (those still stored).
    func logLines(_ seqs: [Int64]) throws -> [Int64: String]
    /// How many log lines are stored, and the next seq.
    func logCount() throws -> Int
    func nextLogSeq() throws -> Int64
    /// The seq of the first stored log line (nil when the log is empty).
    func firstLogSeq() throws -> Int64?
    /// Retention: deletes at most `limit` log batches stored before `cutoff` (wall clock),
    /// returns how many lines went.
    func deleteLog(storedBefore cutoff: Millis, limit: Int) throws -> Int
    /// Erasure: replaces the given log lines with `#erased`, writes `pseudonym` for `id` in
    /// every alert that names it (key, pair, details, evidence), in every other stored text that
    /// holds it as a token, and removes its registration, in one transaction. Returns (log lines
    /// erased, alerts rewritten).
    func eraseEntity(id: String, pseudonym: String, seqs: [Int64]) throws -> (Int, Int)
    /// Makes deleted data unrecoverable from the files (SQLite: checkpoints and truncates the
    /// WAL; PostgreSQL: vacuums the tables erasure and retention touch).
    func compact() throws
}

/// Stored alerts and operators' feedback on them.
public protocol AlertStore: Sendable {
    func maxAlertId() throws -> Int64
    func alerts(_ q: AlertQuery) throws -> [StoredAlert]
    func alert(id: Int64) throws -> StoredAlert?
    /// Deletes at most `limit` alerts created before `cutoff` (and their deliveries and feedback).
    func deleteAlerts(createdBefore cutoff: Millis, limit: Int) throws -> Int
    func addFeedback(_ f: Feedback) throws -> Int64
    func feedback(alertId: Int64?) throws -> [Feedback]
}

/// Rules (every version), zones, entities, and the server's own settings (meta).
public protocol CatalogStore: Sendable {
    func ruleVersions(_ id: String?) throws -> [RuleVersion]
    func appendRuleVersions(_ versions: [RuleVersion]) throws
    func catalog(_ table: CatalogTable) throws -> [CatalogItem]
    func catalogItem(_ table: CatalogTable, id: String) throws -> CatalogItem?
    func putCatalog(_ table: CatalogTable, _ items: [CatalogItem]) throws
    func deleteCatalog(_ table: CatalogTable, id: String) throws -> Bool
    func meta(_ key: String) throws -> String?
    func setMeta(_ key: String, _ value: String) throws
}

/// API tokens and the hash-chained audit log.
public protocol AccessStore: Sendable {
    func addToken(_ t: TokenRecord) throws
    func token(hash: String) throws -> TokenRecord?
    func tokens() throws -> [TokenRecord]
    func deleteToken(id: String) throws -> Bool
    /// Appends the record `make` builds from the current head (nil: the log is empty), and
    /// records the new head (`<seq> <hash>` in meta), in one transaction that no other append,
    /// from this process or another sharing the store, can interleave with: the chain never
    /// forks when a standby server records reads while the active one records changes.
    @discardableResult
    func appendAudit(_ make: (_ head: AuditRecord?) throws -> AuditRecord) throws -> AuditRecord
    func auditHead() throws -> AuditRecord?
    func auditRecords(afterSeq: Int64, limit: Int) throws -> [AuditRecord]
    /// In stored order (not by seq): a reordered or inserted record shows as such.
    func forEachAudit(_ body: (AuditRecord) throws -> Void) throws
    /// Deletes at most `limit` audit records before `cutoff`, keeping the chain verifiable
    /// from the first kept record (its seq and previous hash become the anchor in meta).
    func deleteAudit(before cutoff: Millis, limit: Int) throws -> Int
}

/// Silences, webhook receivers and the durable outbox of deliveries.
public protocol NotificationStore: Sendable {
    func addSilence(_ s: Silence) throws -> Int64
    func silences() throws -> [Silence]
    /// Ends a silence at `at` (the record stays, for the record).
    func endSilence(id: Int64, at: Millis) throws -> Bool
    func addReceiver(_ r: Receiver) throws
    func receivers() throws -> [Receiver]
    func deleteReceiver(id: String) throws -> Bool
    func dueDeliveries(now: Millis, limit: Int) throws -> [Delivery]
    func updateDelivery(_ d: Delivery) throws
    func deliveries(state: String?, receiver: String?, afterId: Int64, limit: Int) throws -> [Delivery]
    /// How many deliveries wait in the outbox (state pending).
    func pendingDeliveryCount() throws -> Int
    /// Puts dead deliveries (all, or those of `ids`) back to pending with no attempts.
    func redrive(ids: [Int64]?, now: Millis) throws -> Int
    /// In one transaction: the notifier's state (meta `notify.state`) and the deliveries of the
    /// group notifications it just flushed; after a crash either both are stored or neither.
    func commitNotifications(state: String, deliveries: [Delivery]) throws
}

/// Everything the server keeps: one store implements every concern (SQLite, PostgreSQL, or
/// memory for tests), so that a batch's log, alerts and deliveries share one transaction.
public typealias TriplineStore = EventLogStore & AlertStore & CatalogStore & AccessStore & NotificationStore

/// A store several servers share, one of them active at a time (PostgreSQL): the active one
/// holds a lease (PostgreSQL: a session advisory lock, which the database releases when its
/// holder's session ends, killed process included); the others stand by, serve reads, and
/// take the lease when it comes free.
public protocol SharedStore: AnyObject, Sendable {
    /// Takes the lease if it is free: records `holder` and `url` as the active server's and
    /// arms fencing (from then on, a log commit fails with `LostActiveLease` if another server
    /// has since been recorded as active). False when another server holds it.
    func tryTakeActive(holder: String, url: String?) throws -> Bool
    /// The active server as last recorded (holder text, advertised URL).
    func activeServer() throws -> (holder: String?, url: String?)
    /// Records the advertised URL of the server holding the lease (once its port is bound).
    func setActiveURL(_ url: String) throws
}

/// A log commit refused because this server no longer holds the active lease: another
/// server took over (it found the lease free: this one's session to the database ended).
/// Nothing of the commit was stored; the server must stop acting as the active one.
public struct LostActiveLease: Error, CustomStringConvertible {
    public var activeNow: String?
    public init(activeNow: String?) { self.activeNow = activeNow }
    public var description: String {
        "this server is no longer the active one: \(activeNow ?? "another server") took over the database; nothing of this commit was stored"
    }
}

/// One record of the audit log. `hash` = SHA-256 over the previous record's hash and this
/// record's canonical encoding (the server computes both), so any modified, deleted, inserted
/// or reordered record breaks the chain from there on.
public struct AuditRecord: Sendable, Equatable {
    public var seq: Int64
    public var at: Millis
    public var actor: String
    public var action: String
    public var target: String
    /// A JSON object (compact) with what the action did or returned (counts, versions).
    public var detail: String
    public var prev: String
    public var hash: String
    public init(seq: Int64, at: Millis, actor: String, action: String, target: String, detail: String, prev: String, hash: String) {
        self.seq = seq
        self.at = at
        self.actor = actor
        self.action = action
        self.target = target
        self.detail = detail
        self.prev = prev
        self.hash = hash
    }
}

/// A write the store refused because it would repeat a key (the transaction is rolled back).
public struct StoreConflict: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

public enum CatalogTable: String, Sendable { case zones, entities }

/// The store for tests: everything in memory, same semantics as the SQLite store.
public final class MemoryStore: TriplineStore, @unchecked Sendable {
    private let lock = NSLock()
    private var log: [LogBatch] = []
    private var alertRows: [StoredAlert] = []
    private var rules: [RuleVersion] = []
    private var tables: [CatalogTable: [String: CatalogItem]] = [:]
    private var tokenRows: [TokenRecord] = []
    private var metaRows: [String: String] = [:]
    private var silenceRows: [Silence] = []
    private var auditRows: [AuditRecord] = []
    private var feedbackRows: [Feedback] = []
    private var receiverRows: [Receiver] = []
    private var deliveryRows: [Delivery] = []

    public init() {}

    /// For tests: called before each commit that carries log lines, outside the store's lock
    /// (it may block); an error it throws refuses the commit.
    public var beforeLogCommit: (@Sendable (LogBatch) throws -> Void)? {
        get { locked { hook } }
        set { locked { hook = newValue } }
    }
    private var hook: (@Sendable (LogBatch) throws -> Void)?

    private func locked<T>(_ body: () throws -> T) rethrows -> T {
        lock.lock()
        defer { lock.unlock() }
        return try body()
    }

    public func commit(log batch: LogBatch?, alerts: [StoredAlert], deliveries: [Delivery]) throws {
        if let batch, let hook = beforeLogCommit { try hook(batch) }
        try locked {
            // All or nothing, as a database transaction: a repeated alert id refuses the batch.
            var ids = Set(alertRows.map(\.id))
            for a in alerts where !ids.insert(a.id).inserted { throw StoreConflict("alert id \(a.id) is already stored") }
            if let b = batch, let last = log.last, b.firstSeq < last.firstSeq + Int64(last.count) { throw StoreConflict("log seq \(b.firstSeq) is already stored") }
            if let batch { log.append(batch) }
            alertRows += alerts
            for var d in deliveries {
                d.id = Int64(deliveryRows.count + 1)
                deliveryRows.append(d)
            }
        }
    }
    public func forEachLogBatch(_ body: (LogBatch) throws -> Void) throws {
        for b in locked({ log }) { try body(b) }
    }
    public func logLines(_ seqs: [Int64]) throws -> [Int64: String] {
        let batches = locked { log }
        var out: [Int64: String] = [:]
        let want = Set(seqs)
        for b in batches {
            b.forEachLine { line, seq in if want.contains(seq) { out[seq] = String(decoding: line, as: UTF8.self) } }
        }
        return out
    }
    public func logCount() throws -> Int { locked { log.reduce(0) { $0 + $1.count } } }
    public func nextLogSeq() throws -> Int64 { locked { log.last.map { $0.firstSeq + Int64($0.count) } ?? 1 } }
    public func firstLogSeq() throws -> Int64? { locked { log.first?.firstSeq } }
    public func maxAlertId() throws -> Int64 { locked { alertRows.last?.id ?? 0 } }
    public func ruleVersions(_ id: String?) throws -> [RuleVersion] {
        locked { rules.filter { id == nil || $0.rule == id }.sorted { Array($0.rule.utf8).lexicographicallyPrecedes(Array($1.rule.utf8)) || ($0.rule == $1.rule && $0.version < $1.version) } }
    }
    public func appendRuleVersions(_ versions: [RuleVersion]) throws {
        try locked {
            var seen = Set(rules.map { "\($0.rule)\u{0}\($0.version)" })
            for v in versions where !seen.insert("\(v.rule)\u{0}\(v.version)").inserted { throw StoreConflict("rule \(v.rule) version \(v.version) is already stored") }
            rules += versions
        }
    }
    public func catalog(_ table: CatalogTable) throws -> [CatalogItem] {
        locked { (tables[table] ?? [:]).values.sorted { $0.id < $1.id } }
    }
    public func catalogItem(_ table: CatalogTable, id: String) throws -> CatalogItem? { locked { tables[table]?[id] } }
    public func putCatalog(_ table: CatalogTable, _ items: [CatalogItem]) throws {
        locked { for i in items { tables[table, default: [:]][i.id] = i } }
    }
    public func deleteCatalog(_ table: CatalogTable, id: String) throws -> Bool {
        locked { tables[table]?.removeValue(forKey: id) != nil }
    }
    public func alerts(_ q: AlertQuery) throws -> [StoredAlert] {
        locked { Array(alertRows.filter { AlertFilter.matches($0, q) }.prefix(q.limit)) }
    }
    public func alert(id: Int64) throws -> StoredAlert? { locked { alertRows.first { $0.id == id } } }
    public func addToken(_ t: TokenRecord) throws { locked { tokenRows.append(t) } }
    public func token(hash: String) throws -> TokenRecord? { locked { tokenRows.first { $0.hash == hash } } }
    public func tokens() throws -> [TokenRecord] { locked { tokenRows } }
    public func deleteToken(id: String) throws -> Bool {
        locked {
            let n = tokenRows.count
            tokenRows.removeAll { $0.id == id }
            return tokenRows.count != n
        }
    }
    public func meta(_ key: String) throws -> String? { locked { metaRows[key] } }
    public func setMeta(_ key: String, _ value: String) throws { locked { metaRows[key] = value } }

    public func eraseEntity(id: String, pseudonym: String, seqs: [Int64]) throws -> (Int, Int) {
        locked {
            let want = Set(seqs)
            var erased = 0
            for i in log.indices {
                if let (lines, n) = Erasure.rewrite(log[i], erasing: want, id: id, pseudonym: pseudonym) {
                    log[i].lines = lines
                    erased += n
                }
            }
            var n = 0
            for i in alertRows.indices {
                let (a, changed) = Erasure.rewrite(alertRows[i], id: id, pseudonym: pseudonym)
                if changed { alertRows[i] = a; n += 1 }
            }
            tables[.entities]?.removeValue(forKey: id)
            func text(_ s: String) -> String { Erasure.rewrite(s, id: id, pseudonym: pseudonym) ?? s }
            for t in Array(tables.keys) {
                var moved: [String: CatalogItem] = [:]
                for (k, var item) in tables[t]! {
                    if let j = Erasure.rewriteJSON(item.json, id: id, pseudonym: pseudonym) { item.json = j }
                    moved[text(k)] = item
                }
                tables[t] = moved
            }
            for i in rules.indices {
                if let j = Erasure.rewriteJSON(rules[i].json, id: id, pseudonym: pseudonym) { rules[i].json = j }
            }
            for i in silenceRows.indices {
                silenceRows[i].entity = silenceRows[i].entity.map(text)
                silenceRows[i].comment = text(silenceRows[i].comment)
            }
            for i in feedbackRows.indices { feedbackRows[i].comment = text(feedbackRows[i].comment) }
            // Group notifications waiting in the outbox and the notifier's state name entities.
            for i in deliveryRows.indices {
                if let body = deliveryRows[i].notification, let j = Erasure.rewriteJSON(body, id: id, pseudonym: pseudonym) { deliveryRows[i].notification = j }
            }
            if let st = metaRows[NotifyMeta.state], let j = Erasure.rewriteJSON(st, id: id, pseudonym: pseudonym) { metaRows[NotifyMeta.state] = j }
            return (erased, n)
        }
    }
    public func compact() throws {}
    public func deleteLog(storedBefore cutoff: Millis, limit: Int) throws -> Int {
        locked {
            var n = 0, k = 0
            log.removeAll { b in
                guard k < limit, b.storedAt < cutoff else { return false }
                k += 1
                n += b.count
                return true
            }
            return n
        }
    }
    public func deleteAlerts(createdBefore cutoff: Millis, limit: Int) throws -> Int {
        locked {
            var k = 0
            var gone = Set<Int64>()
            alertRows.removeAll { a in
                guard k < limit, a.createdAt < cutoff else { return false }
                k += 1
                gone.insert(a.id)
                return true
            }
            deliveryRows.removeAll { gone.contains($0.alertId) }
            feedbackRows.removeAll { gone.contains($0.alertId) }
            return k
        }
    }
    public func deleteAudit(before cutoff: Millis, limit: Int) throws -> Int {
        locked {
            var k = 0
            while k < limit, let first = auditRows.first, first.at < cutoff, auditRows.count > 1 {
                auditRows.removeFirst()
                k += 1
            }
            if k > 0, let first = auditRows.first { metaRows["audit_anchor"] = "\(first.seq) \(first.prev)" }
            return k
        }
    }

    @discardableResult
    public func appendAudit(_ make: (_ head: AuditRecord?) throws -> AuditRecord) throws -> AuditRecord {
        try locked {
            let r = try make(auditRows.last)
            auditRows.append(r)
            metaRows["audit_head"] = "\(r.seq) \(r.hash)"
            return r
        }
    }
    public func auditHead() throws -> AuditRecord? { locked { auditRows.last } }
    public func auditRecords(afterSeq: Int64, limit: Int) throws -> [AuditRecord] {
        locked { Array(auditRows.filter { $0.seq > afterSeq }.prefix(limit)) }
    }
    public func forEachAudit(_ body: (AuditRecord) throws -> Void) throws { for r in locked({ auditRows }) { try body(r) } }
    /// For tamper tests: direct access to the rows.
    public func withAuditRows(_ body: (inout [AuditRecord]) -> Void) { locked { body(&auditRows) } }

    public func addSilence(_ s: Silence) throws -> Int64 {
        locked {
            var s = s
            s.id = Int64(silenceRows.count + 1)
            silenceRows.append(s)
            return s.id
        }
    }
    public func silences() throws -> [Silence] { locked { silenceRows } }
    public func endSilence(id: Int64, at: Millis) throws -> Bool {
        locked {
            guard let i = silenceRows.firstIndex(where: { $0.id == id }) else { return false }
            silenceRows[i].endsAt = min(silenceRows[i].endsAt, at)
            return true
        }
    }
    public func addFeedback(_ f: Feedback) throws -> Int64 {
        locked {
            var f = f
            f.id = Int64(feedbackRows.count + 1)
            feedbackRows.append(f)
            return f.id
        }
    }
    public func feedback(alertId: Int64?) throws -> [Feedback] { locked { feedbackRows.filter { alertId == nil || $0.alertId == alertId } } }
    public func addReceiver(_ r: Receiver) throws { locked { receiverRows.append(r) } }
    public func receivers() throws -> [Receiver] { locked { receiverRows } }
    public func deleteReceiver(id: String) throws -> Bool {
        locked {
            let n = receiverRows.count
            receiverRows.removeAll { $0.id == id }
            for i in deliveryRows.indices where deliveryRows[i].receiver == id && deliveryRows[i].state == "pending" {
                deliveryRows[i].state = "dead"
                deliveryRows[i].lastError = "receiver deleted"
            }
            return n != receiverRows.count
        }
    }
    public func dueDeliveries(now: Millis, limit: Int) throws -> [Delivery] {
        locked {
            Array(deliveryRows.filter { $0.state == "pending" && $0.nextAttemptAt <= now }
                .sorted { ($0.nextAttemptAt, $0.id) < ($1.nextAttemptAt, $1.id) }.prefix(limit))
        }
    }
    public func updateDelivery(_ d: Delivery) throws {
        locked { if let i = deliveryRows.firstIndex(where: { $0.id == d.id }) { deliveryRows[i] = d } }
    }
    public func deliveries(state: String?, receiver: String?, afterId: Int64, limit: Int) throws -> [Delivery] {
        locked {
            Array(deliveryRows.filter { (state == nil || $0.state == state) && (receiver == nil || $0.receiver == receiver) && $0.id > afterId }.prefix(limit))
        }
    }
    public func pendingDeliveryCount() throws -> Int { locked { deliveryRows.reduce(0) { $0 + ($1.state == "pending" ? 1 : 0) } } }
    /// For tests: called before each `commitNotifications`; an error it throws refuses it.
    public var beforeNotificationCommit: (@Sendable () throws -> Void)? {
        get { locked { notifyHook } }
        set { locked { notifyHook = newValue } }
    }
    private var notifyHook: (@Sendable () throws -> Void)?

    public func commitNotifications(state: String, deliveries: [Delivery]) throws {
        if let hook = beforeNotificationCommit { try hook() }
        locked {
            metaRows[NotifyMeta.state] = state
            for var d in deliveries {
                d.id = Int64(deliveryRows.count + 1)
                deliveryRows.append(d)
            }
        }
    }
    public func redrive(ids: [Int64]?, now: Millis) throws -> Int {
        locked {
            var n = 0
            for i in deliveryRows.indices where deliveryRows[i].state == "dead" && (ids == nil || ids!.contains(deliveryRows[i].id)) {
                deliveryRows[i].state = "pending"
                deliveryRows[i].attempts = 0
                deliveryRows[i].nextAttemptAt = now
                deliveryRows[i].updatedAt = now
                n += 1
            }
            return n
        }
    }
}

/// Rewriting an alert for an erased entity, shared by the stores.
/// Erasure of an entity id from everything stored about other entities: every string (JSON
/// keys and values of log lines, alert lines, catalog items, rule versions; text columns)
/// that holds the id as a token — the whole string, or a part delimited on both sides by the
/// string's ends or by ASCII characters other than letters and digits — gets the pseudonym in
/// its place. So `"internal:account-2"` becomes `"internal:<pseudonym>"` and the assigned
/// event id `account-2#7` becomes `<pseudonym>#7`, while `account-20` and `subaccount-2` are
/// left alone (a letter, digit or non-ASCII byte next to the id makes it part of a longer
/// word). The same id always gets the same pseudonym, so another account's rules still see one
/// counterpart.
public enum Erasure {
    @inline(__always) static func isWordByte(_ b: UInt8) -> Bool {
        (b >= 48 && b <= 57) || (b >= 65 && b <= 90) || (b >= 97 && b <= 122) || b >= 128
    }

    /// A log batch after erasing `id`: the lines of `erasing` (the entity's own) become
    /// `#erased`, and in every other line each string naming the id as a token gets the
    /// pseudonym. Returns the new lines and how many were erased, or nil when nothing changed.
    public static func rewrite(_ b: LogBatch, erasing: Set<Int64>, id: String, pseudonym: String) -> ([UInt8], Int)? {
        var out: [UInt8] = []
        out.reserveCapacity(b.lines.count)
        var changed = false
        var erased = 0
        b.forEachLine { line, seq in
            if erasing.contains(seq) {
                out += Array("#erased".utf8)
                erased += 1
                changed = true
            } else {
                let l = Array(line)
                if let r = rewriteJSON(l[...], id: id, pseudonym: pseudonym) { out += r; changed = true } else { out += l }
            }
            out.append(10)
        }
        return changed ? (out, erased) : nil
    }

    /// `s` with every token occurrence of `id` replaced, or nil when there is none.
    public static func rewrite(_ s: String, id: String, pseudonym: String) -> String? {
        let hay = Array(s.utf8), needle = Array(id.utf8)
        guard let out = rewrite(bytes: hay, needle, Array(pseudonym.utf8)) else { return nil }
        return String(decoding: out, as: UTF8.self)
    }

    static func rewrite(bytes hay: [UInt8], _ needle: [UInt8], _ replacement: [UInt8]) -> [UInt8]? {
        let n = needle.count
        guard n > 0, hay.count >= n else { return nil }
        var out: [UInt8] = []
        var i = 0, copied = 0, changed = false
        while i + n <= hay.count {
            if hay[i] == needle[0], hay[i..<(i + n)].elementsEqual(needle),
               i == 0 || !isWordByte(hay[i - 1]), i + n == hay.count || !isWordByte(hay[i + n]) {
                if !changed { out.reserveCapacity(hay.count + replacement.count); changed = true }
                out += hay[copied..<i]
                out += replacement
                i += n
                copied = i
            } else {
                i += 1
            }
        }
        guard changed else { return nil }
        out += hay[copied...]
        return out
    }

    /// A JSON text (one document or one NDJSON line) with the token rewrite applied to every
    /// string in it, keys included; strings re-encoded only where they changed. Nil when
    /// nothing changed. Escaped forms (`\u0061ccount-2`) are decoded before matching.
    public static func rewriteJSON(_ text: ArraySlice<UInt8>, id: String, pseudonym: String) -> [UInt8]? {
        let needle = Array(id.utf8), replacement = Array(pseudonym.utf8)
        var out: [UInt8] = []
        var changed = false
        var copied = text.startIndex
        var i = text.startIndex
        while i < text.endIndex {
            guard text[i] == 34 else { i += 1; continue }
            // A string from i to its closing quote.
            var j = i + 1
            var escaped = false
            while j < text.endIndex && text[j] != 34 {
                if text[j] == 92 { escaped = true; j += 1 }
                j += 1
            }
            guard j < text.endIndex else { break }
            let raw = text[(i + 1)..<j]
            let decoded: [UInt8]
            if escaped {
                guard let d = try? JSONSerialization.jsonObject(with: Data(text[i...j]), options: [.fragmentsAllowed]) as? String else { i = j + 1; continue }
                decoded = Array(d.utf8)
            } else {
                decoded = Array(raw)
            }
            if let r = rewrite(bytes: decoded, needle, replacement) {
                if !changed { out.reserveCapacity(text.count + 64); changed = true }
                out += text[copied..<i]
                JSONText.appendString(String(decoding: r, as: UTF8.self), to: &out)
                copied = j + 1
            }
            i = j + 1
        }
        guard changed else { return nil }
        out += text[copied...]
        return out
    }

    public static func rewriteJSON(_ text: String, id: String, pseudonym: String) -> String? {
        rewriteJSON(Array(text.utf8)[...], id: id, pseudonym: pseudonym).map { String(decoding: $0, as: UTF8.self) }
    }

    /// An alert with its line and key columns rewritten; whether anything changed.
    public static func rewrite(_ a: StoredAlert, id: String, pseudonym: String) -> (StoredAlert, Bool) {
        var a = a
        var changed = false
        if let l = rewriteJSON(a.line, id: id, pseudonym: pseudonym) { a.line = l; changed = true }
        if let e = a.entity, let r = rewrite(e, id: id, pseudonym: pseudonym) { a.entity = r; changed = true }
        if let e = a.pairA, let r = rewrite(e, id: id, pseudonym: pseudonym) { a.pairA = r; changed = true }
        if let e = a.pairB, let r = rewrite(e, id: id, pseudonym: pseudonym) { a.pairB = r; changed = true }
        return (a, changed)
    }
}

/// The alert filter shared by the stores (the SQLite one expresses it in SQL).
public enum AlertFilter {
    public static func matches(_ a: StoredAlert, _ q: AlertQuery) -> Bool {
        if let r = q.rule, a.rule != r { return false }
        if let s = q.state, (a.firing ? "firing" : "resolved") != s { return false }
        if let e = q.entity, a.entity != e && a.pairA != e && a.pairB != e { return false }
        if let z = q.zone, a.zone != z { return false }
        if let f = q.from, a.time < f { return false }
        if let t = q.to, a.time > t { return false }
        if let after = q.afterId, a.id <= after { return false }
        return true
    }
}
