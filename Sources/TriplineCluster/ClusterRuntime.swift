import Foundation
import TriplineCore
import TriplineNATS
import TriplineYAML

/// Names of the cluster's streams, subjects and buckets on JetStream.
public enum ClusterNames {
    /// Events: one subject per partition, `ev.<p>`; each message is one gateway flush of that
    /// partition's records (`ClusterRecords`).
    public static let events = "EV"
    public static func eventSubject(_ p: Int) -> String { "ev.\(p)" }
    public static let allEvents = "ev.*"
    /// Alerts: one subject per stage, `alerts.<stage>` (`p<k>` for partition k, `x` for the
    /// cross-entity stage).
    public static let alerts = "ALERTS"
    public static func alertSubject(_ stage: String) -> String { "alerts.\(stage)" }
    /// The cluster's settings and catalog versions: `catalog.v.<version>.<document>.<i>` and
    /// `catalog.v.<version>.manifest` per version (all kept), `catalog.manifest` the current one.
    public static let catalog = "CATALOG"
    /// Partition leases (`p<k>`, `x`) and live workers (`w.<id>`): entries live 3 s.
    public static let leases = "tripline_leases"
    /// The gateway lease (`gateway`): 10 s, so that it outlives a stream leader election
    /// (a gateway must never overlap another, unlike workers).
    public static let gatewayLease = "tripline_gateway"
    public static let gatewayLeaseTTL = Duration.seconds(10)
}

/// The cluster's settings, fixed when it is created.
public struct ClusterConfig: Codable, Sendable, Equatable {
    public var partitions: Int
    public var allowedLateness: Millis
    public var dedupWindow: Millis
    public init(partitions: Int, allowedLateness: Millis, dedupWindow: Millis) {
        self.partitions = partitions
        self.allowedLateness = allowedLateness
        self.dedupWindow = dedupWindow
    }

    public var options: PipelineOptions { PipelineOptions(allowedLateness: allowedLateness, dedupWindow: dedupWindow) }
    /// Every stage: the partitions, then the cross-entity stage.
    public var stages: [String] { (0..<partitions).map { "p\($0)" } + ["x"] }
}

/// The catalog as the files it came from (zones GeoJSON, entities NDJSON, rules YAML or JSON).
public struct ClusterCatalog: Sendable {
    public var zones: [UInt8]
    public var entities: [UInt8]
    public var rules: [UInt8]
    /// The zones this version created, changed or deleted against the one before, with their
    /// versions (an API node counts them as one server does): the stages emit the transitions
    /// they cause at the change (docs/rules.md, "Zone edits"). Not part of the catalog's
    /// identity.
    public var zoneEdits: [ZoneEdit] = []
    public init(zones: [UInt8], entities: [UInt8], rules: [UInt8], zoneEdits: [ZoneEdit] = []) {
        self.zones = zones
        self.entities = entities
        self.rules = rules
        self.zoneEdits = zoneEdits
    }

    public struct Invalid: Error, CustomStringConvertible {
        public var description: String
        public init(description: String) { self.description = description }
    }

    /// The decoded catalog, or every error in it.
    public func decode(sensitive: SensitiveTags = SensitiveTags()) throws -> (zones: [Zone], entities: [EntityInfo], rules: [Rule]) {
        var errors: [String] = []
        var zs: [Zone] = [], es: [EntityInfo] = [], rs: [Rule] = []
        if !zones.isEmpty {
            switch ZoneCodec.decode(String(decoding: zones, as: UTF8.self), file: "catalog zones", sensitive: sensitive) {
            case .success(let v): zs = v
            case .failure(let e): errors += e.errors.map(\.description)
            }
        }
        if !entities.isEmpty {
            switch entities.withUnsafeBufferPointer({ EntityCodec.decode($0, file: "catalog entities", sensitive: sensitive) }) {
            case .success(let v): es = v
            case .failure(let e): errors += e.errors.map(\.description)
            }
        }
        if !rules.isEmpty {
            switch RuleFile.decode(String(decoding: rules, as: UTF8.self), file: "catalog rules", sensitive: sensitive) {
            case .success(let v): rs = v
            case .failure(let e): errors += e.errors.map(\.description)
            }
        }
        if !errors.isEmpty { throw Invalid(description: errors.joined(separator: "\n")) }
        return (zs, es, rs)
    }
}

/// Creating a cluster on JetStream and reading its settings back.
public enum ClusterSetup {
    /// Creates (or updates) the streams and records the settings and catalog; returns the
    /// catalog's version. `replicas`: 3 on a three-server cluster. On an existing cluster the
    /// settings must be the same; a different catalog is refused unless `replaceCatalog` (the
    /// API node, only while the events stream holds no message).
    @discardableResult
    public static func create(_ c: NATSConnection, config: ClusterConfig, catalog: ClusterCatalog, replicas: Int = 1,
                              replaceCatalog: Bool = false) throws -> String {
        _ = try catalog.decode()
        if let existing = try? loadVersioned(c) {
            if existing.config != config {
                throw ClusterCatalog.Invalid(description: "this cluster was created with \(existing.config.partitions) partitions, lateness \(existing.config.allowedLateness) ms and dedup window \(existing.config.dedupWindow) ms; those cannot change (create a new cluster)")
            }
            if existing.catalog.zones == catalog.zones && existing.catalog.entities == catalog.entities && existing.catalog.rules == catalog.rules {
                return existing.version
            }
            // A new version is written only for the API node, which then marks the change in
            // every partition (workers switch at that place in the stream).
            guard replaceCatalog else {
                throw ClusterCatalog.Invalid(description: "this cluster already has a different catalog (zones, entities or rules); change it through the cluster's API node (rules, zones and entities routes), or create the cluster on fresh servers")
            }
            return try publishCatalog(c, config: config, catalog: catalog)
        }
        var ev = StreamSettings(name: ClusterNames.events, subjects: [ClusterNames.allEvents], replicas: replicas)
        ev.duplicateWindow = .seconds(300)
        try c.ensureStream(ev)
        var al = StreamSettings(name: ClusterNames.alerts, subjects: ["alerts.>"], replicas: replicas)
        al.duplicateWindow = .seconds(300)
        try c.ensureStream(al)
        var cat = StreamSettings(name: ClusterNames.catalog, subjects: ["catalog.>"], replicas: replicas)
        cat.maxMessagesPerSubject = 1
        try c.ensureStream(cat)
        _ = try c.keyValue(bucket: ClusterNames.leases, ttl: .seconds(3), replicas: replicas)
        _ = try c.keyValue(bucket: ClusterNames.gatewayLease, ttl: ClusterNames.gatewayLeaseTTL, replicas: replicas)
        return try publishCatalog(c, config: config, catalog: catalog)
    }

    /// Each document in chunks of at most 512 KiB (a NATS message is at most 1 MiB by
    /// default), then the manifest naming the version and the chunk counts: a reader takes
    /// the manifest's version only, so a half-written catalog is never read.
    static func publishCatalog(_ c: NATSConnection, config: ClusterConfig, catalog: ClusterCatalog) throws -> String {
        let version = UUID().uuidString
        let chunk = 512 << 10
        var messages: [OutgoingMessage] = []
        var parts: [String: Int] = [:]
        for (name, data) in [("zones", catalog.zones), ("entities", catalog.entities), ("rules", catalog.rules)] {
            let n = max(1, (data.count + chunk - 1) / chunk)
            parts[name] = n
            for i in 0..<n {
                let piece = Array(data[min(data.count, i * chunk)..<min(data.count, (i + 1) * chunk)])
                messages.append(OutgoingMessage(subject: "catalog.v.\(version).\(name).\(i)", data: piece, msgId: "\(name).\(i)-\(version)",
                                                headers: [("Tripline-Version", version)]))
            }
        }
        let edits = catalog.zoneEdits.map { Manifest.Edit(zone: $0.zone, version: $0.version, change: $0.change.rawValue) }
        let manifest = Array(try JSONEncoder().encode(Manifest(version: version, config: config, parts: parts, zoneEdits: edits.isEmpty ? nil : edits)))
        messages.append(OutgoingMessage(subject: "catalog.v.\(version).manifest", data: manifest, msgId: "v-manifest-\(version)"))
        _ = try c.publishAll(messages)
        _ = try c.publishAll([OutgoingMessage(subject: "catalog.manifest", data: manifest, msgId: "manifest-\(version)")])
        return version
    }

    /// A manifest's parts were replaced by a newer catalog's being written: read again.
    struct CatalogBeingWritten: Error, CustomStringConvertible {
        var description: String
    }

    struct Manifest: Codable {
        var version: String
        var config: ClusterConfig
        var parts: [String: Int]
        /// Absent in catalogs written before zone edits were published.
        var zoneEdits: [Edit]?
        struct Edit: Codable {
            var zone: String
            var version: Int
            var change: String
        }
    }

    /// The settings and catalog; JetStream errors (a leader being elected after a server was
    /// lost) are retried for up to 15 s.
    public static func load(_ c: NATSConnection) throws -> (config: ClusterConfig, catalog: ClusterCatalog) {
        let l = try loadVersioned(c)
        return (l.config, l.catalog)
    }

    /// The settings, catalog and the catalog's version (JetStream errors retried for 15 s).
    public static func loadVersioned(_ c: NATSConnection) throws -> (config: ClusterConfig, catalog: ClusterCatalog, version: String) {
        let deadline = ContinuousClock.now + .seconds(15)
        while true {
            do {
                return try loadOnce(c)
            } catch let e as NATSError where ContinuousClock.now < deadline {
                _ = e
                Thread.sleep(forTimeInterval: 0.5)
            } catch let e as CatalogBeingWritten where ContinuousClock.now < deadline {
                _ = e
                Thread.sleep(forTimeInterval: 0.1)
            }
        }
    }

    /// Catalog version `version` (any kept one), JetStream errors retried for 15 s.
    public static func load(_ c: NATSConnection, version: String) throws -> (config: ClusterConfig, catalog: ClusterCatalog) {
        let deadline = ContinuousClock.now + .seconds(15)
        while true {
            do {
                let l = try loadOnce(c, manifestSubject: "catalog.v.\(version).manifest")
                return (l.config, l.catalog)
            } catch let e as NATSError where ContinuousClock.now < deadline {
                _ = e
                Thread.sleep(forTimeInterval: 0.5)
            }
        }
    }

    static func loadOnce(_ c: NATSConnection, manifestSubject: String = "catalog.manifest") throws -> (config: ClusterConfig, catalog: ClusterCatalog, version: String) {
        guard let m = try c.lastMessage(stream: ClusterNames.catalog, subject: manifestSubject) else {
            if manifestSubject != "catalog.manifest" {
                throw ClusterCatalog.Invalid(description: "catalog version \(manifestSubject) is not on the CATALOG stream")
            }
            throw ClusterCatalog.Invalid(description: "no cluster is set up on these servers yet: run 'tripline cluster create' first")
        }
        let manifest = try JSONDecoder().decode(Manifest.self, from: Data(m.data))
        func document(_ name: String) throws -> [UInt8] {
            var out: [UInt8] = []
            for i in 0..<(manifest.parts[name] ?? 0) {
                guard let part = try c.lastMessage(stream: ClusterNames.catalog, subject: "catalog.v.\(manifest.version).\(name).\(i)"),
                      part.headers["Tripline-Version"] == manifest.version else {
                    throw CatalogBeingWritten(description: "the catalog's \(name) part \(i) of version \(manifest.version) is missing (a newer catalog is being written?): retry")
                }
                out += part.data
            }
            return out
        }
        let edits = (manifest.zoneEdits ?? []).compactMap { e in ZoneEdit.Change(rawValue: e.change).map { ZoneEdit(zone: e.zone, version: e.version, change: $0) } }
        return (manifest.config, ClusterCatalog(zones: try document("zones"), entities: try document("entities"), rules: try document("rules"), zoneEdits: edits),
                manifest.version)
    }
}

/// The gateway on JetStream: offers batches to the time core for every entity and publishes
/// each partition's records as one message, acknowledging only once JetStream has them all.
/// Each message names the catalog version in force (`Tripline-Catalog`). Not thread-safe: one
/// caller at a time (the server's engine thread).
public final class ClusterGatewayPublisher {
    public let connection: NATSConnection
    public let config: ClusterConfig
    var gateway: ClusterGateway
    public private(set) var catalogVersion: String
    /// The version in force when the records now pending began (the version at the last
    /// flush: a change writes a marker into every partition): named on each message.
    var headerVersion: String
    /// This gateway's messages are `<instance>.<p>.<n>`: ids stable across resends.
    let instance = UUID().uuidString.prefix(13).lowercased()
    var sent: UInt64 = 0
    public private(set) var published = 0

    public init(connection: NATSConnection, config: ClusterConfig, entities: [EntityInfo], catalogVersion: String = "") {
        self.connection = connection
        self.config = config
        self.catalogVersion = catalogVersion
        headerVersion = catalogVersion
        gateway = ClusterGateway(partitions: config.partitions, entities: entities, options: config.options)
    }

    public var watermark: Millis { gateway.watermark }
    /// Events accepted so far.
    public var accepted: UInt64 { gateway.accepted }
    /// The time core: watermark, statistics, entity names.
    public var timeCore: Pipeline { gateway.timeCore }

    /// A new catalog while nothing was offered yet: a fresh time core knowing its entities.
    public func reset(entities: [EntityInfo], catalogVersion: String) {
        precondition(gateway.accepted == 0 && published == 0, "the catalog of a cluster changes only before its first event")
        gateway = ClusterGateway(partitions: config.partitions, entities: entities, options: config.options)
        self.catalogVersion = catalogVersion
        headerVersion = catalogVersion
    }

    /// A catalog change on a cluster with history: a marker in every partition, where each
    /// stage rebuilds on `version` (published at the next flush).
    public func catalogChange(version: String) {
        gateway.catalogChange(version: version)
        catalogVersion = version
    }

    /// Offers a batch and (with `publish`) publishes what it and the batches before it
    /// accepted; throws when JetStream does not acknowledge every message in time (then
    /// nothing of the unpublished batches may be assumed stored: re-send them). Without
    /// `publish` the records wait for a later `flush()` (a bulk load acknowledging many
    /// batches at once). `check` and `accepted` as in `ClusterGateway.offer`.
    public func offer(_ texts: EventTexts, publish: Bool = true, check: (Event, Int) -> TriplineError? = { _, _ in nil },
                      accepted: (Event) -> Void = { _ in }) throws -> Result<ClusterGateway.Offered, InvalidEvents> {
        let r = gateway.offer(texts, check: check, accepted: accepted)
        if case .success = r, publish { try flush() }
        return r
    }

    /// Bytes of records not published yet.
    public var unpublishedBytes: Int { gateway.pending.reduce(0) { $0 + $1.count } }

    /// Every partition is told the watermark (timers fire where no event comes).
    public func markWatermark(publish: Bool = true) throws {
        gateway.markWatermark()
        if publish { try flush() }
    }

    public func advance(until t: Millis, publish: Bool = true) throws {
        gateway.advance(until: t)
        if publish { try flush() }
    }

    /// A gateway taking over a cluster that has events (a restarted or new API node): reads
    /// the whole `EV` stream, rebuilds the time core from it (`ClusterGateway.Rebuilder`), and
    /// publishes a `void` record for each accepted number a dead gateway's last publish lost.
    /// Nothing else may publish to `EV` meanwhile (the caller holds the gateway lease).
    public static func rebuilt(connection: NATSConnection, config: ClusterConfig, entities: [EntityInfo], catalogVersion: String,
                               accepted: (Event) -> Void = { _ in }) throws -> (ClusterGatewayPublisher, ClusterGateway.Rebuilt, messages: Int) {
        let pub = ClusterGatewayPublisher(connection: connection, config: config, entities: entities, catalogVersion: catalogVersion)
        let last = try connection.streamState(ClusterNames.events).lastSequence
        let rebuilder = ClusterGateway.Rebuilder()
        var messages = 0
        if last > 0 {
            let reader = try connection.orderedReader(stream: ClusterNames.events, subject: ClusterNames.allEvents, startSequence: 1)
            var seq: UInt64 = 0
            var quiet = ContinuousClock.now
            while seq < last {
                guard let m = try reader.next(timeout: .milliseconds(500)) else {
                    if ContinuousClock.now - quiet > .seconds(30) {
                        throw ClusterCatalog.Invalid(description: "the events stream stopped delivering at sequence \(seq) of \(last) while rebuilding the gateway (are its servers up?)")
                    }
                    continue
                }
                quiet = ContinuousClock.now
                seq = m.sequence
                messages += 1
                try ClusterRecords.forEach(in: m.data) { rebuilder.add($0) }
            }
        }
        let (gw, report) = try rebuilder.rebuild(partitions: config.partitions, entities: entities, options: config.options, accepted: accepted)
        pub.gateway = gw
        if !report.holes.isEmpty {
            for n in report.holes { gw.void(n) }
            try pub.flush()
        }
        return (pub, report, messages)
    }

    /// Publishes every partition's records not published yet, one message each, and waits
    /// for JetStream's acknowledgements.
    /// Messages of a flush that threw: sent again first (same ids) by the next flush.
    var unacknowledged: [OutgoingMessage] = []

    public func flush(deadline: Duration = .seconds(30)) throws {
        var out = unacknowledged
        for (p, bytes) in gateway.take().enumerated() where !bytes.isEmpty {
            sent += 1
            out.append(OutgoingMessage(subject: ClusterNames.eventSubject(p), data: bytes, msgId: "\(instance).\(p).\(sent)",
                                       headers: headerVersion.isEmpty ? [] : [("Tripline-Catalog", headerVersion)]))
        }
        headerVersion = catalogVersion
        if out.isEmpty { return }
        unacknowledged = out
        _ = try connection.publishAll(out, deadline: deadline)
        unacknowledged = []
        published += out.count
    }
}

/// A stage's alerts as published: `<source seq> <index> <time> <alert JSON>` per line.
public enum ClusterAlertLines {
    public static func append(source: UInt64, index: Int, _ a: NamedAlert, to out: inout [UInt8]) {
        out += Array("\(source) \(index) \(a.time) ".utf8)
        out += Array(a.line.utf8)
        out.append(10)
    }
}

/// A worker: holds stage leases (partitions `p<k>` and the cross-entity stage `x`) in the
/// lease bucket, runs one engine per stage held, fed from the `EV` stream in stream order
/// from its first message (recovery replays the retained stream), and publishes each stage's
/// alerts with their progress to `ALERTS`. Alert ids are (stage, source sequence, index): a
/// worker replaying a stage another worker ran publishes the same ids, which JetStream (within
/// its duplicate window) and the collector drop.
public final class ClusterWorker: @unchecked Sendable {
    public let id: String
    let connection: NATSConnection
    let config: ClusterConfig
    /// Catalog versions met so far, decoded; `current` the cluster's when the worker started.
    struct CatalogVersion {
        var zones: [Zone], entities: [EntityInfo], rules: [Rule]
        var split: (entity: Set<String>, cross: Set<String>)
        /// The zone edits this version made against the one before.
        var zoneEdits: [ZoneEdit] = []
    }
    var catalogs: [String: CatalogVersion] = [:]
    let current: String
    let leases: KeyValue
    let maxStages: Int?
    private let stopFlag = NSLock()
    private var stopped = false

    final class Held {
        let name: String
        var revision: UInt64
        var reader: OrderedReader
        /// When the stage last got a message, and last checked the stream for a stall.
        var lastMessageAt = ContinuousClock.now
        var lastStallCheck = ContinuousClock.now
        /// Taking the stage: the stream's last sequence then (its history to replay) and when.
        var replayThrough: UInt64 = 0
        let takenAt = ContinuousClock.now
        var stage: ClusterStage
        var merger: ClusterMerger?
        /// The catalog version its engine runs.
        var version: String
        var lastSource: UInt64 = 0
        var publishedComplete: Millis = .min
        var pending: [UInt8] = []
        var pendingFirst: UInt64 = 0
        init(name: String, revision: UInt64, reader: OrderedReader, stage: ClusterStage, merger: ClusterMerger?, version: String) {
            self.version = version
            self.name = name
            self.revision = revision
            self.reader = reader
            self.stage = stage
            self.merger = merger
        }
    }

    var held: [String: Held] = [:]
    /// Called with each event a stage started, lost or gave up (logging).
    public var log: (String) -> Void = { _ in }

    public init(connection: NATSConnection, id: String, maxStages: Int? = nil) throws {
        self.connection = connection
        self.id = id
        self.maxStages = maxStages
        let loaded = try ClusterSetup.loadVersioned(connection)
        config = loaded.config
        current = loaded.version
        let (zones, entities, rules) = try loaded.catalog.decode()
        catalogs[current] = CatalogVersion(zones: zones, entities: entities, rules: rules, split: ClusterRules.split(rules))
        leases = try connection.keyValue(bucket: ClusterNames.leases, ttl: .seconds(3))
    }

    public func stop() {
        stopFlag.lock()
        stopped = true
        stopFlag.unlock()
    }

    var isStopped: Bool {
        stopFlag.lock()
        defer { stopFlag.unlock() }
        return stopped
    }

    /// Runs until `stop()`: renews leases every second, takes free stages up to its share,
    /// and processes what arrives.
    public func run() throws {
        var lastRenew = ContinuousClock.now - .seconds(10)
        while !isStopped {
            // A JetStream error (a server lost, a leader being elected) is waited out: the
            // alerts not published stay pending and go out on a later round; a lease not
            // renewed in time is taken by another worker, which this one learns at its next
            // renewal (both may run the stage for a moment, publishing the same alert names).
            do {
                if ContinuousClock.now - lastRenew >= .milliseconds(800) {
                    try renewAndBalance()
                    lastRenew = ContinuousClock.now
                }
                var any = false
                for h in held.values.sorted(by: { $0.name < $1.name }) {
                    var n = 0
                    while n < 64, let m = try h.reader.next(timeout: n == 0 && !any ? .milliseconds(20) : .milliseconds(1)) {
                        try process(h, m)
                        n += 1
                        any = true
                    }
                    if n > 0 { h.lastMessageAt = ContinuousClock.now } else { try resumeIfStalled(h) }
                    if h.replayThrough > 0 && h.lastSource >= h.replayThrough {
                        // Recovery time: the stage's history replayed (what a snapshot would save).
                        let d = (ContinuousClock.now - h.takenAt).components
                        log("stage \(h.name) replayed its history through sequence \(h.replayThrough) in \(String(format: "%.2f", Double(d.seconds) + Double(d.attoseconds) / 1e18)) s")
                        h.replayThrough = 0
                    }
                    try publish(h)
                }
                // Holding nothing: wait a moment for a lease to come free.
                if held.isEmpty { Thread.sleep(forTimeInterval: 0.2) }
            } catch let e as NATSError {
                log("JetStream: \(e); retrying")
                Thread.sleep(forTimeInterval: 0.5)
            }
        }
        for name in held.keys { try? leases.delete(name) }
        try? leases.delete("w.\(id)")
    }

    /// An ordered consumer can stall for good when the server holding it is killed (seen
    /// with libnats 3.4.1 and nats-server 2.9.10: no message and no error). A stage that has
    /// had nothing for 3 s looks at the stream every 2 s; if the stream holds messages past
    /// the last one it applied, it reads again from the next sequence.
    func resumeIfStalled(_ h: Held) throws {
        let now = ContinuousClock.now
        guard now - h.lastMessageAt >= .seconds(3), now - h.lastStallCheck >= .seconds(2) else { return }
        h.lastStallCheck = now
        let subject = h.merger == nil ? ClusterNames.eventSubject(Int(h.name.dropFirst())!) : ClusterNames.allEvents
        let last: UInt64
        if h.merger == nil {
            last = try connection.lastMessage(stream: ClusterNames.events, subject: subject)?.sequence ?? 0
        } else {
            last = try connection.streamState(ClusterNames.events).lastSequence
        }
        guard last > h.lastSource else { return }
        h.reader = try connection.orderedReader(stream: ClusterNames.events, subject: subject, startSequence: h.lastSource + 1)
        h.lastMessageAt = now
        log("stage \(h.name) had no message for 3 s while the stream holds up to \(last): reading again from \(h.lastSource + 1)")
    }

    /// A message names a catalog version its stage was not switched to by a marker.
    public struct CatalogChangedMidStream: Error, CustomStringConvertible {
        public var description: String
    }

    /// Catalog version `version`, decoded (loaded once).
    func catalog(_ version: String) throws -> CatalogVersion {
        if let c = catalogs[version] { return c }
        let loaded = try ClusterSetup.load(connection, version: version)
        let (zones, entities, rules) = try loaded.catalog.decode()
        let c = CatalogVersion(zones: zones, entities: entities, rules: rules, split: ClusterRules.split(rules), zoneEdits: loaded.catalog.zoneEdits)
        catalogs[version] = c
        return c
    }

    func process(_ h: Held, _ m: StreamMessage) throws {
        // A message names the catalog version in force where it begins. A stage that has
        // applied nothing yet starts on it (the catalog changed before the first event, or the
        // stage replays a stream that began on an older version). Later, changes come as
        // markers (the cross-entity stage switches at the first partition's copy, while other
        // partitions' messages still begin under the version before).
        if h.lastSource == 0, let v = m.headers["Tripline-Catalog"], !v.isEmpty, v != h.version {
            (h.stage, h.merger) = try makeStage(h.name, version: v)
            h.version = v
            log("stage \(h.name) starts on catalog version \(v)")
        }
        var out: [NamedAlert] = []
        do {
            if let merger = h.merger { try merger.push(m.data) } else { try h.stage.consume(m.data) }
        } catch let sw as ClusterStage.CatalogSwitch {
            // The old engine's alerts up to the change, then an engine on the new version
            // rebuilt from the start of the stream through this message (the old engine, at the
            // change, is what zone edits compare against).
            h.stage.pipeline.drainAlerts(into: &out)
            try rebuild(h, through: m.sequence, sw, alerts: &out)
        }
        h.stage.pipeline.drainAlerts(into: &out)
        if h.pending.isEmpty { h.pendingFirst = m.sequence }
        for (i, a) in out.enumerated() { ClusterAlertLines.append(source: m.sequence, index: i, a, to: &h.pending) }
        h.lastSource = m.sequence
    }

    /// Rebuilds stage `h` on the catalog version of `sw` from the start of the stream through
    /// sequence `last` (the engine drops what completed by the change, and applies the rest
    /// live); a later change met on the way is handled the same way in turn.
    func rebuild(_ h: Held, through last: UInt64, _ sw: ClusterStage.CatalogSwitch, alerts out: inout [NamedAlert]) throws {
        var next: ClusterStage.CatalogSwitch? = sw
        let began = ContinuousClock.now
        var reads = 0
        while let sw = next {
            next = nil
            // The engine just before the change, and the zones the change deleted (kept in the
            // new engine, outside its index, so that their exits can name them).
            let previous = h.stage.pipeline
            let before = try catalog(h.version), after = try catalog(sw.version)
            let deleted = Set(after.zoneEdits.filter { $0.change == .deleted }.map(\.zone))
            let retired = before.zones.filter { deleted.contains($0.id) }
            let (stage, merger) = try makeStage(h.name, version: sw.version, retired: retired)
            stage.rebuildingTo = (sw.after, sw.step)
            if !after.zoneEdits.isEmpty {
                // One server applies the edits right after its rebuild, at the change; so does
                // this engine, at the change's place in the stream.
                let edits = after.zoneEdits
                stage.atChange = { p in
                    p.applyZoneEdits(edits, previous: previous)
                    p.closeOpenAlerts()
                }
            }
            (h.stage, h.merger, h.version) = (stage, merger, sw.version)
            let subject = merger == nil ? ClusterNames.eventSubject(Int(h.name.dropFirst())!) : ClusterNames.allEvents
            let reader = try connection.orderedReader(stream: ClusterNames.events, subject: subject, startSequence: 1)
            var seq: UInt64 = 0
            var quiet = ContinuousClock.now
            do {
                while seq < last {
                    guard let m = try reader.next(timeout: .milliseconds(500)) else {
                        if ContinuousClock.now - quiet > .seconds(30) {
                            throw CatalogChangedMidStream(description: "stage \(h.name): the stream stopped delivering at \(seq) of \(last) while rebuilding for a catalog change")
                        }
                        continue
                    }
                    quiet = ContinuousClock.now
                    seq = m.sequence
                    reads += 1
                    if let merger { try merger.push(m.data) } else { try stage.consume(m.data) }
                }
            } catch let later as ClusterStage.CatalogSwitch {
                stage.pipeline.drainAlerts(into: &out)
                next = later
            }
        }
        let d = (ContinuousClock.now - began).components
        log("stage \(h.name) rebuilt on catalog version \(h.version) from \(reads) messages in \(String(format: "%.2f", Double(d.seconds) + Double(d.attoseconds) / 1e18)) s")
    }

    /// Publishes the stage's alerts since the last publish with its progress (when there is
    /// something new to say).
    func publish(_ h: Held) throws {
        let complete = h.stage.completeThrough
        guard !h.pending.isEmpty || complete > h.publishedComplete else { return }
        let first = h.pending.isEmpty ? h.lastSource : h.pendingFirst
        // Messages of at most 512 KiB (NATS takes 1 MiB by default), cut at line ends; only
        // the last carries the progress.
        var msgs: [OutgoingMessage] = []
        var start = 0
        while start < h.pending.count || msgs.isEmpty {
            var end = min(h.pending.count, start + (512 << 10))
            if end < h.pending.count { end = (h.pending[start..<end].lastIndex(of: 10) ?? (end - 1)) + 1 }
            msgs.append(OutgoingMessage(subject: ClusterNames.alertSubject(h.name), data: Array(h.pending[start..<end]),
                                        msgId: "\(h.name).\(first)-\(h.lastSource).\(complete).\(msgs.count)"))
            start = end
        }
        msgs[msgs.count - 1].headers = [("Tripline-Complete", String(complete)), ("Tripline-Source", String(h.lastSource))]
        // One at a time: a chunk resent after a failure must not land after the next one
        // (the collector drops alerts named before ones it has, and trusts the progress of
        // the last chunk only once the chunks before it are in).
        for m in msgs { _ = try connection.publishAll([m]) }
        h.pending.removeAll(keepingCapacity: true)
        h.publishedComplete = complete
    }

    func renewAndBalance() throws {
        // Renew what is held; a lease lost (expired and taken) stops its stage at once.
        for (name, h) in held {
            if let rev = try leases.update(name, Array(id.utf8), last: h.revision) {
                h.revision = rev
            } else if let cur = try leases.get(name), cur.value == Array(id.utf8) {
                // An earlier renewal was written but its answer was lost: the latest write is
                // still this worker's (it only writes on its own last revision), so it held the
                // stage throughout.
                h.revision = cur.revision
            } else {
                held[name] = nil
                log("lost the lease of stage \(name)")
            }
        }
        // Announce this worker, count the live ones, take free stages up to a fair share.
        let me = "w.\(id)"
        if let cur = try leases.get(me) { _ = try leases.update(me, [1], last: cur.revision) } else { _ = try leases.create(me, [1]) }
        let live = max(1, try leases.keys().filter { $0.hasPrefix("w.") }.count)
        let stages = config.stages
        let share = min(maxStages ?? .max, (stages.count + live - 1) / live)
        for name in stages where held.count < share && held[name] == nil {
            guard let rev = try leases.create(name, Array(id.utf8)) else { continue }
            try start(name, revision: rev)
        }
        // More than a fair share (a worker joined): give the last ones back.
        while held.count > share, let name = held.keys.sorted().last {
            held[name] = nil
            try? leases.delete(name)
            log("gave stage \(name) back (fair share \(share) of \(stages.count) with \(live) workers)")
        }
    }

    /// A fresh engine for stage `name` on catalog `version` (with its merger for `x`).
    func makeStage(_ name: String, version: String, retired: [Zone] = []) throws -> (ClusterStage, ClusterMerger?) {
        let c = try catalog(version)
        if name == "x" {
            let stage = ClusterStage(zones: c.zones, retiredZones: retired, entities: c.entities, rules: c.rules, only: c.split.cross,
                                     options: config.options, positionsOnly: true)
            return (stage, ClusterMerger(stage: stage))
        }
        return (ClusterStage(zones: c.zones, retiredZones: retired, entities: c.entities, rules: c.rules, only: c.split.entity, options: config.options), nil)
    }

    func start(_ name: String, revision: UInt64) throws {
        let subject = name == "x" ? ClusterNames.allEvents : ClusterNames.eventSubject(Int(name.dropFirst())!)
        let reader = try connection.orderedReader(stream: ClusterNames.events, subject: subject, startSequence: 1)
        let (stage, merger) = try makeStage(name, version: current)
        let h = Held(name: name, revision: revision, reader: reader, stage: stage, merger: merger, version: current)
        h.replayThrough = name == "x" ? try connection.streamState(ClusterNames.events).lastSequence
            : try connection.lastMessage(stream: ClusterNames.events, subject: subject)?.sequence ?? 0
        held[name] = h
        log("took stage \(name)")
    }
}

/// Reads `ALERTS` and hands out alerts in canonical order once every stage is complete past
/// their time: the API node's side (into its store), or `tripline cluster alerts`.
public final class ClusterAlertCollector {
    let reader: OrderedReader
    /// Each configured stage's place in `merge` (alerts of any other stage are never handed out).
    let stageIndex: [String: Int]
    var merge: StageAlertMerge
    var last: [String: (UInt64, Int)] = [:]
    public private(set) var duplicatesDropped = 0

    public init(connection: NATSConnection, config: ClusterConfig) throws {
        stageIndex = Dictionary(config.stages.enumerated().map { ($1, $0) }, uniquingKeysWith: { a, _ in a })
        merge = StageAlertMerge(stages: config.stages.count)
        reader = try connection.orderedReader(stream: ClusterNames.alerts, subject: "alerts.>", startSequence: 1)
    }

    /// The time through which every stage is complete.
    public var completeThrough: Millis { merge.completeThrough }

    /// Reads what arrives within `timeout`; returns the alerts now final, in canonical order.
    public func poll(timeout: Duration) throws -> [NamedAlert] {
        var first = true
        while let m = try reader.next(timeout: first ? timeout : .milliseconds(1)) {
            first = false
            let stage = String(m.subject.dropFirst("alerts.".count))
            if let c = m.headers["Tripline-Complete"].flatMap({ Millis($0) }), let k = stageIndex[stage] { merge.completed(k, through: c) }
            var i = m.data.startIndex
            while i < m.data.endIndex {
                let end = m.data[i...].firstIndex(of: 10) ?? m.data.endIndex
                try take(stage, m.data[i..<end])
                i = end + 1
            }
        }
        return merge.takeReady()
    }

    struct Malformed: Error, CustomStringConvertible {
        var description: String
    }

    func take(_ stage: String, _ line: ArraySlice<UInt8>) throws {
        let parts = line.split(separator: 32, maxSplits: 3, omittingEmptySubsequences: false)
        guard parts.count == 4, let seq = UInt64(String(decoding: parts[0], as: UTF8.self)), let idx = Int(String(decoding: parts[1], as: UTF8.self)),
              let time = Millis(String(decoding: parts[2], as: UTF8.self)) else {
            throw Malformed(description: "malformed alert line from stage \(stage)")
        }
        if let l = last[stage], (seq, idx) <= l {
            duplicatesDropped += 1
            return
        }
        last[stage] = (seq, idx)
        let text = String(decoding: parts[3], as: UTF8.self)
        guard let o = try JSONSerialization.jsonObject(with: Data(parts[3])) as? [String: Any], let key = o["key"] as? [String: Any] else {
            throw Malformed(description: "alert from stage \(stage) is not a JSON object with a key")
        }
        let pair = key["pair"] as? [String]
        let a = NamedAlert(ruleIndex: 0, rule: o["rule"] as? String ?? "", severity: .low, firing: o["state"] as? String == "firing", time: time,
                           entity: key["entity"] as? String, zone: key["zone"] as? String, pairA: pair?.first, pairB: pair?.last, line: text, group: key["group"] as? String)
        if let k = stageIndex[stage] { merge.add(CollectionOfOne(a), stage: k) }
    }
}
