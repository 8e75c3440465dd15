import Foundation
import GRDB
import TriplineCore
import TriplineStore

/// The embedded default store: one SQLite file in WAL mode, schema by migrations.
/// `synchronous = FULL` by default, so an acknowledged batch survives a power cut, not only
/// a killed process; `NORMAL` trades the former for speed (documented in docs/operations.md).
public final class SQLiteStore: TriplineStore, @unchecked Sendable {
    public let pool: DatabasePool
    public let path: String

    /// Copies the SQLite store of a data folder to `destination` with SQLite's online backup
    /// API: a consistent snapshot, also while a server is writing to it (WAL: the copy reads
    /// beside the server). Refuses an existing destination. Returns the pages copied.
    @discardableResult
    public static func backup(directory: String, to destination: String) throws -> Int {
        let path = (directory as NSString).appendingPathComponent("tripline.sqlite")
        guard FileManager.default.fileExists(atPath: path) else {
            throw TriplineError(.io, "no SQLite store at \(path) (a --store postgres:// server is backed up with pg_dump)")
        }
        guard !FileManager.default.fileExists(atPath: destination) else {
            throw TriplineError(.io, "\(destination) exists: give a new file (a backup never overwrites)")
        }
        var config = Configuration()
        config.readonly = true
        let source = try DatabasePool(path: path, configuration: config)
        let copy = try DatabaseQueue(path: destination)
        var pages = 0
        try source.backup(to: copy) { progress in pages = progress.completedPageCount }
        try copy.close()
        try source.close()
        return pages
    }

    public init(directory: String, synchronous: String = "FULL") throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        path = (directory as NSString).appendingPathComponent("tripline.sqlite")
        var config = Configuration()
        let sync = synchronous.uppercased() == "NORMAL" ? "NORMAL" : "FULL"
        config.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = \(sync)")
            // A large page cache and memory-mapped reads: the log's index pages stay in memory.
            try db.execute(sql: "PRAGMA cache_size = -262144")
            // Deleted content is overwritten with zeros, so erasure and retention leave no copy.
            try db.execute(sql: "PRAGMA secure_delete = ON")
            try db.execute(sql: "PRAGMA mmap_size = 4294967296")
        }
        config.busyMode = .timeout(10)
        pool = try DatabasePool(path: path, configuration: config)
        try Self.migrator.migrate(pool)
    }

    static var migrator: DatabaseMigrator {
        var m = DatabaseMigrator()
        m.registerMigration("v1") { db in
            try db.execute(sql: """
                CREATE TABLE log(first_seq INTEGER PRIMARY KEY, count INTEGER NOT NULL, max_time INTEGER NOT NULL, stored_at INTEGER NOT NULL, lines BLOB NOT NULL);
                CREATE TABLE alerts(id INTEGER PRIMARY KEY, rule TEXT NOT NULL, version INTEGER NOT NULL, state TEXT NOT NULL,
                    time INTEGER NOT NULL, entity TEXT, zone TEXT, pair_a TEXT, pair_b TEXT, line TEXT NOT NULL,
                    silence INTEGER, created_at INTEGER NOT NULL);
                CREATE INDEX alerts_rule ON alerts(rule, id);
                CREATE INDEX alerts_entity ON alerts(entity, time);
                CREATE INDEX alerts_pair ON alerts(pair_a, pair_b);
                CREATE INDEX alerts_time ON alerts(time);
                CREATE TABLE rule_versions(rule TEXT NOT NULL, version INTEGER NOT NULL, json TEXT NOT NULL, deleted INTEGER NOT NULL,
                    created_at INTEGER NOT NULL, created_by TEXT NOT NULL, PRIMARY KEY(rule, version));
                CREATE TABLE zones(id TEXT PRIMARY KEY, json TEXT NOT NULL, updated_at INTEGER NOT NULL);
                CREATE TABLE entities(id TEXT PRIMARY KEY, json TEXT NOT NULL, updated_at INTEGER NOT NULL);
                CREATE TABLE tokens(id TEXT PRIMARY KEY, hash TEXT NOT NULL UNIQUE, role TEXT NOT NULL, name TEXT NOT NULL, created_at INTEGER NOT NULL);
                CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
                """)
        }
        m.registerMigration("v2-silences-feedback-webhooks") { db in
            try db.execute(sql: """
                CREATE TABLE silences(id INTEGER PRIMARY KEY, rule TEXT, zone TEXT, entity TEXT, severity TEXT,
                    starts_at INTEGER NOT NULL, ends_at INTEGER NOT NULL, creator TEXT NOT NULL, comment TEXT NOT NULL, created_at INTEGER NOT NULL);
                CREATE TABLE feedback(id INTEGER PRIMARY KEY, alert_id INTEGER NOT NULL, verdict TEXT NOT NULL, comment TEXT NOT NULL,
                    by TEXT NOT NULL, at INTEGER NOT NULL);
                CREATE INDEX feedback_alert ON feedback(alert_id);
                CREATE TABLE receivers(id TEXT PRIMARY KEY, url TEXT NOT NULL, secret TEXT NOT NULL, min_severity TEXT, created_at INTEGER NOT NULL);
                CREATE TABLE deliveries(id INTEGER PRIMARY KEY, receiver TEXT NOT NULL, alert_id INTEGER NOT NULL, attempts INTEGER NOT NULL,
                    next_attempt_at INTEGER NOT NULL, state TEXT NOT NULL, last_error TEXT, updated_at INTEGER NOT NULL);
                CREATE INDEX deliveries_due ON deliveries(state, next_attempt_at);
                """)
        }
        m.registerMigration("v3-audit") { db in
            try db.execute(sql: """
                CREATE TABLE audit(seq INTEGER PRIMARY KEY, at INTEGER NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL,
                    target TEXT NOT NULL, detail TEXT NOT NULL, prev TEXT NOT NULL, hash TEXT NOT NULL);
                """)
        }
        m.registerMigration("v4-group-notifications") { db in
            try db.execute(sql: "ALTER TABLE deliveries ADD COLUMN notification TEXT")
        }
        m.registerMigration("v5-receiver-kinds") { db in
            try db.execute(sql: "ALTER TABLE receivers ADD COLUMN kind TEXT NOT NULL DEFAULT 'webhook'")
            try db.execute(sql: "ALTER TABLE receivers ADD COLUMN config TEXT")
        }
        // No query used these two: the alert filter by entity is `entity = ? OR pair_a = ? OR
        // pair_b = ?`, which SQLite answers with a scan of the table, since no index begins
        // with pair_b. Yet every alert row updated both at random places, and writing those
        // index pages was most of a group commit's time (Benchmarks/README.md, tenth
        // session). PostgreSQL keeps them: its planner combines them (BitmapOr).
        m.registerMigration("v6-drop-unused-alert-indexes") { db in
            try db.execute(sql: "DROP INDEX IF EXISTS alerts_entity")
            try db.execute(sql: "DROP INDEX IF EXISTS alerts_pair")
        }
        return m
    }

    public func commit(log batch: LogBatch?, alerts: [StoredAlert], deliveries: [Delivery]) throws {
        try pool.write { db in
            if let batch {
                try db.execute(sql: "INSERT INTO log(first_seq, count, max_time, stored_at, lines) VALUES (?, ?, ?, ?, ?)",
                               arguments: [batch.firstSeq, batch.count, batch.maxTime, batch.storedAt, Data(batch.lines)])
            }
            if !alerts.isEmpty {
                let st = try db.cachedStatement(sql: """
                    INSERT INTO alerts(id, rule, version, state, time, entity, zone, pair_a, pair_b, line, silence, created_at)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """)
                for a in alerts {
                    st.setUncheckedArguments([a.id, a.rule, a.version, a.firing ? "firing" : "resolved", a.time, a.entity, a.zone,
                                              a.pairA, a.pairB, a.line, a.silence, a.createdAt])
                    try st.execute()
                }
            }
            if !deliveries.isEmpty {
                try Self.insertDeliveries(deliveries, db)
            }
        }
    }

    public func forEachLogBatch(_ body: (LogBatch) throws -> Void) throws {
        var after: Int64 = 0
        while true {
            let chunk: [LogBatch] = try pool.read { db in
                try Row.fetchAll(db, sql: "SELECT first_seq, count, max_time, stored_at, lines FROM log WHERE first_seq > ? ORDER BY first_seq LIMIT 64", arguments: [after]).map {
                    LogBatch(firstSeq: $0[0], count: $0[1], maxTime: $0[2], storedAt: $0[3], lines: [UInt8]($0[4] as Data))
                }
            }
            if chunk.isEmpty { return }
            after = chunk.last!.firstSeq
            for b in chunk { try body(b) }
        }
    }

    public func logLines(_ seqs: [Int64]) throws -> [Int64: String] {
        var out: [Int64: String] = [:]
        let want = Set(seqs)
        var byBatch: [Int64: LogBatch] = [:]
        try pool.read { db in
            for seq in seqs.sorted() {
                if byBatch.values.contains(where: { seq >= $0.firstSeq && seq < $0.firstSeq + Int64($0.count) }) { continue }
                if let row = try Row.fetchOne(db, sql: "SELECT first_seq, count, max_time, stored_at, lines FROM log WHERE first_seq <= ? ORDER BY first_seq DESC LIMIT 1", arguments: [seq]) {
                    let b = LogBatch(firstSeq: row[0], count: row[1], maxTime: row[2], storedAt: row[3], lines: [UInt8](row[4] as Data))
                    byBatch[b.firstSeq] = b
                }
            }
        }
        for b in byBatch.values {
            b.forEachLine { line, seq in if want.contains(seq) { out[seq] = String(decoding: line, as: UTF8.self) } }
        }
        return out
    }

    public func logCount() throws -> Int { try pool.read { try Int.fetchOne($0, sql: "SELECT coalesce(sum(count), 0) FROM log") ?? 0 } }
    public func nextLogSeq() throws -> Int64 {
        try pool.read { try Int64.fetchOne($0, sql: "SELECT max(first_seq + count) FROM log") ?? 1 }
    }
    public func firstLogSeq() throws -> Int64? {
        try pool.read { try Int64.fetchOne($0, sql: "SELECT min(first_seq) FROM log") }
    }
    public func maxAlertId() throws -> Int64 { try pool.read { try Int64.fetchOne($0, sql: "SELECT max(id) FROM alerts") ?? 0 } }

    public func ruleVersions(_ id: String?) throws -> [RuleVersion] {
        try pool.read { db in
            let sql = "SELECT rule, version, json, deleted, created_at, created_by FROM rule_versions"
                + (id == nil ? "" : " WHERE rule = ?") + " ORDER BY rule, version"
            return try Row.fetchAll(db, sql: sql, arguments: id.map { [$0] } ?? []).map {
                RuleVersion(rule: $0[0], version: $0[1], json: $0[2], deleted: $0[3], createdAt: $0[4], createdBy: $0[5])
            }
        }
    }

    public func appendRuleVersions(_ versions: [RuleVersion]) throws {
        try pool.write { db in
            for v in versions {
                try db.execute(sql: "INSERT INTO rule_versions(rule, version, json, deleted, created_at, created_by) VALUES (?, ?, ?, ?, ?, ?)",
                               arguments: [v.rule, v.version, v.json, v.deleted, v.createdAt, v.createdBy])
            }
        }
    }

    public func catalog(_ table: CatalogTable) throws -> [CatalogItem] {
        try pool.read { db in
            try Row.fetchAll(db, sql: "SELECT id, json, updated_at FROM \(table.rawValue) ORDER BY id").map {
                CatalogItem(id: $0[0], json: $0[1], updatedAt: $0[2])
            }
        }
    }

    public func catalogItem(_ table: CatalogTable, id: String) throws -> CatalogItem? {
        try pool.read { db in
            try Row.fetchOne(db, sql: "SELECT id, json, updated_at FROM \(table.rawValue) WHERE id = ?", arguments: [id]).map {
                CatalogItem(id: $0[0], json: $0[1], updatedAt: $0[2])
            }
        }
    }

    public func putCatalog(_ table: CatalogTable, _ items: [CatalogItem]) throws {
        try pool.write { db in
            for i in items {
                try db.execute(sql: "INSERT OR REPLACE INTO \(table.rawValue)(id, json, updated_at) VALUES (?, ?, ?)", arguments: [i.id, i.json, i.updatedAt])
            }
        }
    }

    public func deleteCatalog(_ table: CatalogTable, id: String) throws -> Bool {
        try pool.write { db in
            try db.execute(sql: "DELETE FROM \(table.rawValue) WHERE id = ?", arguments: [id])
            return db.changesCount > 0
        }
    }

    static func alert(_ r: Row) -> StoredAlert {
        StoredAlert(id: r[0], rule: r[1], version: r[2], firing: (r[3] as String) == "firing", time: r[4], entity: r[5], zone: r[6],
                    pairA: r[7], pairB: r[8], line: r[9], silence: r[10], createdAt: r[11])
    }
    static let alertColumns = "id, rule, version, state, time, entity, zone, pair_a, pair_b, line, silence, created_at"

    public func alerts(_ q: AlertQuery) throws -> [StoredAlert] {
        var conds: [String] = []
        var args: [any DatabaseValueConvertible] = []
        if let r = q.rule { conds.append("rule = ?"); args.append(r) }
        if let s = q.state { conds.append("state = ?"); args.append(s) }
        if let e = q.entity { conds.append("(entity = ? OR pair_a = ? OR pair_b = ?)"); args += [e, e, e] }
        if let z = q.zone { conds.append("zone = ?"); args.append(z) }
        if let f = q.from { conds.append("time >= ?"); args.append(f) }
        if let t = q.to { conds.append("time <= ?"); args.append(t) }
        if let a = q.afterId { conds.append("id > ?"); args.append(a) }
        let sql = "SELECT \(Self.alertColumns) FROM alerts" + (conds.isEmpty ? "" : " WHERE " + conds.joined(separator: " AND "))
            + " ORDER BY id LIMIT \(max(0, q.limit))"
        return try pool.read { db in try Row.fetchAll(db, sql: sql, arguments: StatementArguments(args)).map(Self.alert) }
    }

    public func alert(id: Int64) throws -> StoredAlert? {
        try pool.read { db in try Row.fetchOne(db, sql: "SELECT \(Self.alertColumns) FROM alerts WHERE id = ?", arguments: [id]).map(Self.alert) }
    }

    public func addToken(_ t: TokenRecord) throws {
        try pool.write { db in
            try db.execute(sql: "INSERT INTO tokens(id, hash, role, name, created_at) VALUES (?, ?, ?, ?, ?)",
                           arguments: [t.id, t.hash, t.role.rawValue, t.name, t.createdAt])
        }
    }

    static func token(_ r: Row) -> TokenRecord {
        TokenRecord(id: r[0], hash: r[1], role: Role(rawValue: r[2]) ?? .ingest, name: r[3], createdAt: r[4])
    }

    public func token(hash: String) throws -> TokenRecord? {
        try pool.read { db in try Row.fetchOne(db, sql: "SELECT id, hash, role, name, created_at FROM tokens WHERE hash = ?", arguments: [hash]).map(Self.token) }
    }

    public func tokens() throws -> [TokenRecord] {
        try pool.read { db in try Row.fetchAll(db, sql: "SELECT id, hash, role, name, created_at FROM tokens ORDER BY created_at, id").map(Self.token) }
    }

    public func deleteToken(id: String) throws -> Bool {
        try pool.write { db in
            try db.execute(sql: "DELETE FROM tokens WHERE id = ?", arguments: [id])
            return db.changesCount > 0
        }
    }

    public func meta(_ key: String) throws -> String? {
        try pool.read { db in try String.fetchOne(db, sql: "SELECT value FROM meta WHERE key = ?", arguments: [key]) }
    }

    public func setMeta(_ key: String, _ value: String) throws {
        try pool.write { db in try db.execute(sql: "INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", arguments: [key, value]) }
    }

    public func eraseEntity(id: String, pseudonym: String, seqs: [Int64]) throws -> (Int, Int) {
        let want = Set(seqs)
        return try pool.write { db in
            var erased = 0
            // Every log batch: the entity's own lines become `#erased`; in the others' lines
            // every string naming the id as a token gets the pseudonym (counterparts, attrs).
            var firsts: [Int64] = []
            let cursor = try Int64.fetchCursor(db, sql: "SELECT first_seq FROM log ORDER BY first_seq")
            while let f = try cursor.next() { firsts.append(f) }
            for f in firsts {
                guard let row = try Row.fetchOne(db, sql: "SELECT first_seq, count, max_time, stored_at, lines FROM log WHERE first_seq = ?", arguments: [f]) else { continue }
                let b = LogBatch(firstSeq: row[0], count: row[1], maxTime: row[2], storedAt: row[3], lines: [UInt8](row[4] as Data))
                if let (lines, n) = Erasure.rewrite(b, erasing: want, id: id, pseudonym: pseudonym) {
                    try db.execute(sql: "UPDATE log SET lines = ? WHERE first_seq = ?", arguments: [Data(lines), f])
                    erased += n
                }
            }
            var n = 0
            let inner = String(JSONText.quoted(id).dropFirst().dropLast())
            let rows = try Row.fetchAll(db, sql: "SELECT \(Self.alertColumns) FROM alerts WHERE instr(line, ?) > 0 OR instr(line, ?) > 0 OR instr(entity, ?) > 0 OR instr(pair_a, ?) > 0 OR instr(pair_b, ?) > 0",
                                        arguments: [id, inner, id, id, id]).map(Self.alert)
            for a in rows {
                let (b, changed) = Erasure.rewrite(a, id: id, pseudonym: pseudonym)
                guard changed else { continue }
                try db.execute(sql: "UPDATE alerts SET entity = ?, pair_a = ?, pair_b = ?, line = ? WHERE id = ?", arguments: [b.entity, b.pairA, b.pairB, b.line, b.id])
                n += 1
            }
            try db.execute(sql: "DELETE FROM entities WHERE id = ?", arguments: [id])
            // The catalog and rule versions of others, silences, feedback, token names.
            func text(_ s: String) -> String { Erasure.rewrite(s, id: id, pseudonym: pseudonym) ?? s }
            for table in ["zones", "entities"] {
                for row in try Row.fetchAll(db, sql: "SELECT id, json FROM \(table) WHERE instr(json, ?) > 0 OR instr(json, ?) > 0 OR instr(id, ?) > 0", arguments: [id, inner, id]) {
                    let k: String = row[0], json: String = row[1]
                    let j = Erasure.rewriteJSON(json, id: id, pseudonym: pseudonym) ?? json
                    try db.execute(sql: "UPDATE \(table) SET id = ?, json = ? WHERE id = ?", arguments: [text(k), j, k])
                }
            }
            for row in try Row.fetchAll(db, sql: "SELECT rule, version, json FROM rule_versions WHERE instr(json, ?) > 0 OR instr(json, ?) > 0", arguments: [id, inner]) {
                let r: String = row[0], v: Int = row[1], json: String = row[2]
                if let j = Erasure.rewriteJSON(json, id: id, pseudonym: pseudonym) {
                    try db.execute(sql: "UPDATE rule_versions SET json = ? WHERE rule = ? AND version = ?", arguments: [j, r, v])
                }
            }
            for row in try Row.fetchAll(db, sql: "SELECT id, entity, comment FROM silences WHERE instr(entity, ?) > 0 OR instr(comment, ?) > 0", arguments: [id, id]) {
                let k: Int64 = row[0], e: String? = row[1], c: String = row[2]
                try db.execute(sql: "UPDATE silences SET entity = ?, comment = ? WHERE id = ?", arguments: [e.map(text), text(c), k])
            }
            for row in try Row.fetchAll(db, sql: "SELECT id, comment FROM feedback WHERE instr(comment, ?) > 0", arguments: [id]) {
                let k: Int64 = row[0], c: String = row[1]
                try db.execute(sql: "UPDATE feedback SET comment = ? WHERE id = ?", arguments: [text(c), k])
            }
            for row in try Row.fetchAll(db, sql: "SELECT id, name FROM tokens WHERE instr(name, ?) > 0", arguments: [id]) {
                let k: String = row[0], c: String = row[1]
                try db.execute(sql: "UPDATE tokens SET name = ? WHERE id = ?", arguments: [text(c), k])
            }
            // Group notifications in the outbox and the notifier's state name entities.
            for row in try Row.fetchAll(db, sql: "SELECT id, notification FROM deliveries WHERE instr(notification, ?) > 0 OR instr(notification, ?) > 0", arguments: [id, inner]) {
                let k: Int64 = row[0], body: String = row[1]
                if let j = Erasure.rewriteJSON(body, id: id, pseudonym: pseudonym) {
                    try db.execute(sql: "UPDATE deliveries SET notification = ? WHERE id = ?", arguments: [j, k])
                }
            }
            if let st = try String.fetchOne(db, sql: "SELECT value FROM meta WHERE key = ?", arguments: [NotifyMeta.state]),
               let j = Erasure.rewriteJSON(st, id: id, pseudonym: pseudonym) {
                try db.execute(sql: "UPDATE meta SET value = ? WHERE key = ?", arguments: [j, NotifyMeta.state])
            }
            return (erased, n)
        }
    }

    public func compact() throws {
        // Old page versions live in the WAL until a checkpoint copies the new ones over them;
        // TRUNCATE then empties the WAL file. Readers holding old snapshots can delay it: retry.
        for _ in 0..<50 {
            let done: Bool = try pool.writeWithoutTransaction { db in
                let r = try Row.fetchOne(db, sql: "PRAGMA wal_checkpoint(TRUNCATE)")
                return (r?[0] as Int?) == 0
            }
            if done { return }
            Thread.sleep(forTimeInterval: 0.05)
        }
    }

    public func deleteLog(storedBefore cutoff: Millis, limit: Int) throws -> Int {
        try pool.write { db in
            let n = try Int.fetchOne(db, sql: "SELECT coalesce(sum(count), 0) FROM (SELECT count FROM log WHERE stored_at < ? ORDER BY first_seq LIMIT ?)", arguments: [cutoff, limit]) ?? 0
            try db.execute(sql: "DELETE FROM log WHERE first_seq IN (SELECT first_seq FROM log WHERE stored_at < ? ORDER BY first_seq LIMIT ?)", arguments: [cutoff, limit])
            return n
        }
    }

    public func deleteAlerts(createdBefore cutoff: Millis, limit: Int) throws -> Int {
        try pool.write { db in
            let ids = try Int64.fetchAll(db, sql: "SELECT id FROM alerts WHERE created_at < ? ORDER BY id LIMIT ?", arguments: [cutoff, limit])
            guard let last = ids.last else { return 0 }
            try db.execute(sql: "DELETE FROM deliveries WHERE alert_id <= ? AND alert_id IN (SELECT id FROM alerts WHERE created_at < ?)", arguments: [last, cutoff])
            try db.execute(sql: "DELETE FROM feedback WHERE alert_id <= ? AND alert_id IN (SELECT id FROM alerts WHERE created_at < ?)", arguments: [last, cutoff])
            try db.execute(sql: "DELETE FROM alerts WHERE id <= ? AND created_at < ?", arguments: [last, cutoff])
            return db.changesCount
        }
    }

    public func deleteAudit(before cutoff: Millis, limit: Int) throws -> Int {
        try pool.write { db in
            let total = try Int.fetchOne(db, sql: "SELECT count(*) FROM audit") ?? 0
            let seqs = try Int64.fetchAll(db, sql: "SELECT seq FROM audit WHERE at < ? ORDER BY seq LIMIT ?", arguments: [cutoff, min(limit, max(0, total - 1))])
            guard let last = seqs.last else { return 0 }
            try db.execute(sql: "DELETE FROM audit WHERE seq <= ?", arguments: [last])
            let n = db.changesCount
            if let first = try Row.fetchOne(db, sql: "SELECT seq, prev FROM audit ORDER BY seq LIMIT 1") {
                try db.execute(sql: "INSERT OR REPLACE INTO meta(key, value) VALUES ('audit_anchor', ?)", arguments: ["\(first[0] as Int64) \(first[1] as String)"])
            }
            return n
        }
    }

    @discardableResult
    public func appendAudit(_ make: (_ head: AuditRecord?) throws -> AuditRecord) throws -> AuditRecord {
        try pool.write { db in
            let head = try Row.fetchOne(db, sql: "SELECT seq, at, actor, action, target, detail, prev, hash FROM audit ORDER BY seq DESC LIMIT 1").map(Self.audit)
            let r = try make(head)
            try db.execute(sql: "INSERT INTO audit(seq, at, actor, action, target, detail, prev, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                           arguments: [r.seq, r.at, r.actor, r.action, r.target, r.detail, r.prev, r.hash])
            try db.execute(sql: "INSERT OR REPLACE INTO meta(key, value) VALUES ('audit_head', ?)", arguments: ["\(r.seq) \(r.hash)"])
            return r
        }
    }

    static func audit(_ r: Row) -> AuditRecord {
        AuditRecord(seq: r[0], at: r[1], actor: r[2], action: r[3], target: r[4], detail: r[5], prev: r[6], hash: r[7])
    }

    public func auditHead() throws -> AuditRecord? {
        try pool.read { db in try Row.fetchOne(db, sql: "SELECT seq, at, actor, action, target, detail, prev, hash FROM audit ORDER BY seq DESC LIMIT 1").map(Self.audit) }
    }

    public func auditRecords(afterSeq: Int64, limit: Int) throws -> [AuditRecord] {
        try pool.read { db in
            try Row.fetchAll(db, sql: "SELECT seq, at, actor, action, target, detail, prev, hash FROM audit WHERE seq > ? ORDER BY seq LIMIT ?",
                             arguments: [afterSeq, limit]).map(Self.audit)
        }
    }

    /// In stored order (rowid), not by seq: a reordered or inserted row shows as such.
    public func forEachAudit(_ body: (AuditRecord) throws -> Void) throws {
        try pool.read { db in
            let cursor = try Row.fetchCursor(db, sql: "SELECT seq, at, actor, action, target, detail, prev, hash FROM audit ORDER BY rowid")
            while let r = try cursor.next() { try body(Self.audit(r)) }
        }
    }

    public func addSilence(_ s: Silence) throws -> Int64 {
        try pool.write { db in
            try db.execute(sql: "INSERT INTO silences(rule, zone, entity, severity, starts_at, ends_at, creator, comment, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                           arguments: [s.rule, s.zone, s.entity, s.severity, s.startsAt, s.endsAt, s.creator, s.comment, s.createdAt])
            return db.lastInsertedRowID
        }
    }

    public func silences() throws -> [Silence] {
        try pool.read { db in
            try Row.fetchAll(db, sql: "SELECT id, rule, zone, entity, severity, starts_at, ends_at, creator, comment, created_at FROM silences ORDER BY id").map {
                Silence(id: $0[0], rule: $0[1], zone: $0[2], entity: $0[3], severity: $0[4], startsAt: $0[5], endsAt: $0[6], creator: $0[7], comment: $0[8], createdAt: $0[9])
            }
        }
    }

    public func endSilence(id: Int64, at: Millis) throws -> Bool {
        try pool.write { db in
            try db.execute(sql: "UPDATE silences SET ends_at = min(ends_at, ?) WHERE id = ?", arguments: [at, id])
            return db.changesCount > 0
        }
    }

    public func addFeedback(_ f: Feedback) throws -> Int64 {
        try pool.write { db in
            try db.execute(sql: "INSERT INTO feedback(alert_id, verdict, comment, by, at) VALUES (?, ?, ?, ?, ?)", arguments: [f.alertId, f.verdict, f.comment, f.by, f.at])
            return db.lastInsertedRowID
        }
    }

    public func feedback(alertId: Int64?) throws -> [Feedback] {
        try pool.read { db in
            try Row.fetchAll(db, sql: "SELECT id, alert_id, verdict, comment, by, at FROM feedback" + (alertId == nil ? "" : " WHERE alert_id = ?") + " ORDER BY id",
                             arguments: alertId.map { [$0] } ?? []).map {
                Feedback(id: $0[0], alertId: $0[1], verdict: $0[2], comment: $0[3], by: $0[4], at: $0[5])
            }
        }
    }

    public func addReceiver(_ r: Receiver) throws {
        try pool.write { db in
            try db.execute(sql: "INSERT INTO receivers(id, url, secret, min_severity, created_at, kind, config) VALUES (?, ?, ?, ?, ?, ?, ?)",
                           arguments: [r.id, r.url, r.secret, r.minSeverity, r.createdAt, r.kind, r.config])
        }
    }

    public func receivers() throws -> [Receiver] {
        try pool.read { db in
            try Row.fetchAll(db, sql: "SELECT id, url, secret, min_severity, created_at, kind, config FROM receivers ORDER BY created_at, id").map {
                Receiver(id: $0[0], url: $0[1], secret: $0[2], minSeverity: $0[3], createdAt: $0[4], kind: $0[5], config: $0[6])
            }
        }
    }

    public func deleteReceiver(id: String) throws -> Bool {
        try pool.write { db in
            try db.execute(sql: "DELETE FROM receivers WHERE id = ?", arguments: [id])
            let n = db.changesCount
            try db.execute(sql: "UPDATE deliveries SET state = 'dead', last_error = 'receiver deleted' WHERE receiver = ? AND state = 'pending'", arguments: [id])
            return n > 0
        }
    }

    static let deliveryColumns = "id, receiver, alert_id, attempts, next_attempt_at, state, last_error, updated_at, notification"
    static func delivery(_ r: Row) -> Delivery {
        Delivery(id: r[0], receiver: r[1], alertId: r[2], notification: r[8], attempts: r[3], nextAttemptAt: r[4], state: r[5], lastError: r[6], updatedAt: r[7])
    }

    static func insertDeliveries(_ deliveries: [Delivery], _ db: Database) throws {
        let st = try db.cachedStatement(sql: "INSERT INTO deliveries(receiver, alert_id, attempts, next_attempt_at, state, last_error, updated_at, notification) VALUES (?, ?, ?, ?, ?, ?, ?, ?)")
        for d in deliveries {
            st.setUncheckedArguments([d.receiver, d.alertId, d.attempts, d.nextAttemptAt, d.state, d.lastError, d.updatedAt, d.notification])
            try st.execute()
        }
    }

    public func commitNotifications(state: String, deliveries: [Delivery]) throws {
        try pool.write { db in
            try db.execute(sql: "INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", arguments: [NotifyMeta.state, state])
            try Self.insertDeliveries(deliveries, db)
        }
    }

    public func dueDeliveries(now: Millis, limit: Int) throws -> [Delivery] {
        try pool.read { db in
            try Row.fetchAll(db, sql: "SELECT \(Self.deliveryColumns) FROM deliveries WHERE state = 'pending' AND next_attempt_at <= ? ORDER BY next_attempt_at, id LIMIT ?",
                             arguments: [now, limit]).map(Self.delivery)
        }
    }

    public func updateDelivery(_ d: Delivery) throws {
        try pool.write { db in
            try db.execute(sql: "UPDATE deliveries SET attempts = ?, next_attempt_at = ?, state = ?, last_error = ?, updated_at = ? WHERE id = ?",
                           arguments: [d.attempts, d.nextAttemptAt, d.state, d.lastError, d.updatedAt, d.id])
        }
    }

    public func deliveries(state: String?, receiver: String?, afterId: Int64, limit: Int) throws -> [Delivery] {
        var conds = ["id > ?"]
        var args: [any DatabaseValueConvertible] = [afterId]
        if let state { conds.append("state = ?"); args.append(state) }
        if let receiver { conds.append("receiver = ?"); args.append(receiver) }
        return try pool.read { db in
            try Row.fetchAll(db, sql: "SELECT \(Self.deliveryColumns) FROM deliveries WHERE \(conds.joined(separator: " AND ")) ORDER BY id LIMIT \(limit)",
                             arguments: StatementArguments(args)).map(Self.delivery)
        }
    }

    public func pendingDeliveryCount() throws -> Int {
        try pool.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM deliveries WHERE state = 'pending'") ?? 0 }
    }

    public func redrive(ids: [Int64]?, now: Millis) throws -> Int {
        try pool.write { db in
            var n = 0
            if let ids {
                for id in ids {
                    try db.execute(sql: "UPDATE deliveries SET state = 'pending', attempts = 0, next_attempt_at = ?, updated_at = ? WHERE id = ? AND state = 'dead'", arguments: [now, now, id])
                    n += db.changesCount
                }
            } else {
                try db.execute(sql: "UPDATE deliveries SET state = 'pending', attempts = 0, next_attempt_at = ?, updated_at = ? WHERE state = 'dead'", arguments: [now, now])
                n = db.changesCount
            }
            return n
        }
    }
}
