import ArgumentParser
import Foundation
import Logging
import NIOCore
import TriplineCluster
import TriplineCore
import TriplinePostgres
import TriplineSQLite
import TriplineStore
import TriplineServer

struct ServerOptions: ParsableArguments {
    @Option(help: "Data folder (created if missing): the SQLite store (unless --store names another), the audit key and the folder lock.") var data: String
    @Option(help: "Where to keep events, alerts and the catalog: omitted for SQLite in --data, or postgres://user[:password]@host[:port]/database for PostgreSQL (an existing database; the schema is created and migrated).")
    var store: String?
    @Option(help: "Address to listen on.") var host = "127.0.0.1"
    @Option(help: "Port to listen on (0: any free port, printed at start).") var port = 8080
    @Option(name: .customLong("allowed-lateness"), help: "Apply events up to this much out of order (e.g. 5s).") var allowedLateness = "0s"
    @Option(help: "SQLite synchronous mode: full (an acknowledged batch survives a power cut) or normal (survives a killed process).")
    var sync = "full"
    @Option(name: .customLong("sensitive-tag"), help: "Extra tag/attribute key to refuse, beyond the built-in list (repeatable). Once added, a key stays on the list of that data folder.")
    var sensitiveTags: [String] = []
    @Option(name: .customLong("idle-advance"), help: "When no events arrive for this long (e.g. 30s), move event time on with the wall clock (minus this much), so absence, dwell and windows fire on a quiet stream. Off by default.")
    var idleAdvance: String?
    @Option(name: .customLong("nats-input"), help: "Read events from a NATS JetStream stream at this server (nats://host:port), at least once; needs --nats-input-stream.")
    var natsInput: String?
    @Option(name: .customLong("nats-input-stream"), help: "The JetStream stream to read events from.") var natsInputStream: String?
    @Option(name: .customLong("nats-input-subject"), help: "Only its messages on this subject (wildcards allowed).") var natsInputSubject = ">"
    @Option(name: .customLong("mqtt-input"), help: "Read events from an MQTT broker (mqtt://host:port) at QoS 1, at least once; needs --mqtt-input-topic.")
    var mqttInput: String?
    @Option(name: .customLong("mqtt-input-topic"), help: "A topic filter to subscribe to (repeatable; + and # allowed).") var mqttInputTopics: [String] = []
    @Option(name: .customLong("mqtt-input-client-id"), help: "The MQTT client id of the persistent session.") var mqttInputClientId = "tripline-input"
    @Option(name: .customLong("retention-events"), help: "Delete events stored longer ago than this (wall clock).") var retentionEvents = "30d"
    @Option(name: .customLong("retention-alerts"), help: "Delete alerts created longer ago than this.") var retentionAlerts = "365d"
    @Option(name: .customLong("retention-audit"), help: "Delete audit records older than this (the chain stays verifiable from the first kept one).") var retentionAudit = "730d"
    @Option(name: .customLong("retention-interval"), help: "How often retention looks for data past its period.") var retentionInterval = "60s"
    @Option(name: .customLong("rule-default-lifetime"), help: "A rule posted without `expires` expires this long after it is posted.") var ruleDefaultLifetime = "90d"
    @Option(name: .customLong("rule-max-lifetime"), help: "Refuse rules whose `expires` is further away than this.") var ruleMaxLifetime = "365d"
    @Option(name: .customLong("webhook-max-attempts"), help: "Delivery attempts before a webhook delivery becomes a dead letter.") var webhookMaxAttempts = 8
    @Option(name: .customLong("webhook-backoff"), help: "First webhook retry delay; it doubles per attempt up to 5m.") var webhookBackoff = "1s"
    @Option(name: .customLong("webhook-timeout"), help: "Seconds a receiver has to answer.") var webhookTimeout = 10.0
    @Option(name: .customLong("max-future"), help: "Refuse events whose time is later than the server's clock plus this (422), so one bad clock cannot move event time on for good; 'off' accepts any time up to year 9999.")
    var maxFuture = "1h"
    @Option(name: .customLong("dedup-window"), help: "Remember an accepted event id for duplicate detection until the watermark passes its time plus this (0: until the watermark passes its time).")
    var dedupWindow = "24h"
    @Option(name: .customLong("track-points"), help: "Positions kept per entity (its recent track, by event time) for intersects queries; 0 keeps none (24 bytes per position, plus 32 per entity).")
    var trackPoints = 10
    @Option(name: .customLong("header-timeout"), help: "A request's line and headers must arrive within this long (else 408 and close).") var headerTimeout = "10s"
    @Option(name: .customLong("idle-timeout"), help: "Close a connection with no request in progress after this long.") var idleTimeout = "60s"
    @Option(name: .customLong("max-connections"), help: "Open connections at most (streams included); one more gets 503.") var maxConnections = 1024
    @Option(name: .customLong("tls-cert"), help: "Serve HTTPS: the certificate chain (PEM). Needs --tls-key.") var tlsCert: String?
    @Option(name: .customLong("tls-key"), help: "Serve HTTPS: the private key (PEM) of --tls-cert.") var tlsKey: String?
    @Option(help: "Send an SSE comment and a WebSocket ping on every live stream this often, to find peers that have gone.") var heartbeat = "15s"
    @Flag(help: "With --store postgres://...: if another server is active on the database, stand by instead of exiting: serve the routes that only read the store, answer the others 503 naming the active server, and take over (rebuilding the engine from the log) when it stops or dies. If none is active, become the active server.")
    var standby = false
    @Option(help: "The URL clients are sent to while this server is active (default: http(s)://HOST:PORT as it listens).") var advertise: String?
    @Option(name: .customLong("log-level"), help: "Log level on stderr: error, warning, info (every request, with its id) or debug.")
    var logLevel = "warning"
    @Option(help: "Run as an API node of a cluster on NATS JetStream (nats:// URLs, comma-separated): events are published to the cluster's partitions and acknowledged once JetStream holds them; the workers' alerts are read back into this node's store, webhooks and streams. Creates the cluster when there is none yet. See docs/cluster.md.")
    var cluster: String?
    @Option(help: "With --cluster, when this node creates the cluster: partitions P (fixed for the cluster's life; default 24). On an existing cluster it must be the cluster's.")
    var partitions: Int?
    @Option(help: "With --cluster, when this node creates the cluster: stream replicas (3 on a three-server JetStream cluster).")
    var replicas = 1
    @Option(name: .customLong("watermark-interval"), help: "With --cluster: how often every partition is told the watermark when it moved (timers fire where no event comes).")
    var watermarkInterval = "1s"
    @Option(name: .customLong("shutdown-flush"), help: "On SIGTERM, after the last requests are answered, attempt the webhook deliveries due for at most this long (the rest stay in the outbox).")
    var shutdownFlush = "5s"

    /// The data folder's lock, held until the process ends.
    nonisolated(unsafe) static var lock: DataFolderLock?

    /// Opens the store, the audit log and the engine host (rebuilding the engine from the log),
    /// and records the configuration in force in the audit log.
    func open() throws -> (any TriplineStore, EngineHost, ServerSettings, AuditLog, ServerRole, ClusterNode?) {
        do {
            Self.lock = try DataFolderLock(directory: data)
        } catch let e as DataFolderLock.Held {
            CLI.printErr("tripline: \(e)")
            throw ExitCode(1)
        }
        if cluster != nil && standby {
            throw ValidationError("--standby with --cluster: a standby API node of a cluster is not built yet; run one API node per cluster")
        }
        if cluster == nil && partitions != nil { throw ValidationError("--partitions goes with --cluster") }
        if standby && store == nil {
            throw ValidationError("--standby needs a store several servers share: give --store postgres://user@host:port/database")
        }
        if let a = advertise, URLComponents(string: a)?.scheme.map({ $0 == "http" || $0 == "https" }) != true || URLComponents(string: a)?.host == nil {
            throw ValidationError("--advertise: give an http:// or https:// URL with a host (got '\(a)')")
        }
        let store = try StoreOption.open(store, data: data, sync: sync)
        let holder = "PID \(getpid()) on \(ProcessInfo.processInfo.hostName) since \(EventTime.format(Millis(Date().timeIntervalSince1970 * 1000)))"
        var role = ServerRole.active
        if let pg = store as? PostgresStore {
            do {
                if standby {
                    if try !pg.tryTakeActive(holder: holder, url: nil) { role = .standby }
                } else {
                    try pg.takeActiveLock(holder: holder)
                }
            } catch let e as PostgresStore.Held {
                CLI.printErr("tripline: \(e)")
                throw ExitCode(1)
            }
            // The lease's session ended while this server was active (the database restarted or
            // the connection broke): a standby may hold it now, so this one stops at once.
            pg.onActiveLeaseLost = {
                CLI.printErr("tripline: lost the connection holding the active lease; stopping so that only one server is active (restart this one to stand by)")
                Foundation.exit(1)
            }
        }
        // The sensitive list of a data folder only grows.
        var extra = Set((try store.meta("sensitive_extra") ?? "").split(separator: ",").map(String.init))
        extra.formUnion(sensitiveTags.map { $0.lowercased() })
        try store.setMeta("sensitive_extra", extra.sorted().joined(separator: ","))
        var settings = ServerSettings()
        settings.host = host
        settings.port = port
        settings.options.allowedLateness = try CLI.parseDuration(allowedLateness, option: "--allowed-lateness")
        settings.options.sensitive = SensitiveTags(extra: extra.sorted())
        settings.webhooks.maxAttempts = max(1, webhookMaxAttempts)
        settings.webhooks.backoffMs = try CLI.parseDuration(webhookBackoff, option: "--webhook-backoff")
        settings.webhooks.timeoutSeconds = webhookTimeout
        settings.ruleDefaultLifetime = try CLI.parseDuration(ruleDefaultLifetime, option: "--rule-default-lifetime")
        settings.ruleMaxLifetime = try CLI.parseDuration(ruleMaxLifetime, option: "--rule-max-lifetime")
        guard settings.ruleDefaultLifetime <= settings.ruleMaxLifetime else {
            throw ValidationError("--rule-default-lifetime (\(ruleDefaultLifetime)) must not exceed --rule-max-lifetime (\(ruleMaxLifetime))")
        }
        func amount(_ s: String, _ option: String) throws -> TimeAmount {
            let ms = try CLI.parseDuration(s, option: option)
            guard ms > 0 else { throw ValidationError("\(option) must be longer than 0") }
            return .milliseconds(ms)
        }
        settings.limits.headerTimeout = try amount(headerTimeout, "--header-timeout")
        settings.limits.idleTimeout = try amount(idleTimeout, "--idle-timeout")
        guard maxConnections >= 1 else { throw ValidationError("--max-connections must be at least 1") }
        settings.limits.maxConnections = maxConnections
        settings.heartbeat = .milliseconds(try amount(heartbeat, "--heartbeat").nanoseconds / 1_000_000)
        switch (tlsCert, tlsKey) {
        case (let c?, let k?):
            settings.tls = TLSFiles(certificate: c, key: k)
            do { _ = try settings.tls!.configuration() } catch {
                throw ValidationError("--tls-cert/--tls-key: cannot load the certificate or key (\(error)); give PEM files")
            }
        case (nil, nil): break
        default: throw ValidationError("--tls-cert and --tls-key go together")
        }
        settings.options.dedupWindow = try CLI.parseDuration(dedupWindow, option: "--dedup-window")
        guard (0...1000).contains(trackPoints) else { throw ValidationError("--track-points must be from 0 to 1000, got \(trackPoints)") }
        settings.options.trackPoints = trackPoints
        settings.options.maxFuture = maxFuture == "off" ? nil : try CLI.parseDuration(maxFuture, option: "--max-future")
        settings.idleAdvance = try idleAdvance.map { try CLI.parseDuration($0, option: "--idle-advance") }
        switch (natsInput, natsInputStream) {
        case (let u?, let st?):
            guard u.hasPrefix("nats://") else { throw ValidationError("--nats-input must be a NATS server URL such as nats://127.0.0.1:4222") }
            settings.natsInput = NATSInputSettings(url: u, stream: st, subject: natsInputSubject)
        case (nil, nil): break
        default: throw ValidationError("--nats-input and --nats-input-stream go together")
        }
        if let m = mqttInput {
            guard let u = URL(string: m), u.scheme == "mqtt", let h = u.host else {
                throw ValidationError("--mqtt-input must be an MQTT broker URL such as mqtt://127.0.0.1:1883")
            }
            guard !mqttInputTopics.isEmpty else { throw ValidationError("--mqtt-input needs at least one --mqtt-input-topic") }
            settings.mqttInput = MQTTInputSettings(host: h, port: u.port ?? 1883, topics: mqttInputTopics, clientId: mqttInputClientId)
        } else if !mqttInputTopics.isEmpty {
            throw ValidationError("--mqtt-input-topic needs --mqtt-input")
        }
        settings.retention.events = try CLI.parseDuration(retentionEvents, option: "--retention-events")
        settings.retention.alerts = try CLI.parseDuration(retentionAlerts, option: "--retention-alerts")
        settings.retention.audit = try CLI.parseDuration(retentionAudit, option: "--retention-audit")
        let every = try CLI.parseDuration(retentionInterval, option: "--retention-interval")
        guard every >= 1000 else { throw ValidationError("--retention-interval: at least 1s (got \(retentionInterval))") }
        settings.retention.intervalSeconds = Double(every) / 1000
        settings.holder = holder
        guard let level = ["error": Logger.Level.error, "warning": .warning, "info": .info, "debug": .debug][logLevel] else {
            throw ValidationError("--log-level: give error, warning, info or debug (got '\(logLevel)')")
        }
        settings.logLevel = level
        settings.outboxFlushSeconds = Double(try CLI.parseDuration(shutdownFlush, option: "--shutdown-flush")) / 1000
        settings.advertise = advertise
        let audit = try CLI.openAudit(store: store, directory: data)
        let node = try cluster.map { try joinCluster($0, store: store, settings: settings, audit: audit) }
        let started = Date()
        let engineHost = try EngineHost(store: store, options: settings.options, wallClock: settings.clock, standby: role == .standby, cluster: node)
        engineHost.onClusterPublishFailed = { e in
            // The gateway's time core has taken batches JetStream may not hold: this node
            // stops rather than stamp later events against a state the stream does not have.
            // (A moment for the refused requests' 503 answers to go out.)
            CLI.printErr("tripline: the cluster did not acknowledge published events (\(e)); stopping")
            DispatchQueue.global().asyncAfter(deadline: .now() + 1) { Foundation.exit(1) }
        }
        engineHost.onLostLease = { lost in
            CLI.printErr("tripline: \(lost); stopping")
            Foundation.exit(1)
        }
        let rebuilt = role == .active ? try store.logCount() : 0
        if role == .standby {
            let active = (store as? PostgresStore).flatMap { try? $0.activeServer().holder } ?? "another server"
            CLI.printErr("tripline: standing by: \(active) is active on this database; this server takes over when it stops")
        }
        if rebuilt > 0 {
            CLI.printErr("tripline: rebuilt the engine from \(rebuilt) logged events in \(String(format: "%.2f", Date().timeIntervalSince(started))) s")
        }
        try audit.record(actor: "server", action: "server.start", target: "config", detail: .obj([
            ("sensitive_tags", .arr(settings.options.sensitive.keys.sorted().map { .str($0) })),
            ("allowed_lateness_ms", .int(settings.options.allowedLateness)), ("sync", .str(sync)),
            ("store", .str(self.store.map { PostgresStore.redacted($0) } ?? "sqlite")),
            ("idle_advance_ms", settings.idleAdvance.map { .int($0) } ?? .null),
            ("max_future_ms", settings.options.maxFuture.map { .int($0) } ?? .null),
            ("dedup_window_ms", .int(settings.options.dedupWindow)),
            ("track_points", .int(settings.options.trackPoints)),
            ("retention_ms", .obj([("events", .int(settings.retention.events)), ("alerts", .int(settings.retention.alerts)), ("audit", .int(settings.retention.audit))])),
            ("webhooks", .obj([("max_attempts", .int(settings.webhooks.maxAttempts)), ("backoff_ms", .int(settings.webhooks.backoffMs))])),
            ("rule_lifetime_ms", .obj([("default", .int(settings.ruleDefaultLifetime)), ("max", .int(settings.ruleMaxLifetime))])),
            ("rebuilt_events", .int(rebuilt)), ("role", .str(role.rawValue)), ("holder", .str(holder)),
            ("cluster", node.map { .obj([("partitions", .int($0.config.partitions)), ("catalog_version", .str($0.publisher.catalogVersion))]) } ?? .null),
        ]))
        return (store, engineHost, settings, audit, role, node)
    }

    /// `--cluster`: connects, creates the cluster (with this store's catalog) or joins it
    /// (taking its catalog into an empty store), and checks that its settings are this node's.
    func joinCluster(_ urls: String, store: any TriplineStore, settings: ServerSettings, audit: AuditLog) throws -> ClusterNode {
        guard try store.logCount() == 0 else {
            throw ValidationError("--cluster: this store holds the event log of a single-node server; a cluster's events live on its stream: give a new --data folder or database to the API node")
        }
        let c = try ClusterCommand.connect(urls, name: "tripline serve \(ProcessInfo.processInfo.hostName)-\(getpid())")
        let existing: (config: ClusterConfig, catalog: ClusterCatalog, version: String)?
        do {
            existing = try ClusterSetup.loadVersioned(c)
        } catch is ClusterCatalog.Invalid {
            existing = nil
        }
        let config = ClusterConfig(partitions: partitions ?? existing?.config.partitions ?? 24,
                                   allowedLateness: settings.options.allowedLateness, dedupWindow: settings.options.dedupWindow)
        guard partitions.map({ (1...4096).contains($0) }) ?? true else { throw ValidationError("--partitions must be 1 to 4096") }
        if let e = existing?.config, e != config {
            throw ValidationError("--cluster: the cluster has \(e.partitions) partitions, allowed lateness \(DurationText.format(e.allowedLateness)) and dedup window \(DurationText.format(e.dedupWindow)); start this node with --partitions \(e.partitions) --allowed-lateness \(DurationText.format(e.allowedLateness)) --dedup-window \(DurationText.format(e.dedupWindow)) (those cannot change)")
        }
        let now = Millis(Date().timeIntervalSince1970 * 1000)
        let mine = try ClusterNode.documents(store)
        var version: String
        if let existing {
            let theirs = existing.catalog
            let normal = try ClusterNode.normalized(theirs, sensitive: settings.options.sensitive)
            let same = normal.zones == mine.zones && normal.entities == mine.entities && normal.rules == mine.rules
            if same {
                version = existing.version
            } else if mine.zones.isEmpty && mine.entities.isEmpty && mine.rules.isEmpty {
                let n = try ClusterNode.importCatalog(theirs, into: store, sensitive: settings.options.sensitive, now: now)
                try audit.record(actor: "server", action: "catalog.import", target: "cluster",
                                 detail: .obj([("rules", .int(n.0)), ("zones", .int(n.1)), ("entities", .int(n.2)), ("version", .str(existing.version))]))
                version = existing.version
            } else {
                let ev = try c.streamState(ClusterNames.events)
                guard ev.lastSequence == 0 else {
                    throw ValidationError("--cluster: this store's catalog differs from the cluster's, and the cluster already has events; start the API node on an empty store (it takes the cluster's catalog) or on a store with the same catalog")
                }
                version = try ClusterSetup.create(c, config: config, catalog: mine, replicas: replicas, replaceCatalog: true)
            }
        } else {
            version = try ClusterSetup.create(c, config: config, catalog: mine, replicas: replicas)
        }
        // One gateway at a time: wait for the lease, then rebuild the gateway's time core from
        // the stream (empty on a new cluster).
        let lease = try GatewayLease(connection: c, holder: settings.holder + (settings.advertise.map { " at \($0)" } ?? ""))
        try lease.acquire(log: { CLI.printErr("tripline: \($0)") })
        let (catalog, _) = try Catalog.load(store, sensitive: settings.options.sensitive)
        let began = ContinuousClock.now
        // The latest position per entity and reading per entity and metric (what spatial
        // queries read), from the events accepted again.
        var latest: [Int32: Event] = [:]
        var readings: [Int64: Event] = [:]
        let (publisher, report, messages) = try ClusterGatewayPublisher.rebuilt(connection: c, config: config, entities: catalog.entities, catalogVersion: version,
                                                                               accepted: { ev in
            if ev.type == Symbols.positionType && ev.time >= (latest[ev.entity]?.time ?? .min) { latest[ev.entity] = ev }
            if ev.type == Symbols.readingType {
                let key = Int64(ev.entity) << 32 | Int64(UInt32(bitPattern: ev.metric))
                if ev.time >= (readings[key]?.time ?? .min) { readings[key] = ev }
            }
        })
        if messages > 0 {
            let d = (ContinuousClock.now - began).components
            CLI.printErr("tripline: took over as the cluster's gateway: rebuilt from \(messages) messages (\(report.events) events, \(report.drops) drops, \(report.advances) advances) in \(String(format: "%.2f", Double(d.seconds) + Double(d.attoseconds) / 1e18)) s" + (report.holes.isEmpty ? "" : "; \(report.holes.count) accepted numbers lost with the last gateway's unfinished publish were voided"))
        }
        lease.keepRenewing(lost: { other in
            CLI.printErr("tripline: lost the cluster's gateway lease to \(other); stopping so that one gateway publishes")
            Foundation.exit(1)
        })
        return ClusterNode(connection: c, config: config, replicas: replicas, store: store, publisher: publisher, lease: lease,
                           rebuiltPositions: Array(latest.values) + Array(readings.values))
    }
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run the server: HTTP API on an embedded SQLite store.",
        discussion: "Every route but /healthz needs an API token; create the first with 'tripline token create --data DIR --role admin'. The API is described at /openapi.json."
    )
    @OptionGroup var server: ServerOptions

    func run() async throws {
        let (store, host, settings, audit, role, node) = try server.open()
        if let node {
            _ = try ClusterNode.startAlertFeed(connection: node.connection, config: node.config, host: host, store: store,
                                               log: { CLI.printErr("tripline: \($0)") })
            let every = try CLI.parseDuration(server.watermarkInterval, option: "--watermark-interval")
            guard every >= 10 else { throw ValidationError("--watermark-interval: at least 10ms") }
            let marker = Thread {
                while true {
                    Thread.sleep(forTimeInterval: Double(every) / 1000)
                    host.markClusterWatermark()
                }
            }
            marker.name = "tripline-cluster-watermark"
            marker.start()
        }
        let http = TriplineHTTP(host: host, settings: settings, audit: audit, shared: store as? any SharedStore, standby: role == .standby)
        let h = settings.host
        let clusterPartitions = node?.config.partitions
        let scheme = settings.tls == nil ? "http" : "https"
        try await http.run { port in
            let where_ = server.store.map { "store \(PostgresStore.redacted($0))" } ?? "data in \(server.data)"
            let standing = (role == .standby ? ", standing by" : "") + (clusterPartitions.map { ", API node of a cluster with \($0) partitions" } ?? "")
            FileHandle.standardOutput.write(Data("tripline: serving on \(scheme)://\(h):\(port) (\(where_)\(standing))\n".utf8))
        }
        // A clean stop gives the gateway lease up: a waiting API node takes over at once.
        node?.lease.release()
    }
}

struct Audit: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "audit", abstract: "The tamper-evident audit log.", subcommands: [Verify.self])

    struct Verify: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "verify",
            abstract: "Check the audit log's hash chain; exit 1 naming the first bad record if it was modified, deleted, inserted or reordered.")
        @Option(help: "Data folder of the server.") var data: String
        @Option(help: "The server's --store, when it is not SQLite in --data.") var store: String?
        @Option(name: .customLong("expect-head"), help: "A head hash recorded earlier (from GET /v1/audit/verify): also check it is still in the chain.")
        var expectHead: String?

        func run() throws {
            let store = try StoreOption.open(store, data: data, sync: "full")
            let v = try AuditLog.verify(store: store, expectHead: expectHead)
            if v.ok {
                print("audit log OK: \(v.records) records, head \(v.head)")
            } else {
                CLI.printErr("audit log BROKEN at record \(v.firstBad ?? 0): \(v.problem ?? "")")
                throw ExitCode(1)
            }
        }
    }
}

struct Token: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "token", abstract: "Manage API tokens.", subcommands: [Create.self])

    struct Create: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "create", abstract: "Create an API token and print it (it is stored only as a hash).")
        @Option(help: "Data folder of the server.") var data: String
        @Option(help: "The server's --store, when it is not SQLite in --data.") var store: String?
        @Option(help: "Role: ingest, operator, admin or auditor.") var role: String
        @Option(help: "A name to recognise the token by.") var name = ""

        func run() throws {
            guard let r = Role(rawValue: role) else { throw ValidationError("--role must be one of ingest, operator, admin, auditor") }
            let store = try StoreOption.open(store, data: data, sync: "full")
            let now = Millis(Date().timeIntervalSince1970 * 1000)
            let (rec, secret) = try Tokens.create(store: store, role: r, name: name, now: now)
            let audit = try CLI.openAudit(store: store, directory: data)
            try audit.record(actor: "cli (\(ProcessInfo.processInfo.userName))", action: "token.create", target: rec.id,
                             detail: .obj([("role", .str(r.rawValue)), ("name", .str(name))]))
            print(secret)
        }
    }
}

/// `--store`: SQLite in the data folder (the default) or a PostgreSQL URL.
enum StoreOption {
    static func open(_ store: String?, data: String, sync: String) throws -> any TriplineStore {
        guard let store else { return try SQLiteStore(directory: data, synchronous: sync) }
        guard store.hasPrefix("postgres://") || store.hasPrefix("postgresql://") else {
            throw ValidationError("--store: give a postgres://user@host:port/database URL, or leave it out for SQLite in --data (got \(PostgresStore.redacted(store)))")
        }
        do {
            return try PostgresStore(url: store)
        } catch {
            CLI.printErr("tripline: \(error)")
            throw ExitCode(1)
        }
    }
}

extension CLI {
    /// The audit log of a data folder, or exit 1 when the folder's key is not the store's.
    static func openAudit(store: any TriplineStore, directory: String) throws -> AuditLog {
        do {
            return try AuditLog.open(store: store, directory: directory, clock: { Millis(Date().timeIntervalSince1970 * 1000) })
        } catch let e as AuditLog.KeyMismatch {
            CLI.printErr("tripline: \(e)")
            throw ExitCode(1)
        }
    }
}

struct Backup: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "backup",
        abstract: "Copy a data folder's SQLite store to a new file (SQLite's online backup API; safe while the server runs).",
        discussion: "Restore: stop the server, put the copy in place as DIR/tripline.sqlite (with the folder's pseudonym.key), start it; it rebuilds the engine from the copied log. A --store postgres:// server is backed up with pg_dump (docs/operations.md).")
    @Option(help: "Data folder of the server.") var data: String
    @Option(help: "The new file to write (never overwritten).") var to: String
    @Option(help: "The server's --store: only SQLite (the default) is backed up here.") var store: String?

    func run() throws {
        if let store {
            throw ValidationError("tripline backup copies the SQLite store; a PostgreSQL store (\(PostgresStore.redacted(store))) is backed up with pg_dump -Fc (docs/operations.md)")
        }
        do {
            let pages = try SQLiteStore.backup(directory: data, to: to)
            print("backed up \(pages) pages to \(to)")
        } catch {
            CLI.printErr("tripline: backup failed: \(error)")
            throw ExitCode(1)
        }
    }
}
