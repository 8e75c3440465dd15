import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import PostgresNIO
import TriplineCore
import TriplineStore

/// The PostgreSQL store (postgres-nio): the same tables and semantics as the SQLite store, in
/// a database the operator already runs and backs up. `tripline serve --store postgres://...`.
///
/// The store protocols are synchronous (the engine thread commits a batch and waits for it to
/// be durable before acknowledging). Queries run on connections that live on this store's own
/// event loop, and the calling thread waits for the result there, never on a loop thread of
/// the HTTP server or on Swift's cooperative pool waiting for a task: a wait on a future that
/// another thread completes cannot starve that thread.
///
/// Ingest is one multi-row statement per table inside the group commit's transaction: the log
/// batch is one row (its lines in one `bytea`), alerts and deliveries are multi-row inserts.
public final class PostgresStore: TriplineStore, SharedStore, @unchecked Sendable {
    public let url: String
    let configuration: PostgresConnection.Configuration
    let group: MultiThreadedEventLoopGroup
    let logger: Logger
    private var idle: [PostgresConnection] = []
    private var open = 0
    private var nextID = 0
    private let maxConnections: Int
    private let cond = NSCondition()

    /// Connects (checking the server is reachable) and migrates the schema to the current
    /// version. `url`: `postgres://user[:password]@host[:port]/database`.
    public init(url: String, maxConnections: Int = 8) throws {
        self.url = url
        configuration = try Self.configuration(url)
        group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        var l = Logger(label: "tripline.postgres")
        l.logLevel = .error
        logger = l
        self.maxConnections = max(2, maxConnections)
        try migrate()
    }

    deinit {
        closing = true
        if let c = activeConnection { let closing: EventLoopFuture<Void> = c.close(); _ = try? closing.wait() }
        for c in idle { let closing: EventLoopFuture<Void> = c.close(); _ = try? closing.wait() }
        try? group.syncShutdownGracefully()
    }

    /// A URL without its password, for messages.
    public static func redacted(_ url: String) -> String {
        guard var c = URLComponents(string: url) else { return "postgres://..." }
        if c.password != nil { c.password = "***" }
        return c.string ?? "postgres://..."
    }

    static func configuration(_ url: String) throws -> PostgresConnection.Configuration {
        guard let c = URLComponents(string: url), c.scheme == "postgres" || c.scheme == "postgresql" else {
            throw StoreError("--store: give postgres://user[:password]@host[:port]/database (got \(redacted(url)))")
        }
        guard let user = c.user, !user.isEmpty else { throw StoreError("--store: the URL names no user (postgres://USER@host/database)") }
        let db = c.path.hasPrefix("/") ? String(c.path.dropFirst()) : c.path
        guard !db.isEmpty else { throw StoreError("--store: the URL names no database (postgres://user@host/DATABASE)") }
        for q in c.queryItems ?? [] {
            throw StoreError("--store: unknown URL parameter '\(q.name)' (none are supported; TLS to the database is not offered yet)")
        }
        var conf = PostgresConnection.Configuration(host: c.host ?? "127.0.0.1", port: c.port ?? 5432, username: user,
                                                    password: c.password, database: db, tls: .disable)
        conf.options.connectTimeout = .seconds(10)
        return conf
    }

    // MARK: connections

    /// Runs `body` on a connection of the pool (opened on demand, at most `maxConnections`);
    /// a connection that failed is closed rather than returned.
    func withConnection<T>(_ body: (PostgresConnection) throws -> T) throws -> T {
        let conn = try take()
        do {
            let r = try body(conn)
            give(conn, healthy: true)
            return r
        } catch let e as PSQLError {
            give(conn, healthy: !conn.isClosed)
            throw StoreError(Self.describe(e))
        } catch {
            give(conn, healthy: !conn.isClosed && !(error is ChannelError))
            throw error
        }
    }

    private func take() throws -> PostgresConnection {
        cond.lock()
        while true {
            if let c = idle.popLast() {
                cond.unlock()
                if c.isClosed {
                    cond.lock()
                    open -= 1
                    continue
                }
                return c
            }
            if open < maxConnections {
                open += 1
                nextID += 1
                let id = nextID
                cond.unlock()
                do {
                    return try PostgresConnection.connect(on: group.next(), configuration: configuration, id: id, logger: logger).wait()
                } catch {
                    cond.lock()
                    open -= 1
                    cond.signal()
                    cond.unlock()
                    throw StoreError("cannot connect to PostgreSQL at \(Self.redacted(url)): \(String(reflecting: error))")
                }
            }
            cond.wait()
        }
    }

    private func give(_ c: PostgresConnection, healthy: Bool) {
        cond.lock()
        if healthy && !c.isClosed {
            idle.append(c)
        } else {
            open -= 1
            let closing: EventLoopFuture<Void> = c.close(); _ = closing
        }
        cond.signal()
        cond.unlock()
    }

    /// A PostgreSQL error in words: the server's message, SQLSTATE and detail (never the
    /// query's parameters, which may hold data).
    static func describe(_ e: PSQLError) -> String {
        if let info = e.serverInfo {
            var s = "PostgreSQL: " + (info[.message] ?? "error")
            if let code = info[.sqlState] { s += " (SQLSTATE \(code))" }
            if let d = info[.detail] { s += ": " + d }
            return s
        }
        return "PostgreSQL: \(e.code)"
    }

    /// One statement on a pooled connection.
    @discardableResult
    func run(_ q: PostgresQuery) throws -> PostgresQueryResult {
        try withConnection { try $0.query(q, logger: logger).wait() }
    }

    /// `body` inside BEGIN ... COMMIT on one connection (ROLLBACK when it throws).
    func transaction<T>(_ body: (Tx) throws -> T) throws -> T {
        try withConnection { conn in
            let tx = Tx(conn: conn, logger: logger)
            try tx.exec("BEGIN")
            do {
                let r = try body(tx)
                try tx.exec("COMMIT")
                return r
            } catch {
                _ = try? tx.exec("ROLLBACK")
                throw error
            }
        }
    }

    /// Statements of one transaction.
    struct Tx {
        let conn: PostgresConnection
        let logger: Logger
        @discardableResult
        func run(_ q: PostgresQuery) throws -> PostgresQueryResult { try conn.query(q, logger: logger).wait() }
        func exec(_ sql: String) throws { _ = try conn.query(PostgresQuery(unsafeSQL: sql), logger: logger).wait() }
        /// Several statements, each ending with `;` at the end of a line (migrations: no
        /// parameters, no `;` inside a statement's text), one after the other.
        func script(_ sql: String) throws {
            for stmt in sql.components(separatedBy: ";\n") + [] {
                let t = stmt.trimmingCharacters(in: .whitespacesAndNewlines)
                let body = t.hasSuffix(";") ? String(t.dropLast()) : t
                if !body.isEmpty { try exec(body) }
            }
        }
        /// Multi-row INSERTs of `rows` (`bind` appends a row's `columns` values), as few
        /// statements as PostgreSQL's 65,535 parameters allow.
        func insert<Row>(into table: String, columns: Int, _ rows: [Row], bind: (Row, inout PostgresBindings) -> Void) throws {
            let perStatement = 60_000 / columns
            var i = 0
            while i < rows.count {
                let part = rows[i..<min(rows.count, i + perStatement)]
                var binds = PostgresBindings(capacity: part.count * columns)
                var sql = "INSERT INTO \(table) VALUES "
                for (n, row) in part.enumerated() {
                    if n > 0 { sql += "," }
                    sql += "(" + (1...columns).map { "$\(n * columns + $0)" }.joined(separator: ",") + ")"
                    bind(row, &binds)
                }
                try run(PostgresQuery(unsafeSQL: sql, binds: binds))
                i += part.count
            }
        }
        /// Rows affected by an INSERT, UPDATE or DELETE.
        func changes(_ q: PostgresQuery) throws -> Int { try run(q).metadata.rows ?? 0 }
    }

    // MARK: the active server's lease

    /// The connection holding the session advisory lock of the active server (nil: not held).
    private var activeConnection: PostgresConnection?
    /// Once this server is active: its holder text, checked by every log commit (fencing).
    private var fence: String?
    static let activeLockKey: Int64 = 7311504
    /// Serialises audit appends of every server on the database.
    static let auditLockKey: Int64 = 7311505
    /// Fencing: a commit holds it shared while it checks the recorded holder; a takeover holds
    /// it exclusively while it records itself.
    static let fenceLockKey: Int64 = 7311506

    /// Called (once, on the store's loop) when the connection holding the active lease closes
    /// while the store is open: PostgreSQL released the lease, and a standby may take it.
    public var onActiveLeaseLost: (@Sendable () -> Void)? {
        get { cond.lock(); defer { cond.unlock() }; return _onLeaseLost }
        set { cond.lock(); _onLeaseLost = newValue; cond.unlock() }
    }
    private var _onLeaseLost: (@Sendable () -> Void)?
    private var closing = false

    /// Another server holds the database.
    public struct Held: Error, CustomStringConvertible {
        public var holder: String?
        public var description: String {
            "the database is in use: another tripline server (\(holder ?? "holder unknown")) is active on it; stop it first, give this server another database, or start it with --standby to take over when it stops"
        }
    }

    /// Takes the active server's lease or throws `Held` naming the holder.
    public func takeActiveLock(holder: String, url: String? = nil) throws {
        guard try tryTakeActive(holder: holder, url: url) else { throw Held(holder: try meta("active_holder")) }
    }

    /// The lease is a session advisory lock on a connection of its own, which PostgreSQL
    /// releases when that session ends (the process exits, is killed, or loses its
    /// connection), so a dead server never keeps the next one out. Taking it records the
    /// holder in meta under the fencing lock held exclusively, which waits for a commit of the
    /// previous holder still in flight (each commit holds it shared while it checks the
    /// holder): such a commit is either in the log before the new holder rebuilds from it, or
    /// fails. (Advisory locks live in memory: no row lock, no WAL, per commit.)
    public func tryTakeActive(holder: String, url: String?) throws -> Bool {
        let conn = try PostgresConnection.connect(on: group.next(), configuration: configuration, id: -1, logger: logger).wait()
        let got: Bool
        do {
            got = try conn.query("SELECT pg_try_advisory_lock(\(Self.activeLockKey))", logger: logger).wait().first!.decode(Bool.self)
        } catch {
            let closing: EventLoopFuture<Void> = conn.close()
            _ = try? closing.wait()
            throw error
        }
        guard got else {
            let closing: EventLoopFuture<Void> = conn.close()
            _ = try? closing.wait()
            return false
        }
        try transaction { tx in
            try tx.exec("SELECT pg_advisory_xact_lock(\(Self.fenceLockKey))")
            try tx.run("INSERT INTO meta(key, value) VALUES ('active_holder', \(holder)) ON CONFLICT (key) DO UPDATE SET value = excluded.value")
            try tx.run("INSERT INTO meta(key, value) VALUES ('active_url', \(url ?? "")) ON CONFLICT (key) DO UPDATE SET value = excluded.value")
        }
        cond.lock()
        activeConnection = conn
        fence = holder
        cond.unlock()
        conn.closeFuture.whenComplete { [weak self] _ in
            guard let self else { return }
            self.cond.lock()
            let notify = !self.closing && self.activeConnection === conn
            let f = self._onLeaseLost
            self.cond.unlock()
            if notify { f?() }
        }
        return true
    }

    public func activeServer() throws -> (holder: String?, url: String?) {
        let url = try meta("active_url")
        return (try meta("active_holder"), url?.isEmpty == false ? url : nil)
    }

    public func setActiveURL(_ url: String) throws { try setMeta("active_url", url) }

    /// In a commit's transaction: this server is still the recorded active one (fencing).
    func checkFence(_ tx: Tx) throws {
        cond.lock()
        let f = fence
        cond.unlock()
        guard let f else { return }
        try tx.exec("SELECT pg_advisory_xact_lock_shared(\(Self.fenceLockKey))")
        let now = try tx.run("SELECT value FROM meta WHERE key = 'active_holder'").first.map { try $0.decode(String.self) }
        guard now == f else { throw LostActiveLease(activeNow: now) }
    }

    // MARK: schema

    /// Versioned migrations, applied in order, each once, under a transaction-scoped advisory
    /// lock (two servers starting together do not both migrate).
    static let migrations: [(String, String)] = [
        ("v1", """
            CREATE TABLE log(first_seq BIGINT PRIMARY KEY, count BIGINT NOT NULL, max_time BIGINT NOT NULL, stored_at BIGINT NOT NULL, lines BYTEA NOT NULL);
            CREATE INDEX log_stored ON log(stored_at);
            CREATE TABLE alerts(id BIGINT PRIMARY KEY, rule TEXT NOT NULL, version BIGINT NOT NULL, state TEXT NOT NULL,
                time BIGINT NOT NULL, entity TEXT, zone TEXT, pair_a TEXT, pair_b TEXT, line TEXT NOT NULL,
                silence BIGINT, created_at BIGINT NOT NULL);
            CREATE INDEX alerts_rule ON alerts(rule, id);
            CREATE INDEX alerts_entity ON alerts(entity, time);
            CREATE INDEX alerts_pair ON alerts(pair_a, pair_b);
            CREATE INDEX alerts_time ON alerts(time);
            CREATE INDEX alerts_created ON alerts(created_at);
            CREATE TABLE rule_versions(rule TEXT NOT NULL, version BIGINT NOT NULL, json TEXT NOT NULL, deleted BOOLEAN NOT NULL,
                created_at BIGINT NOT NULL, created_by TEXT NOT NULL, PRIMARY KEY(rule, version));
            CREATE TABLE zones(id TEXT PRIMARY KEY, json TEXT NOT NULL, updated_at BIGINT NOT NULL);
            CREATE TABLE entities(id TEXT PRIMARY KEY, json TEXT NOT NULL, updated_at BIGINT NOT NULL);
            CREATE TABLE tokens(id TEXT PRIMARY KEY, hash TEXT NOT NULL UNIQUE, role TEXT NOT NULL, name TEXT NOT NULL, created_at BIGINT NOT NULL);
            CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
            CREATE TABLE silences(id BIGSERIAL PRIMARY KEY, rule TEXT, zone TEXT, entity TEXT, severity TEXT,
                starts_at BIGINT NOT NULL, ends_at BIGINT NOT NULL, creator TEXT NOT NULL, comment TEXT NOT NULL, created_at BIGINT NOT NULL);
            CREATE TABLE feedback(id BIGSERIAL PRIMARY KEY, alert_id BIGINT NOT NULL, verdict TEXT NOT NULL, comment TEXT NOT NULL,
                by TEXT NOT NULL, at BIGINT NOT NULL);
            CREATE INDEX feedback_alert ON feedback(alert_id);
            CREATE TABLE receivers(id TEXT PRIMARY KEY, url TEXT NOT NULL, secret TEXT NOT NULL, min_severity TEXT, created_at BIGINT NOT NULL);
            CREATE TABLE deliveries(id BIGSERIAL PRIMARY KEY, receiver TEXT NOT NULL, alert_id BIGINT NOT NULL, attempts BIGINT NOT NULL,
                next_attempt_at BIGINT NOT NULL, state TEXT NOT NULL, last_error TEXT, updated_at BIGINT NOT NULL);
            CREATE INDEX deliveries_due ON deliveries(state, next_attempt_at);
            CREATE INDEX deliveries_alert ON deliveries(alert_id);
            CREATE TABLE audit(pos BIGSERIAL PRIMARY KEY, seq BIGINT NOT NULL UNIQUE, at BIGINT NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL,
                target TEXT NOT NULL, detail TEXT NOT NULL, prev TEXT NOT NULL, hash TEXT NOT NULL);
            """),
        // A log batch (about 125 bytes per event) is stored out of line without compression:
        // pglz over every batch cost the database more CPU than it saved, and the lines are
        // read back only on a rebuild.
        ("v2", """
            ALTER TABLE log ALTER COLUMN lines SET STORAGE EXTERNAL;
            """),
        // Group notifications of the notification policy wait in the outbox as their body.
        ("v3", """
            ALTER TABLE deliveries ADD COLUMN notification TEXT;
            """),
        // Receivers of other kinds than Standard Webhooks (Slack, PagerDuty, NATS).
        ("v4", """
            ALTER TABLE receivers ADD COLUMN kind TEXT NOT NULL DEFAULT 'webhook';
            ALTER TABLE receivers ADD COLUMN config TEXT;
            """),
    ]


    func migrate() throws {
        try transaction { tx in
            try tx.exec("SELECT pg_advisory_xact_lock(7311503)")
            try tx.exec("CREATE TABLE IF NOT EXISTS tripline_migrations(name TEXT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())")
            var done = Set<String>()
            for row in try tx.run("SELECT name FROM tripline_migrations") { done.insert(try row.decode(String.self)) }
            let known = Set(Self.migrations.map(\.0))
            if let unknown = done.subtracting(known).sorted().first {
                throw StoreError("the database has migration '\(unknown)', which this tripline does not know: it was written by a newer version; run that version or restore a backup")
            }
            for (name, sql) in Self.migrations where !done.contains(name) {
                try tx.script(sql)
                try tx.run("INSERT INTO tripline_migrations(name) VALUES (\(name))")
            }
        }
    }

    // MARK: event log

    public func commit(log batch: LogBatch?, alerts: [StoredAlert], deliveries: [Delivery]) throws {
        try transaction { tx in
            try checkFence(tx)
            if let b = batch {
                var buf = ByteBuffer()
                buf.writeBytes(b.lines)
                try tx.run("INSERT INTO log(first_seq, count, max_time, stored_at, lines) VALUES (\(b.firstSeq), \(Int64(b.count)), \(b.maxTime), \(b.storedAt), \(buf))")
            }
            try tx.insert(into: "alerts(id, rule, version, state, time, entity, zone, pair_a, pair_b, line, silence, created_at)", columns: 12, alerts) { a, b in
                b.append(a.id); b.append(a.rule); b.append(Int64(a.version)); b.append(a.firing ? "firing" : "resolved")
                b.append(a.time); b.append(a.entity); b.append(a.zone); b.append(a.pairA); b.append(a.pairB)
                b.append(a.line); b.append(a.silence); b.append(a.createdAt)
            }
            try Self.insertDeliveries(deliveries, tx)
        }
    }

    static func batch(_ row: PostgresRow) throws -> LogBatch {
        let (f, c, m, s, lines) = try row.decode((Int64, Int64, Int64, Int64, ByteBuffer).self)
        return LogBatch(firstSeq: f, count: Int(c), maxTime: m, storedAt: s, lines: Array(lines.readableBytesView))
    }

    public func forEachLogBatch(_ body: (LogBatch) throws -> Void) throws {
        var after: Int64 = 0
        while true {
            let rows = try run("SELECT first_seq, count, max_time, stored_at, lines FROM log WHERE first_seq > \(after) ORDER BY first_seq LIMIT 64")
            var chunk: [LogBatch] = []
            for r in rows { chunk.append(try Self.batch(r)) }
            guard let last = chunk.last else { return }
            after = last.firstSeq
            for b in chunk { try body(b) }
        }
    }

    public func logLines(_ seqs: [Int64]) throws -> [Int64: String] {
        var out: [Int64: String] = [:]
        let want = Set(seqs)
        var batches: [LogBatch] = []
        try withConnection { conn in
            for seq in seqs.sorted() {
                if batches.contains(where: { seq >= $0.firstSeq && seq < $0.firstSeq + Int64($0.count) }) { continue }
                let rows = try conn.query("SELECT first_seq, count, max_time, stored_at, lines FROM log WHERE first_seq <= \(seq) ORDER BY first_seq DESC LIMIT 1", logger: logger).wait()
                for r in rows { batches.append(try Self.batch(r)) }
            }
        }
        for b in batches {
            b.forEachLine { line, seq in if want.contains(seq) { out[seq] = String(decoding: line, as: UTF8.self) } }
        }
        return out
    }

    func int64(_ q: PostgresQuery) throws -> Int64? {
        for r in try run(q) { return try r.decode(Int64?.self) }
        return nil
    }

    public func logCount() throws -> Int { Int(try int64("SELECT coalesce(sum(count), 0)::bigint FROM log") ?? 0) }
    public func nextLogSeq() throws -> Int64 { try int64("SELECT max(first_seq + count) FROM log") ?? 1 }
    public func firstLogSeq() throws -> Int64? { try int64("SELECT min(first_seq) FROM log") }

    public func deleteLog(storedBefore cutoff: Millis, limit: Int) throws -> Int {
        try transaction { tx in
            var n: Int64 = 0
            for r in try tx.run("DELETE FROM log WHERE first_seq IN (SELECT first_seq FROM log WHERE stored_at < \(cutoff) ORDER BY first_seq LIMIT \(Int64(limit))) RETURNING count") {
                n += try r.decode(Int64.self)
            }
            return Int(n)
        }
    }

    public func eraseEntity(id: String, pseudonym: String, seqs: [Int64]) throws -> (Int, Int) {
        let want = Set(seqs)
        return try transaction { tx in
            var erased = 0
            // Every log batch: the entity's own lines become `#erased`; in the others' lines
            // every string naming the id as a token gets the pseudonym (counterparts, attrs).
            var firsts: [Int64] = []
            for r in try tx.run("SELECT first_seq FROM log ORDER BY first_seq") { firsts.append(try r.decode(Int64.self)) }
            for f in firsts {
                var batch: LogBatch?
                for r in try tx.run("SELECT first_seq, count, max_time, stored_at, lines FROM log WHERE first_seq = \(f)") { batch = try Self.batch(r) }
                guard let b = batch, let (lines, n) = Erasure.rewrite(b, erasing: want, id: id, pseudonym: pseudonym) else { continue }
                var buf = ByteBuffer()
                buf.writeBytes(lines)
                try tx.run("UPDATE log SET lines = \(buf) WHERE first_seq = \(f)")
                erased += n
            }
            var n = 0
            let inner = String(JSONText.quoted(id).dropFirst().dropLast())
            var rows: [StoredAlert] = []
            for r in try tx.run(PostgresQuery(unsafeSQL: "SELECT \(Self.alertColumns) FROM alerts WHERE strpos(line, $1) > 0 OR strpos(line, $2) > 0 OR strpos(entity, $1) > 0 OR strpos(pair_a, $1) > 0 OR strpos(pair_b, $1) > 0",
                                                 binds: Self.binds(id, inner))) {
                rows.append(try Self.alert(r))
            }
            for a in rows {
                let (b, changed) = Erasure.rewrite(a, id: id, pseudonym: pseudonym)
                guard changed else { continue }
                try tx.run("UPDATE alerts SET entity = \(b.entity), pair_a = \(b.pairA), pair_b = \(b.pairB), line = \(b.line) WHERE id = \(b.id)")
                n += 1
            }
            try tx.run("DELETE FROM entities WHERE id = \(id)")
            // The catalog and rule versions of others, silences, feedback, token names.
            func text(_ s: String) -> String { Erasure.rewrite(s, id: id, pseudonym: pseudonym) ?? s }
            for table in ["zones", "entities"] {
                var items: [(String, String)] = []
                for r in try tx.run(PostgresQuery(unsafeSQL: "SELECT id, json FROM \(table) WHERE strpos(json, $1) > 0 OR strpos(json, $2) > 0 OR strpos(id, $1) > 0", binds: Self.binds(id, inner))) {
                    items.append(try r.decode((String, String).self))
                }
                for (k, json) in items {
                    let j = Erasure.rewriteJSON(json, id: id, pseudonym: pseudonym) ?? json
                    try tx.run(PostgresQuery(unsafeSQL: "UPDATE \(table) SET id = $1, json = $2 WHERE id = $3", binds: Self.binds(text(k), j, k)))
                }
            }
            var versions: [(String, Int64, String)] = []
            for r in try tx.run(PostgresQuery(unsafeSQL: "SELECT rule, version, json FROM rule_versions WHERE strpos(json, $1) > 0 OR strpos(json, $2) > 0", binds: Self.binds(id, inner))) {
                versions.append(try r.decode((String, Int64, String).self))
            }
            for (r, v, json) in versions {
                if let j = Erasure.rewriteJSON(json, id: id, pseudonym: pseudonym) {
                    try tx.run("UPDATE rule_versions SET json = \(j) WHERE rule = \(r) AND version = \(v)")
                }
            }
            var sil: [(Int64, String?, String)] = []
            for r in try tx.run("SELECT id, entity, comment FROM silences WHERE strpos(entity, \(id)) > 0 OR strpos(comment, \(id)) > 0") {
                sil.append(try r.decode((Int64, String?, String).self))
            }
            for (k, e, c) in sil { try tx.run("UPDATE silences SET entity = \(e.map(text)), comment = \(text(c)) WHERE id = \(k)") }
            var fb: [(Int64, String)] = []
            for r in try tx.run("SELECT id, comment FROM feedback WHERE strpos(comment, \(id)) > 0") { fb.append(try r.decode((Int64, String).self)) }
            for (k, c) in fb { try tx.run("UPDATE feedback SET comment = \(text(c)) WHERE id = \(k)") }
            var toks: [(String, String)] = []
            for r in try tx.run("SELECT id, name FROM tokens WHERE strpos(name, \(id)) > 0") { toks.append(try r.decode((String, String).self)) }
            for (k, c) in toks { try tx.run("UPDATE tokens SET name = \(text(c)) WHERE id = \(k)") }
            // Group notifications in the outbox and the notifier's state name entities.
            var bodies: [(Int64, String)] = []
            for r in try tx.run(PostgresQuery(unsafeSQL: "SELECT id, notification FROM deliveries WHERE strpos(notification, $1) > 0 OR strpos(notification, $2) > 0", binds: Self.binds(id, inner))) {
                bodies.append(try r.decode((Int64, String).self))
            }
            for (k, body) in bodies {
                if let j = Erasure.rewriteJSON(body, id: id, pseudonym: pseudonym) { try tx.run("UPDATE deliveries SET notification = \(j) WHERE id = \(k)") }
            }
            if let st = try tx.run("SELECT value FROM meta WHERE key = \(NotifyMeta.state)").first.map({ try $0.decode(String.self) }),
               let j = Erasure.rewriteJSON(st, id: id, pseudonym: pseudonym) {
                try tx.run("UPDATE meta SET value = \(j) WHERE key = \(NotifyMeta.state)")
            }
            return (erased, n)
        }
    }

    static func binds(_ values: String...) -> PostgresBindings {
        var b = PostgresBindings(capacity: values.count)
        for v in values { b.append(v) }
        return b
    }

    /// Old row versions stay in the table files until VACUUM marks their space free; FULL
    /// rewrites the tables the erasure and retention touch, so deleted text is not left in them.
    public func compact() throws {
        try withConnection { conn in
            for t in ["log", "alerts", "entities", "zones", "rule_versions", "silences", "feedback", "tokens", "deliveries", "audit", "meta"] {
                _ = try conn.query(PostgresQuery(unsafeSQL: "VACUUM (FULL) \(t)"), logger: logger).wait()
            }
            // The files VACUUM FULL replaced are unlinked at the next checkpoint; ask for it
            // now when the role may (superuser or pg_checkpoint), else it comes on its own
            // (checkpoint_timeout).
            _ = try? conn.query("CHECKPOINT", logger: logger).wait()
        }
    }

    // MARK: alerts

    static let alertColumns = "id, rule, version, state, time, entity, zone, pair_a, pair_b, line, silence, created_at"
    static func alert(_ r: PostgresRow) throws -> StoredAlert {
        let (id, rule, version, state, time, entity, zone, a, b, line, silence, created) =
            try r.decode((Int64, String, Int64, String, Int64, String?, String?, String?, String?, String, Int64?, Int64).self)
        return StoredAlert(id: id, rule: rule, version: Int(version), firing: state == "firing", time: time, entity: entity, zone: zone,
                           pairA: a, pairB: b, line: line, silence: silence, createdAt: created)
    }

    public func maxAlertId() throws -> Int64 { try int64("SELECT max(id) FROM alerts") ?? 0 }

    public func alerts(_ q: AlertQuery) throws -> [StoredAlert] {
        var conds: [String] = []
        var binds = PostgresBindings()
        func p() -> String { "$\(binds.count)" }
        if let r = q.rule { binds.append(r); conds.append("rule = \(p())") }
        if let s = q.state { binds.append(s); conds.append("state = \(p())") }
        if let e = q.entity { binds.append(e); conds.append("(entity = \(p()) OR pair_a = \(p()) OR pair_b = \(p()))") }
        if let z = q.zone { binds.append(z); conds.append("zone = \(p())") }
        if let f = q.from { binds.append(f); conds.append("time >= \(p())") }
        if let t = q.to { binds.append(t); conds.append("time <= \(p())") }
        if let a = q.afterId { binds.append(a); conds.append("id > \(p())") }
        let sql = "SELECT \(Self.alertColumns) FROM alerts" + (conds.isEmpty ? "" : " WHERE " + conds.joined(separator: " AND "))
            + " ORDER BY id LIMIT \(max(0, q.limit))"
        return try run(PostgresQuery(unsafeSQL: sql, binds: binds)).map(Self.alert)
    }

    public func alert(id: Int64) throws -> StoredAlert? {
        try run(PostgresQuery(unsafeSQL: "SELECT \(Self.alertColumns) FROM alerts WHERE id = $1", binds: { var b = PostgresBindings(); b.append(id); return b }()))
            .first.map(Self.alert)
    }

    public func deleteAlerts(createdBefore cutoff: Millis, limit: Int) throws -> Int {
        try transaction { tx in
            var last: Int64?
            for r in try tx.run("SELECT max(id) FROM (SELECT id FROM alerts WHERE created_at < \(cutoff) ORDER BY id LIMIT \(Int64(limit))) s") {
                last = try r.decode(Int64?.self)
            }
            guard let last else { return 0 }
            try tx.run("DELETE FROM deliveries WHERE alert_id <= \(last) AND alert_id IN (SELECT id FROM alerts WHERE created_at < \(cutoff))")
            try tx.run("DELETE FROM feedback WHERE alert_id <= \(last) AND alert_id IN (SELECT id FROM alerts WHERE created_at < \(cutoff))")
            return try tx.changes("DELETE FROM alerts WHERE id <= \(last) AND created_at < \(cutoff)")
        }
    }

    public func addFeedback(_ f: Feedback) throws -> Int64 {
        try run("INSERT INTO feedback(alert_id, verdict, comment, by, at) VALUES (\(f.alertId), \(f.verdict), \(f.comment), \(f.by), \(f.at)) RETURNING id")
            .first!.decode(Int64.self)
    }

    public func feedback(alertId: Int64?) throws -> [Feedback] {
        let q: PostgresQuery = alertId.map { "SELECT id, alert_id, verdict, comment, by, at FROM feedback WHERE alert_id = \($0) ORDER BY id" }
            ?? "SELECT id, alert_id, verdict, comment, by, at FROM feedback ORDER BY id"
        return try run(q).map {
            let (id, a, v, c, by, at) = try $0.decode((Int64, Int64, String, String, String, Int64).self)
            return Feedback(id: id, alertId: a, verdict: v, comment: c, by: by, at: at)
        }
    }

    // MARK: catalog

    public func ruleVersions(_ id: String?) throws -> [RuleVersion] {
        let q: PostgresQuery = id.map { "SELECT rule, version, json, deleted, created_at, created_by FROM rule_versions WHERE rule = \($0) ORDER BY rule, version" }
            ?? "SELECT rule, version, json, deleted, created_at, created_by FROM rule_versions ORDER BY rule, version"
        return try run(q).map {
            let (r, v, j, d, c, by) = try $0.decode((String, Int64, String, Bool, Int64, String).self)
            return RuleVersion(rule: r, version: Int(v), json: j, deleted: d, createdAt: c, createdBy: by)
        }
    }

    public func appendRuleVersions(_ versions: [RuleVersion]) throws {
        try transaction { tx in
            for v in versions {
                try tx.run("INSERT INTO rule_versions(rule, version, json, deleted, created_at, created_by) VALUES (\(v.rule), \(Int64(v.version)), \(v.json), \(v.deleted), \(v.createdAt), \(v.createdBy))")
            }
        }
    }

    public func catalog(_ table: CatalogTable) throws -> [CatalogItem] {
        try run(PostgresQuery(unsafeSQL: "SELECT id, json, updated_at FROM \(table.rawValue) ORDER BY id COLLATE \"C\"")).map {
            let (id, j, u) = try $0.decode((String, String, Int64).self)
            return CatalogItem(id: id, json: j, updatedAt: u)
        }
    }

    public func catalogItem(_ table: CatalogTable, id: String) throws -> CatalogItem? {
        try run(PostgresQuery(unsafeSQL: "SELECT id, json, updated_at FROM \(table.rawValue) WHERE id = $1", binds: Self.binds(id))).first.map {
            let (id, j, u) = try $0.decode((String, String, Int64).self)
            return CatalogItem(id: id, json: j, updatedAt: u)
        }
    }

    public func putCatalog(_ table: CatalogTable, _ items: [CatalogItem]) throws {
        try transaction { tx in
            var i = 0
            while i < items.count {
                let part = items[i..<min(items.count, i + 10000)]
                var binds = PostgresBindings(capacity: part.count * 3)
                var sql = "INSERT INTO \(table.rawValue)(id, json, updated_at) VALUES "
                var n = 0
                // One statement cannot update a row twice: the last of equal ids wins, as in
                // a sequence of single upserts.
                var seen = Set<String>()
                let unique = part.reversed().filter { seen.insert($0.id).inserted }.reversed()
                for item in unique {
                    if n > 0 { sql += "," }
                    sql += "($\(n * 3 + 1),$\(n * 3 + 2),$\(n * 3 + 3))"
                    binds.append(item.id); binds.append(item.json); binds.append(item.updatedAt)
                    n += 1
                }
                sql += " ON CONFLICT (id) DO UPDATE SET json = excluded.json, updated_at = excluded.updated_at"
                try tx.run(PostgresQuery(unsafeSQL: sql, binds: binds))
                i += part.count
            }
        }
    }

    public func deleteCatalog(_ table: CatalogTable, id: String) throws -> Bool {
        try withConnection { conn in
            try conn.query(PostgresQuery(unsafeSQL: "DELETE FROM \(table.rawValue) WHERE id = $1", binds: Self.binds(id)), logger: logger).wait().metadata.rows ?? 0
        } > 0
    }

    public func meta(_ key: String) throws -> String? {
        try run("SELECT value FROM meta WHERE key = \(key)").first?.decode(String.self)
    }

    public func setMeta(_ key: String, _ value: String) throws {
        try run("INSERT INTO meta(key, value) VALUES (\(key), \(value)) ON CONFLICT (key) DO UPDATE SET value = excluded.value")
    }

    // MARK: access

    public func addToken(_ t: TokenRecord) throws {
        try run("INSERT INTO tokens(id, hash, role, name, created_at) VALUES (\(t.id), \(t.hash), \(t.role.rawValue), \(t.name), \(t.createdAt))")
    }

    static func token(_ r: PostgresRow) throws -> TokenRecord {
        let (id, h, role, name, c) = try r.decode((String, String, String, String, Int64).self)
        return TokenRecord(id: id, hash: h, role: Role(rawValue: role) ?? .ingest, name: name, createdAt: c)
    }

    public func token(hash: String) throws -> TokenRecord? {
        try run("SELECT id, hash, role, name, created_at FROM tokens WHERE hash = \(hash)").first.map(Self.token)
    }

    public func tokens() throws -> [TokenRecord] {
        try run("SELECT id, hash, role, name, created_at FROM tokens ORDER BY created_at, id COLLATE \"C\"").map(Self.token)
    }

    public func deleteToken(id: String) throws -> Bool {
        try (run("DELETE FROM tokens WHERE id = \(id)").metadata.rows ?? 0) > 0
    }

    @discardableResult
    public func appendAudit(_ make: (_ head: AuditRecord?) throws -> AuditRecord) throws -> AuditRecord {
        try transaction { tx in
            // Appends from every server on this database (the active and its standbys) queue here.
            try tx.exec("SELECT pg_advisory_xact_lock(\(Self.auditLockKey))")
            let head = try tx.run("SELECT seq, at, actor, action, target, detail, prev, hash FROM audit ORDER BY seq DESC LIMIT 1").first.map(Self.audit)
            let r = try make(head)
            try tx.run("INSERT INTO audit(seq, at, actor, action, target, detail, prev, hash) VALUES (\(r.seq), \(r.at), \(r.actor), \(r.action), \(r.target), \(r.detail), \(r.prev), \(r.hash))")
            try tx.run("INSERT INTO meta(key, value) VALUES ('audit_head', \("\(r.seq) \(r.hash)")) ON CONFLICT (key) DO UPDATE SET value = excluded.value")
            return r
        }
    }

    static func audit(_ r: PostgresRow) throws -> AuditRecord {
        let (seq, at, actor, action, target, detail, prev, hash) = try r.decode((Int64, Int64, String, String, String, String, String, String).self)
        return AuditRecord(seq: seq, at: at, actor: actor, action: action, target: target, detail: detail, prev: prev, hash: hash)
    }

    public func auditHead() throws -> AuditRecord? {
        try run("SELECT seq, at, actor, action, target, detail, prev, hash FROM audit ORDER BY seq DESC LIMIT 1").first.map(Self.audit)
    }

    public func auditRecords(afterSeq: Int64, limit: Int) throws -> [AuditRecord] {
        try run("SELECT seq, at, actor, action, target, detail, prev, hash FROM audit WHERE seq > \(afterSeq) ORDER BY seq LIMIT \(Int64(limit))").map(Self.audit)
    }

    /// In stored order (`pos`, the insertion order), not by seq.
    public func forEachAudit(_ body: (AuditRecord) throws -> Void) throws {
        var after: Int64 = 0
        while true {
            let rows = try run("SELECT pos, seq, at, actor, action, target, detail, prev, hash FROM audit WHERE pos > \(after) ORDER BY pos LIMIT 1000")
            if rows.count == 0 { return }
            for r in rows {
                let (pos, seq, at, actor, action, target, detail, prev, hash) = try r.decode((Int64, Int64, Int64, String, String, String, String, String, String).self)
                after = pos
                try body(AuditRecord(seq: seq, at: at, actor: actor, action: action, target: target, detail: detail, prev: prev, hash: hash))
            }
        }
    }

    public func deleteAudit(before cutoff: Millis, limit: Int) throws -> Int {
        try transaction { tx in
            let total = try tx.run("SELECT count(*) FROM audit").first!.decode(Int64.self)
            let keep = Int64(min(limit, max(0, Int(total) - 1)))
            var last: Int64?
            for r in try tx.run("SELECT max(seq) FROM (SELECT seq FROM audit WHERE at < \(cutoff) ORDER BY seq LIMIT \(keep)) s") { last = try r.decode(Int64?.self) }
            guard let last else { return 0 }
            let n = try tx.changes("DELETE FROM audit WHERE seq <= \(last)")
            if let first = try tx.run("SELECT seq, prev FROM audit ORDER BY seq LIMIT 1").first {
                let (seq, prev) = try first.decode((Int64, String).self)
                try tx.run("INSERT INTO meta(key, value) VALUES ('audit_anchor', \("\(seq) \(prev)")) ON CONFLICT (key) DO UPDATE SET value = excluded.value")
            }
            return n
        }
    }

    // MARK: notifications

    public func addSilence(_ s: Silence) throws -> Int64 {
        try run("""
            INSERT INTO silences(rule, zone, entity, severity, starts_at, ends_at, creator, comment, created_at)
            VALUES (\(s.rule), \(s.zone), \(s.entity), \(s.severity), \(s.startsAt), \(s.endsAt), \(s.creator), \(s.comment), \(s.createdAt)) RETURNING id
            """).first!.decode(Int64.self)
    }

    public func silences() throws -> [Silence] {
        try run("SELECT id, rule, zone, entity, severity, starts_at, ends_at, creator, comment, created_at FROM silences ORDER BY id").map {
            let (id, rule, zone, entity, sev, s, e, creator, comment, c) =
                try $0.decode((Int64, String?, String?, String?, String?, Int64, Int64, String, String, Int64).self)
            return Silence(id: id, rule: rule, zone: zone, entity: entity, severity: sev, startsAt: s, endsAt: e, creator: creator, comment: comment, createdAt: c)
        }
    }

    public func endSilence(id: Int64, at: Millis) throws -> Bool {
        try (run("UPDATE silences SET ends_at = LEAST(ends_at, \(at)) WHERE id = \(id)").metadata.rows ?? 0) > 0
    }

    public func addReceiver(_ r: Receiver) throws {
        try run("INSERT INTO receivers(id, url, secret, min_severity, created_at, kind, config) VALUES (\(r.id), \(r.url), \(r.secret), \(r.minSeverity), \(r.createdAt), \(r.kind), \(r.config))")
    }

    public func receivers() throws -> [Receiver] {
        try run("SELECT id, url, secret, min_severity, created_at, kind, config FROM receivers ORDER BY created_at, id COLLATE \"C\"").map {
            let (id, url, secret, sev, c, kind, config) = try $0.decode((String, String, String, String?, Int64, String, String?).self)
            return Receiver(id: id, url: url, secret: secret, minSeverity: sev, createdAt: c, kind: kind, config: config)
        }
    }

    public func deleteReceiver(id: String) throws -> Bool {
        try transaction { tx in
            let n = try tx.changes("DELETE FROM receivers WHERE id = \(id)")
            try tx.run("UPDATE deliveries SET state = 'dead', last_error = 'receiver deleted' WHERE receiver = \(id) AND state = 'pending'")
            return n > 0
        }
    }

    static let deliveryColumns = "id, receiver, alert_id, attempts, next_attempt_at, state, last_error, updated_at, notification"
    static func delivery(_ r: PostgresRow) throws -> Delivery {
        let (id, rc, a, att, next, state, err, u, body) = try r.decode((Int64, String, Int64, Int64, Int64, String, String?, Int64, String?).self)
        return Delivery(id: id, receiver: rc, alertId: a, notification: body, attempts: Int(att), nextAttemptAt: next, state: state, lastError: err, updatedAt: u)
    }

    static func insertDeliveries(_ deliveries: [Delivery], _ tx: Tx) throws {
        try tx.insert(into: "deliveries(receiver, alert_id, attempts, next_attempt_at, state, last_error, updated_at, notification)", columns: 8, deliveries) { d, b in
            b.append(d.receiver); b.append(d.alertId); b.append(Int64(d.attempts)); b.append(d.nextAttemptAt)
            b.append(d.state); b.append(d.lastError); b.append(d.updatedAt); b.append(d.notification)
        }
    }

    public func commitNotifications(state: String, deliveries: [Delivery]) throws {
        try transaction { tx in
            try checkFence(tx)
            try tx.run("INSERT INTO meta(key, value) VALUES (\(NotifyMeta.state), \(state)) ON CONFLICT (key) DO UPDATE SET value = excluded.value")
            try Self.insertDeliveries(deliveries, tx)
        }
    }

    public func dueDeliveries(now: Millis, limit: Int) throws -> [Delivery] {
        try run(PostgresQuery(unsafeSQL: "SELECT \(Self.deliveryColumns) FROM deliveries WHERE state = 'pending' AND next_attempt_at <= $1 ORDER BY next_attempt_at, id LIMIT $2",
                              binds: { var b = PostgresBindings(); b.append(now); b.append(Int64(limit)); return b }())).map(Self.delivery)
    }

    public func updateDelivery(_ d: Delivery) throws {
        try run("UPDATE deliveries SET attempts = \(Int64(d.attempts)), next_attempt_at = \(d.nextAttemptAt), state = \(d.state), last_error = \(d.lastError), updated_at = \(d.updatedAt) WHERE id = \(d.id)")
    }

    public func deliveries(state: String?, receiver: String?, afterId: Int64, limit: Int) throws -> [Delivery] {
        var binds = PostgresBindings()
        binds.append(afterId)
        var conds = ["id > $1"]
        if let state { binds.append(state); conds.append("state = $\(binds.count)") }
        if let receiver { binds.append(receiver); conds.append("receiver = $\(binds.count)") }
        return try run(PostgresQuery(unsafeSQL: "SELECT \(Self.deliveryColumns) FROM deliveries WHERE \(conds.joined(separator: " AND ")) ORDER BY id LIMIT \(max(0, limit))",
                                     binds: binds)).map(Self.delivery)
    }

    public func pendingDeliveryCount() throws -> Int {
        Int(try int64("SELECT count(*) FROM deliveries WHERE state = 'pending'") ?? 0)
    }

    public func redrive(ids: [Int64]?, now: Millis) throws -> Int {
        try transaction { tx in
            if let ids {
                var n = 0
                for id in ids {
                    n += try tx.changes("UPDATE deliveries SET state = 'pending', attempts = 0, next_attempt_at = \(now), updated_at = \(now) WHERE id = \(id) AND state = 'dead'")
                }
                return n
            }
            return try tx.changes("UPDATE deliveries SET state = 'pending', attempts = 0, next_attempt_at = \(now), updated_at = \(now) WHERE state = 'dead'")
        }
    }
}

/// A store that cannot be opened or used as configured.
public struct StoreError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// Databases on a PostgreSQL server, for tests and tools (`tripline serve` never creates one:
/// an operator names an existing database).
public enum PostgresAdmin {
    /// `url` with its database replaced by `database`.
    public static func url(_ url: String, database: String) -> String {
        guard var c = URLComponents(string: url) else { return url }
        c.path = "/" + database
        return c.string ?? url
    }

    /// Runs `sql` (one statement, outside a transaction) on the database of `url`.
    public static func execute(url: String, _ sql: String) throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? group.syncShutdownGracefully() }
        var logger = Logger(label: "tripline.postgres.admin")
        logger.logLevel = .error
        let conn = try PostgresConnection.connect(on: group.next(), configuration: PostgresStore.configuration(url), id: 0, logger: logger).wait()
        defer { let closing: EventLoopFuture<Void> = conn.close(); _ = try? closing.wait() }
        _ = try conn.query(PostgresQuery(unsafeSQL: sql), logger: logger).wait()
    }

    /// Creates an empty database `name` (letters, digits and underscores) and returns its URL.
    public static func createDatabase(url: String, name: String) throws -> String {
        guard !name.isEmpty, name.utf8.allSatisfy({ ($0 >= 97 && $0 <= 122) || ($0 >= 48 && $0 <= 57) || $0 == 95 }) else {
            throw StoreError("database names here are lower-case letters, digits and underscores (got \(name))")
        }
        try execute(url: url, "CREATE DATABASE \(name)")
        return Self.url(url, database: name)
    }

    public static func dropDatabase(url: String, name: String) throws {
        try execute(url: url, "DROP DATABASE IF EXISTS \(name) WITH (FORCE)")
    }
}
