import Foundation
import TriplineCluster
import TriplineCore
import TriplineNATS
import TriplineServer
import TriplineStore

/// `tripline serve --cluster`: the API node's link to a cluster on JetStream. The engine thread
/// offers each request's events to the gateway's time core and publishes them to `EV` before
/// acknowledging; a feed thread reads the workers' alerts from `ALERTS` into the store (and so
/// to the webhook outbox and the live streams).
final class ClusterNode: ClusterLink {
    let connection: NATSConnection
    let config: ClusterConfig
    let replicas: Int
    let store: any TriplineStore
    let publisher: ClusterGatewayPublisher
    let lease: GatewayLease
    let rebuiltPositions: [Event]
    private var lastMarked: Millis = .min

    init(connection: NATSConnection, config: ClusterConfig, replicas: Int, store: any TriplineStore, publisher: ClusterGatewayPublisher, lease: GatewayLease,
         rebuiltPositions: [Event]) {
        self.rebuiltPositions = rebuiltPositions
        self.connection = connection
        self.config = config
        self.replicas = replicas
        self.store = store
        self.publisher = publisher
        self.lease = lease
    }

    var timeCore: Pipeline { publisher.timeCore }

    func offer(_ texts: EventTexts, check: (Event, Int) -> TriplineError?, accepted: (Event) -> Void) -> Result<ClusterGateway.Offered, InvalidEvents> {
        // Without publishing, offering cannot fail on JetStream.
        try! publisher.offer(texts, publish: false, check: check, accepted: accepted)
    }

    func advance(until t: Millis) {
        try! publisher.advance(until: t, publish: false)
        lastMarked = max(lastMarked, publisher.watermark)
    }

    /// Only when the watermark moved since the last marker (and once there are events).
    func markWatermark() {
        guard publisher.accepted > 0, publisher.watermark > lastMarked else { return }
        try! publisher.markWatermark(publish: false)
        lastMarked = publisher.watermark
    }

    /// After a publish that was not acknowledged the time core may be ahead of the stream:
    /// nothing more is published (the node stops; another rebuilds from the stream).
    private var broken = false

    /// Publishes only while the gateway lease is surely this node's (renewed within 7 s of its
    /// 10 s life): a node cut off from JetStream stops before another takes over.
    func flush() throws {
        guard !broken else { throw GatewayLease.Stale(description: "an earlier publish was not acknowledged; this node is stopping") }
        // In rounds of 1 s (a leader election takes a few), for up to 30 s, and only while
        // the lease is surely this node's.
        let start = ContinuousClock.now
        while true {
            // A lease not renewed for 7 s (a JetStream leader election outlasting the renewals)
            // is waited out: nothing is published meanwhile, and a renewal that succeeds again
            // proves no one else held it in between (it is conditional on this node's revision).
            // Lost to another node, or still stale after 30 s, this node stops.
            guard lease.isFresh else {
                if lease.isLost || ContinuousClock.now - start >= .seconds(30) {
                    broken = true
                    throw GatewayLease.Stale(description: "the gateway lease was not renewed for over 7 s (JetStream unreachable?)")
                }
                Thread.sleep(forTimeInterval: 0.1)
                continue
            }
            do {
                try publisher.flush(deadline: .seconds(1))
                return
            } catch where ContinuousClock.now - start < .seconds(30) {
                continue
            } catch {
                broken = true
                throw error
            }
        }
    }

    /// Before the first message the workers simply start on the new version; after it, a
    /// marker in every partition makes each stage rebuild on it from the stream.
    func publishCatalog(_ catalog: Catalog, zoneEdits: [ZoneEdit]) throws {
        var documents = try Self.documents(store)
        documents.zoneEdits = zoneEdits
        let version = try ClusterSetup.create(connection, config: config, catalog: documents, replicas: replicas, replaceCatalog: true)
        let onStream = try connection.streamState(ClusterNames.events).lastSequence
        // The same catalog again (a change that changed nothing): nothing to switch to.
        if version == publisher.catalogVersion { return }
        if publisher.published == 0 && publisher.accepted == 0 && onStream == 0 {
            publisher.reset(entities: catalog.entities, catalogVersion: version)
        } else {
            publisher.catalogChange(version: version)
            try flush()
        }
    }

    /// The store's catalog as the cluster keeps it: zones as a FeatureCollection, entities as
    /// NDJSON, rules as `{"rules": [...]}` (each item as stored; empty when there are none).
    static func documents(_ store: any TriplineStore) throws -> ClusterCatalog {
        let zones = try store.catalog(.zones).sorted { $0.id < $1.id }.map(\.json)
        let entities = try store.catalog(.entities).sorted { $0.id < $1.id }.map(\.json)
        var latest: [String: RuleVersion] = [:]
        for v in try store.ruleVersions(nil) { latest[v.rule] = v }
        let rules = latest.values.filter { !$0.deleted }.sorted { $0.rule < $1.rule }.map(\.json)
        return documents(zones: zones, entities: entities, rules: rules)
    }

    static func documents(zones: [String], entities: [String], rules: [String]) -> ClusterCatalog {
        ClusterCatalog(
            zones: zones.isEmpty ? [] : Array(("{\"type\":\"FeatureCollection\",\"features\":[" + zones.joined(separator: ",") + "]}").utf8),
            entities: Array(entities.joined(separator: "\n").utf8),
            rules: rules.isEmpty ? [] : Array(("{\"rules\":[" + rules.joined(separator: ",") + "]}").utf8))
    }

    /// A cluster's catalog in the form `documents(store)` gives for a store holding it (items
    /// as stored, by id): two catalogs are the same when these are.
    static func normalized(_ c: ClusterCatalog, sensitive: SensitiveTags) throws -> ClusterCatalog {
        let (zones, entities, rules) = try items(c, sensitive: sensitive)
        return documents(zones: zones.map { ($0.0.id, $0.1) }.sorted { $0.0 < $1.0 }.map(\.1),
                         entities: entities.map { ($0.0.id, $0.1) }.sorted { $0.0 < $1.0 }.map(\.1),
                         rules: rules.map { ($0.0.id, $0.1) }.sorted { $0.0 < $1.0 }.map(\.1))
    }

    /// Writes a cluster's catalog into an empty store (an API node joining a cluster made with
    /// `tripline cluster create`); returns how many rules, zones and entities it wrote.
    static func importCatalog(_ c: ClusterCatalog, into store: any TriplineStore, sensitive: SensitiveTags, now: Millis) throws -> (Int, Int, Int) {
        let (zones, entities, rules) = try items(c, sensitive: sensitive)
        if !zones.isEmpty { try store.putCatalog(.zones, zones.map { CatalogItem(id: $0.0.id, json: $0.1, updatedAt: now) }) }
        if !entities.isEmpty { try store.putCatalog(.entities, entities.map { CatalogItem(id: $0.0.id, json: $0.1, updatedAt: now) }) }
        if !rules.isEmpty {
            try store.appendRuleVersions(rules.map { RuleVersion(rule: $0.0.id, version: 1, json: $0.1, deleted: false, createdAt: now, createdBy: "cluster") })
        }
        return (rules.count, zones.count, entities.count)
    }

    /// The items of a cluster's catalog, each with the JSON it is stored as.
    static func items(_ c: ClusterCatalog, sensitive: SensitiveTags) throws -> ([(Zone, String)], [(EntityInfo, String)], [(Rule, String)]) {
        func fail(_ f: ValidationFailure, _ what: String) -> any Error {
            ClusterCatalog.Invalid(description: "the cluster's \(what): " + f.errors.map(\.description).joined(separator: "; "))
        }
        var zones: [(Zone, String)] = [], entities: [(EntityInfo, String)] = [], rules: [(Rule, String)] = []
        if !c.zones.isEmpty {
            let doc = try Submissions.parse(c.zones, contentType: "application/json", file: "cluster zones").mapError { fail($0, "zones") }.get()
            zones = try Submissions.zones(doc, file: "cluster zones", pathId: nil, sensitive: sensitive).mapError { fail($0, "zones") }.get()
        }
        if !c.entities.isEmpty {
            entities = try Submissions.entities(c.entities, file: "cluster entities", pathId: nil, sensitive: sensitive).mapError { fail($0, "entities") }.get()
        }
        if !c.rules.isEmpty {
            let doc = try Submissions.parse(c.rules, contentType: nil, file: "cluster rules").mapError { fail($0, "rules") }.get()
            rules = try Submissions.rules(doc, file: "cluster rules", pathId: nil, sensitive: sensitive).mapError { fail($0, "rules") }.get()
        }
        return (zones, entities, rules)
    }

    /// The feed of the workers' alerts into the store, on its own thread: reads `ALERTS` from
    /// the start, skips the alerts this store already has (counted in meta), and hands the
    /// rest, in canonical order, to the engine thread, waiting for each commit.
    static func startAlertFeed(connection: NATSConnection, config: ClusterConfig, host: EngineHost, store: any TriplineStore,
                               log: @escaping @Sendable (String) -> Void) throws -> Thread {
        // Alert ids go up by one per stored alert: with the id the first cluster alert
        // followed, the stored count survives a meta write lost to a crash.
        if try store.meta("cluster_alert_base") == nil { try store.setMeta("cluster_alert_base", String(try store.maxAlertId())) }
        let base = Int64(try store.meta("cluster_alert_base") ?? "0") ?? 0
        let counted = Int64(try store.meta("cluster_alerts_stored") ?? "0") ?? 0
        let storedAtStart = max(counted, try store.maxAlertId() - base)
        let t = Thread {
            var stored = storedAtStart
            var collector: ClusterAlertCollector?
            var seen: Int64 = 0
            while true {
                do {
                    if collector == nil {
                        collector = try ClusterAlertCollector(connection: connection, config: config)
                        seen = 0
                    }
                    let ready = try collector!.poll(timeout: .milliseconds(200))
                    if ready.isEmpty { continue }
                    let fresh = Array(ready.dropFirst(Int(max(0, min(Int64(ready.count), stored - seen)))))
                    seen += Int64(ready.count)
                    if fresh.isEmpty { continue }
                    // Until the store takes them (a store error is retried: nothing is skipped).
                    while true {
                        let done = DispatchSemaphore(value: 0)
                        let outcome = Outcome()
                        host.storeClusterAlerts(fresh) { e in
                            outcome.error = e.map { "\($0)" }
                            done.signal()
                        }
                        done.wait()
                        guard let e = outcome.error else { break }
                        log("storing \(fresh.count) cluster alerts failed (\(e)); retrying")
                        Thread.sleep(forTimeInterval: 1)
                    }
                    stored += Int64(fresh.count)
                    try? store.setMeta("cluster_alerts_stored", String(stored))
                } catch {
                    // A server lost or a leader being elected: read again from the start
                    // (what was stored is skipped).
                    log("reading the cluster's alerts: \(error); reading again")
                    collector = nil
                    Thread.sleep(forTimeInterval: 0.5)
                }
            }
        }
        t.name = "tripline-cluster-alerts"
        t.start()
        return t
    }

    final class Outcome: @unchecked Sendable {
        var error: String?
    }
}

/// The cluster's gateway lease (`gateway` in its bucket, 10 s life, renewed every 500 ms;
/// publishing stops when it was not renewed for 7 s): one API node at a time
/// publishes events. Another node waits for it, and takes over (rebuilding the gateway from the
/// stream) once the holder stops or dies and the lease expires.
final class GatewayLease: @unchecked Sendable {
    let kv: KeyValue
    let holder: String
    private let lock = NSLock()
    private var revision: UInt64 = 0
    private var renewedAt = ContinuousClock.now
    private var released = false
    static let key = "gateway"

    struct Stale: Error, CustomStringConvertible {
        var description: String
    }

    init(connection: NATSConnection, holder: String) throws {
        kv = try connection.keyValue(bucket: ClusterNames.gatewayLease, ttl: ClusterNames.gatewayLeaseTTL)
        self.holder = holder
    }

    /// Takes the lease, waiting (and saying so, once) while another node holds it.
    func acquire(log: (String) -> Void) throws {
        var told = false
        while true {
            do {
                if try tryAcquire() { return }
                if !told, let cur = currentHolder() {
                    log("waiting for the gateway lease, held by \(cur); this node takes over when it stops or dies")
                    told = true
                }
            } catch let e as NATSError {
                log("gateway lease: \(e); retrying")
            }
            Thread.sleep(forTimeInterval: 0.5)
        }
    }

    /// Takes the lease if no one holds it.
    func tryAcquire() throws -> Bool {
        guard let rev = try kv.create(Self.key, Array(holder.utf8)) else { return false }
        lock.lock()
        revision = rev
        renewedAt = ContinuousClock.now
        lock.unlock()
        return true
    }

    func currentHolder() -> String? {
        (try? kv.get(Self.key)).flatMap { $0 }.map { String(decoding: $0.value, as: UTF8.self) }
    }

    /// Renewed within the last 7 s, counted from when the renewal was sent (the server stamps
    /// the write, and starts its 10 s life, no earlier than that).
    var isFresh: Bool {
        lock.lock()
        defer { lock.unlock() }
        return !released && !lost && ContinuousClock.now - renewedAt < ClusterNames.gatewayLeaseTTL - .seconds(3)
    }

    /// Another node holds it, or it expired: this node can never publish again.
    var isLost: Bool {
        lock.lock()
        defer { lock.unlock() }
        return lost
    }
    private var lost = false

    /// Renews every 500 ms on its own thread; `lost` is called when another node holds it.
    func keepRenewing(lost: @escaping @Sendable (String) -> Void) {
        let t = Thread { [self] in
            while true {
                Thread.sleep(forTimeInterval: 0.5)
                lock.lock()
                let (rev, done) = (revision, released)
                lock.unlock()
                if done { return }
                let sent = ContinuousClock.now
                do {
                    if let next = try kv.update(Self.key, Array(holder.utf8), last: rev) {
                        lock.lock()
                        revision = next
                        renewedAt = sent
                        lock.unlock()
                    } else if let cur = try kv.get(Self.key), cur.value == Array(holder.utf8) {
                        // An earlier renewal was written but its answer was lost (a leader
                        // killed after the write): the latest write is still this node's, and
                        // it only ever writes on its own last revision, so it held the lease
                        // throughout. Carry on from that revision; freshness waits for the next
                        // renewal that is answered.
                        lock.lock()
                        revision = cur.revision
                        lock.unlock()
                    } else {
                        lock.lock()
                        self.lost = true
                        lock.unlock()
                        lost(currentHolder() ?? "another node")
                        return
                    }
                } catch {
                    // Not renewed: publishing stops after 2 s (isFresh); retried.
                }
            }
        }
        t.name = "tripline-gateway-lease"
        t.start()
    }

    /// Gives the lease up (a clean stop: a waiting node takes over at once).
    func release() {
        lock.lock()
        released = true
        lock.unlock()
        try? kv.delete(Self.key)
    }
}
