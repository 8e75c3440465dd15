import Foundation
import TriplineCore

/// One line of the event log, in arrival order. `entity == nil` marks a control record
/// (an operator's "advance event time to T"), which a rebuild replays at the same point.
public struct LogRow: Sendable, Equatable {
    public var seq: Int64
    public var entity: String?
    public var time: Millis
    public var line: String
    public init(seq: Int64 = 0, entity: String?, time: Millis, line: String) {
        self.seq = seq
        self.entity = entity
        self.time = time
        self.line = line
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
}

/// One version of a rule: its canonical JSON text, or a deletion marker.
public struct RuleVersion: Sendable, Equatable {
    public var rule: String
    public var version: Int
    public var json: String
    public var deleted: Bool
    public var createdAt: Millis
    public var createdBy: String
}

/// A zone or an entity as stored: its id and its canonical JSON text.
public struct CatalogItem: Sendable, Equatable {
    public var id: String
    public var json: String
    public var updatedAt: Millis
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

/// Everything the server keeps. Writes of the event log and of the alerts it produced
/// happen in one transaction (`commit`), so that a batch is acknowledged only once both
/// are durable, and a restart can rebuild the engine from the log.
public protocol TriplineStore: Sendable {
    /// Appends log rows (assigning their seq) and alerts in one transaction.
    func commit(log: [LogRow], alerts: [StoredAlert]) throws
    /// Calls `body` with every log row in seq order, in chunks.
    func forEachLogRow(_ body: ([LogRow]) throws -> Void) throws
    func logCount() throws -> Int
    func maxAlertId() throws -> Int64

    func ruleVersions(_ id: String?) throws -> [RuleVersion]
    func appendRuleVersions(_ versions: [RuleVersion]) throws

    func catalog(_ table: CatalogTable) throws -> [CatalogItem]
    func catalogItem(_ table: CatalogTable, id: String) throws -> CatalogItem?
    func putCatalog(_ table: CatalogTable, _ items: [CatalogItem]) throws
    func deleteCatalog(_ table: CatalogTable, id: String) throws -> Bool

    func alerts(_ q: AlertQuery) throws -> [StoredAlert]
    func alert(id: Int64) throws -> StoredAlert?
    func timeline(entity: String, from: Millis?, to: Millis?, limit: Int) throws -> (events: [LogRow], alerts: [StoredAlert])

    func addToken(_ t: TokenRecord) throws
    func token(hash: String) throws -> TokenRecord?
    func tokens() throws -> [TokenRecord]
    func deleteToken(id: String) throws -> Bool

    func meta(_ key: String) throws -> String?
    func setMeta(_ key: String, _ value: String) throws
}

public enum CatalogTable: String, Sendable { case zones, entities }

/// The store for tests: everything in memory, same semantics as the SQLite store.
public final class MemoryStore: TriplineStore, @unchecked Sendable {
    private let lock = NSLock()
    private var log: [LogRow] = []
    private var alertRows: [StoredAlert] = []
    private var rules: [RuleVersion] = []
    private var tables: [CatalogTable: [String: CatalogItem]] = [:]
    private var tokenRows: [TokenRecord] = []
    private var metaRows: [String: String] = [:]

    public init() {}

    private func locked<T>(_ body: () throws -> T) rethrows -> T {
        lock.lock()
        defer { lock.unlock() }
        return try body()
    }

    public func commit(log rows: [LogRow], alerts: [StoredAlert]) throws {
        locked {
            for var r in rows {
                r.seq = Int64(log.count + 1)
                log.append(r)
            }
            alertRows += alerts
        }
    }
    public func forEachLogRow(_ body: ([LogRow]) throws -> Void) throws {
        let copy = locked { log }
        var i = 0
        while i < copy.count {
            try body(Array(copy[i..<min(copy.count, i + 4096)]))
            i += 4096
        }
    }
    public func logCount() throws -> Int { locked { log.count } }
    public func maxAlertId() throws -> Int64 { locked { alertRows.last?.id ?? 0 } }
    public func ruleVersions(_ id: String?) throws -> [RuleVersion] { locked { rules.filter { id == nil || $0.rule == id } } }
    public func appendRuleVersions(_ versions: [RuleVersion]) throws { locked { rules += versions } }
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
    public func timeline(entity: String, from: Millis?, to: Millis?, limit: Int) throws -> (events: [LogRow], alerts: [StoredAlert]) {
        locked {
            let ev = log.filter { $0.entity == entity && $0.time >= (from ?? .min) && $0.time <= (to ?? .max) }
            var q = AlertQuery()
            q.entity = entity
            q.from = from
            q.to = to
            return (Array(ev.prefix(limit)), Array(alertRows.filter { AlertFilter.matches($0, q) }.prefix(limit)))
        }
    }
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
