import Foundation
import TriplineCore
import TriplineStore
import TriplineNotify

/// Settings of a server's engine.
public struct HostOptions: Sendable {
    public var allowedLateness: Millis = 0
    public var sensitive = SensitiveTags()
    /// Most events in one request.
    public var maxBatchEvents = 10_000
    /// Most events waiting for the engine across requests; beyond it, requests get 429.
    public var queueCapacityEvents = 200_000
    /// Most events applied and committed in one transaction (group commit).
    public var groupCommitEvents = 50_000
    /// Events later than the wall clock plus this are refused (422), so that one event with a
    /// bad clock cannot move event time forward for good; nil accepts any time in range.
    public var maxFuture: Millis? = 3_600_000
    /// How long an accepted event id is remembered for duplicate detection (spec v1.2).
    public var dedupWindow: Millis = 86_400_000
    /// Positions kept per entity for `intersects` queries (its recent track); 0 keeps none.
    public var trackPoints = 10
    /// Decode batches (and look up their positions' zones) on a stage of their own, ahead of
    /// the engine thread; false decodes them on the engine thread. Single node only.
    public var decodeStage = true
    public init() {}
}

/// The answer to an accepted batch.
public struct IngestResult: Sendable {
    public var received = 0
    public var applied = 0
    public var duplicates = 0
    /// Line numbers (1-based, or element indexes for a JSON array) of late events.
    public var lateLines: [Int] = []
    public var alerts = 0
    public var watermark: Millis = .min
}

public enum IngestError: Error, Sendable {
    /// Some lines are invalid: nothing of the batch was applied.
    case invalid([TriplineError])
    /// The ingest queue is full: retry after the given seconds.
    case overloaded(retryAfter: Int)
    /// The store refused the commit: nothing of the batch was acknowledged.
    case storage(String)
}

/// The system's wall clock in milliseconds since the epoch (the default of every injected clock).
public enum WallClock {
    public static let system: @Sendable () -> Millis = { Millis(Date().timeIntervalSince1970 * 1000) }
}

/// One request's events, still as raw text (NDJSON lines or JSON-array elements).
public typealias EventBatchInput = EventTexts

struct TimelineEntry {
    var time: Millis
    var seq: Int64
}

/// State touched only on the host thread.
public final class HostState {
    public internal(set) var pipeline: Pipeline
    public internal(set) var catalog: Catalog {
        didSet { entityInfoCache = nil }
    }
    /// Standing queries (`GET /v1/query/stream`), by subscription number.
    var standing: [Int: StandingQuery] = [:]
    var nextStanding = 0
    /// Catalog entities by id, for spatial queries' filters (built when first asked).
    private var entityInfoCache: [String: EntityInfo]?
    func entityInfo(_ id: String) -> EntityInfo? {
        if entityInfoCache == nil { entityInfoCache = Dictionary(catalog.entities.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a }) }
        return entityInfoCache![id]
    }
    var nextAlertId: Int64
    public internal(set) var rebuiltEvents = 0
    public internal(set) var rebuildSeconds = 0.0
    public internal(set) var catalogProblems: [String] = []
    /// The next log seq, and per engine entity id the (time, seq) of its logged events: the
    /// timeline index (16 bytes per event, rebuilt with the engine).
    var nextSeq: Int64 = 1
    var timeline: [[TimelineEntry]] = []
    /// Entries in `timeline`: the events the log still holds (retention trims both).
    public internal(set) var timelineEntries = 0
    /// The latest position of each entity (by engine id), for the map.
    var latest = LatestPositions()
    /// Rule versions whose expiry is already in the audit log ("id vN").
    var expiryAudited: Set<String>?
    public internal(set) var silences: [Silence] = []
    public internal(set) var receivers: [Receiver] = []
    /// A notification policy is in force: alerts go to receivers through it (grouped by the
    /// notification router), not one webhook per alert.
    public internal(set) var policyActive = false

    init(pipeline: Pipeline, catalog: Catalog, nextAlertId: Int64) {
        self.pipeline = pipeline
        self.catalog = catalog
        self.nextAlertId = nextAlertId
    }
}

/// Owns the engine on one thread. Requests hand it batches; it decodes them, applies them,
/// writes the log rows and the alerts they produced in one transaction per group of batches
/// (group commit), and only then acknowledges them. Catalog changes run on the same thread
/// between groups and rebuild the engine from the log, so the engine is always what
/// `tripline replay` of the stored log with the current catalog gives.
public final class EngineHost: @unchecked Sendable {
    public let store: any TriplineStore
    public let options: HostOptions
    public let metrics: Metrics
    public let alerts: AlertBroadcaster
    let wallClock: @Sendable () -> Millis
    /// Where rule expiry is recorded (set by the HTTP layer).
    public var audit: AuditLog? {
        get { condition.lock(); defer { condition.unlock() }; return _audit }
        set { condition.lock(); _audit = newValue; condition.unlock() }
    }
    private var _audit: AuditLog?

    enum Job {
        /// A batch, and what the decode stage made of it (nil: not decoded there).
        case ingest(EventBatchInput, Predecoded?, CheckedContinuation<IngestResult, any Error>)
        case advance(Millis, CheckedContinuation<IngestResult, any Error>)
        case perform((HostState) -> Void)
        /// Cluster mode: alerts from the workers, in canonical order, to store and deliver.
        case clusterAlerts([NamedAlert], @Sendable ((any Error)?) -> Void)
        /// Cluster mode: tell every partition the watermark.
        case markWatermark
    }

    /// Cluster mode (`serve --cluster`): the gateway events go to; nil on a single node.
    public let cluster: (any ClusterLink)?

    private let condition = NSCondition()
    private var jobs: [Job] = []
    /// Read-only work (spatial queries, map frames): run on the host thread between jobs,
    /// ahead of queued batches and without waiting for a commit.
    private var reads: [@Sendable (HostState) -> Void] = []
    private var queuedEvents = 0
    private var lastIngest: Millis = .min
    private var state: HostState!
    private var thread: Thread?

    /// Loads the catalog and rebuilds the engine from the log, unless `standby`: a standby
    /// server's host holds no engine until `activate()` (when it takes over).
    public init(store: any TriplineStore, options: HostOptions, metrics: Metrics = Metrics(),
                wallClock: @escaping @Sendable () -> Millis = WallClock.system,
                standby: Bool = false, cluster: (any ClusterLink)? = nil) throws {
        self.cluster = cluster
        self.store = store
        self.options = options
        self.metrics = metrics
        self.alerts = AlertBroadcaster()
        self.wallClock = wallClock
        if !standby { try activate() }
    }

    /// Loads the catalog, silences and receivers and rebuilds the engine from the log (a
    /// standby taking over; call before `start()`).
    public func activate() throws {
        let (catalog, problems) = try Catalog.load(store, sensitive: options.sensitive)
        let s = HostState(pipeline: cluster?.timeCore ?? Self.makePipeline(catalog, options), catalog: catalog, nextAlertId: try store.maxAlertId() + 1)
        s.latest = LatestPositions(trackPoints: options.trackPoints)
        s.catalogProblems = problems
        s.silences = try store.silences()
        s.receivers = try store.receivers()
        s.policyActive = (Int(try store.meta(NotifyMeta.current) ?? "0") ?? 0) > 0
        // A cluster's events are on its stream, not in this store's log.
        if let cluster {
            for ev in cluster.rebuiltPositions { s.latest.track(ev) }
        } else {
            try rebuild(s)
        }
        state = s
        rebuiltEventsAtActivation = s.rebuiltEvents
    }

    /// Events the last `activate()` rebuilt the engine from.
    public private(set) var rebuiltEventsAtActivation = 0

    /// Called when a commit finds another server active on the shared store (fencing): the
    /// batches of that group were refused, and this server must stop acting as the active one.
    public var onLostLease: (@Sendable (LostActiveLease) -> Void)? {
        get { condition.lock(); defer { condition.unlock() }; return _onLostLease }
        set { condition.lock(); _onLostLease = newValue; condition.unlock() }
    }
    private var _onLostLease: (@Sendable (LostActiveLease) -> Void)?

    /// Orders the notification router's flushes with erasures: an erasure rewrites the saved
    /// notifier state and the queued notifications, so a flush computed before it must not be
    /// stored after it (the router drops it and reloads the erased state).
    public let notifyGate = NotifyGate()
    /// The notification router's latest state (its groups), for the dashboard; nil on a server
    /// that runs no router (a standby, or before the first step).
    public let notifySnapshot = NotifySnapshot()

    /// Called after a commit that queued webhook deliveries.
    public var onDeliveriesQueued: (@Sendable () -> Void)? {
        get { condition.lock(); defer { condition.unlock() }; return _onDeliveries }
        set { condition.lock(); _onDeliveries = newValue; condition.unlock() }
    }
    private var _onDeliveries: (@Sendable () -> Void)?

    /// Cluster mode: called when JetStream did not acknowledge a group's records (the batches
    /// were refused; the gateway's state may now be ahead of the stream).
    public var onClusterPublishFailed: (@Sendable (ClusterPublishFailed) -> Void)? {
        get { condition.lock(); defer { condition.unlock() }; return _onClusterPublishFailed }
        set { condition.lock(); _onClusterPublishFailed = newValue; condition.unlock() }
    }
    private var _onClusterPublishFailed: (@Sendable (ClusterPublishFailed) -> Void)?

    /// Turns the notification policy on or off between jobs, and answers the last alert id
    /// given out before the switch: alerts after it take the new path (so none is sent both
    /// ways, and none neither).
    public func setPolicyActive(_ on: Bool) async throws -> Int64 {
        try await perform { s in
            s.policyActive = on
            return s.nextAlertId - 1
        }
    }

    /// Reloads silences and receivers after they changed (no rebuild: they do not touch the engine).
    public func refreshNotifications() async throws {
        try await perform { [store] s in
            s.silences = try store.silences()
            s.receivers = try store.receivers()
        }
    }

    static func makePipeline(_ c: Catalog, _ o: HostOptions, retiredZones: [Zone] = []) -> Pipeline {
        Pipeline(zones: c.zones, retiredZones: retiredZones, entities: c.entities, rules: c.rules,
                 options: PipelineOptions(allowedLateness: o.allowedLateness, dedupWindow: o.dedupWindow, sensitive: o.sensitive))
    }

    /// Starts the host thread.
    /// Starts the host thread (once; later calls do nothing).
    public func start() {
        condition.lock()
        defer { condition.unlock() }
        guard thread == nil else { return }
        let t = Thread { [self] in run() }
        t.name = "tripline-engine"
        t.stackSize = 8 << 20
        thread = t
        t.start()
    }

    /// Returns once every job queued before the call has been processed and committed.
    public func drain() async {
        _ = try? await perform { _ in () }
    }

    // MARK: - Submitting work

    /// Queues a batch; returns once it is committed (or refused).
    public func ingest(_ batch: EventBatchInput) async throws -> IngestResult {
        try await withCheckedThrowingContinuation { (c: CheckedContinuation<IngestResult, any Error>) in
            condition.lock()
            if queuedEvents + batch.count > options.queueCapacityEvents && queuedEvents > 0 {
                condition.unlock()
                metrics.add(\.overloaded, 1)
                c.resume(throwing: IngestError.overloaded(retryAfter: 1))
                return
            }
            queuedEvents += batch.count
            lastIngest = wallClock()
            metrics.set(\.queueDepthEvents, queuedEvents)
            guard usesDecodeStage else {
                jobs.append(.ingest(batch, nil, c))
                condition.signal()
                condition.unlock()
                return
            }
            // In the order of admission (hence under the lock): the stage's names grow batch by
            // batch as the engine's do.
            decodeQueue.async { [self] in
                let pre = predecode(batch)
                append(.ingest(batch, pre, c))
            }
            condition.unlock()
        }
    }

    // MARK: - The decode stage

    /// Decodes batches ahead of the engine thread, one at a time in the order they were
    /// admitted, into its own copy of the engine's names (a `BatchDecoder`), and looks up
    /// their positions' zones in the engine's (immutable) zone index, as `tripline replay`
    /// does on its reading thread. The engine thread takes each batch's new names in
    /// (`Pipeline.adopt(_:from:events:)`): with the stage's numbers while the engine has
    /// interned nothing else meanwhile, renumbered otherwise. When the stage is not the
    /// engine's (none yet, or a catalog change or a refused commit replaced the engine), the
    /// engine thread decodes the batch itself and hands the stage a fresh copy.
    private let decodeQueue = DispatchQueue(label: "tripline-decode")
    /// Single node with the stage on (`HostOptions.decodeStage`).
    private var usesDecodeStage: Bool { cluster == nil && options.decodeStage }
    /// The stage's decoder (decode queue only).
    private var stage: DecodeStage?
    /// The generation of the last decoder handed to the stage, and how the names it adds map
    /// to the engine's (host thread only).
    private var stageGeneration = 0
    private var stageNames: StageNames?

    /// Made on the host thread and then used only on the decode queue (its names share
    /// storage with the engine's copy-on-write, which is safe across threads).
    struct DecodeStage: @unchecked Sendable {
        var decoder: BatchDecoder
        let lookup: ZoneLookup?
        let generation: Int
    }

    /// A batch as the decode stage left it.
    struct Predecoded {
        /// Its events and names; nil when the stage had no decoder.
        let batch: DecodedBatch?
        let invalid: InvalidEvents?
        /// The stage decoder's generation (0: none yet).
        let generation: Int
    }

    /// Refuses events later than the wall clock plus `maxFuture` (see `HostOptions`).
    private func futureCheck(_ batch: EventBatchInput) -> (Event, Int) -> TriplineError? {
        let latestAllowed = options.maxFuture.map { TimeBounds.add(wallClock(), $0) } ?? .max
        return { [options, wallClock] e, i in
            guard e.time > latestAllowed else { return nil }
            return TriplineError(.invalidValue,
                "time \(EventTime.format(e.time)) is more than \(DurationText.format(options.maxFuture ?? 0)) ahead of this server's clock (\(EventTime.format(wallClock()))); check the sender's clock, or start the server with a larger --max-future",
                at: SourceLocation(file: batch.file, line: batch.numbers[i], pointer: "/time"))
        }
    }

    /// Decodes one batch on the decode queue.
    private func predecode(_ batch: EventBatchInput) -> Predecoded {
        guard stage != nil else { return Predecoded(batch: nil, invalid: nil, generation: 0) }
        let decoded = DecodedBatch()
        let invalid = stage!.decoder.decode(batch, into: decoded, check: futureCheck(batch))
        if invalid == nil { stage!.lookup?.locate(decoded) }
        return Predecoded(batch: decoded, invalid: invalid, generation: stage!.generation)
    }

    /// Host thread: the events of a batch, decoded by the stage when the stage is this
    /// engine's (their new names taken in here), or here. A refused batch gives its errors.
    private func decoded(_ batch: EventBatchInput, _ pre: Predecoded?, _ s: HostState) -> Result<DecodedBatch, InvalidEvents> {
        if let pre, let d = pre.batch, let names = stageNames, pre.generation == stageGeneration,
           s.pipeline.adopt(d, from: names, events: pre.invalid == nil) {
            metrics.add(\.batchesDecodedAhead, 1)
            if let invalid = pre.invalid { return .failure(invalid) }
            return .success(d)
        }
        metrics.add(\.batchesDecodedOnEngine, 1)
        let d = DecodedBatch()
        let result = s.pipeline.decode(batch, check: futureCheck(batch))
        // Unless a stage made after this batch was decoded is on its way, the stage gets one
        // made from the engine's names as they are now.
        if let pre, pre.generation >= stageGeneration {
            stageGeneration += 1
            let (decoder, names) = s.pipeline.makeStage(file: batch.file)
            stageNames = names
            let next = DecodeStage(decoder: decoder, lookup: s.pipeline.zoneLookup, generation: stageGeneration)
            decodeQueue.async { [self] in stage = next }
        }
        switch result {
        case .success(let evs): d.events = evs
        case .failure(let invalid): return .failure(invalid)
        }
        return .success(d)
    }

    /// Wall-clock time of the last batch taken for ingestion (.min before the first).
    public var lastIngestAt: Millis {
        condition.lock()
        defer { condition.unlock() }
        return lastIngest
    }

    /// `idle_advance` (spec section 3): when no batch has arrived for `idle`, moves event time
    /// on to the wall clock minus `idle`, so that timers (absence, dwell, windows) fire on a
    /// quiet stream. Each step is an ordinary logged advance. Runs until cancelled.
    public func runIdleAdvance(idle: Millis, clock: @escaping @Sendable () -> Millis = WallClock.system) async {
        let step = UInt64(max(500, min(idle / 2, 5000))) * 1_000_000
        while !Task.isCancelled {
            try? await Task.sleep(nanoseconds: step)
            let now = clock()
            guard now - lastIngestAt >= idle else { continue }
            let target = now - idle
            guard let wm = try? await perform({ $0.pipeline.watermark }), target > wm else { continue }
            _ = try? await advance(until: target)
        }
    }

    /// Advances event time to `until` (recorded in the log, so a rebuild does the same).
    public func advance(until: Millis) async throws -> IngestResult {
        try await withCheckedThrowingContinuation { (c: CheckedContinuation<IngestResult, any Error>) in
            enqueue(.advance(until, c))
        }
    }

    /// Runs `body` on the host thread with the engine to itself, between groups.
    public func perform<T: Sendable>(_ body: @escaping @Sendable (HostState) throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { (c: CheckedContinuation<T, any Error>) in
            enqueue(.perform({ s in
                do { c.resume(returning: try body(s)) } catch { c.resume(throwing: error) }
            }))
        }
    }

    /// Runs `body` on the host thread as soon as the batch being applied is done: ahead of the
    /// batches still queued, and while the group commit is in flight (unless this thread is
    /// itself waiting for that commit, to seal the next group; answering reads during that
    /// wait was tried and measured no gain, Benchmarks/README.md). What it sees
    /// includes every batch acknowledged before the call (acknowledged means applied), and
    /// possibly batches applied since whose commit is not over. For reads only: spatial
    /// queries and map frames.
    public func read<T: Sendable>(_ body: @escaping @Sendable (HostState) throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { (c: CheckedContinuation<T, any Error>) in
            condition.lock()
            reads.append { s in
                do { c.resume(returning: try body(s)) } catch { c.resume(throwing: error) }
            }
            condition.signal()
            condition.unlock()
        }
    }

    /// Runs the reads waiting now (host thread).
    private func drainReads(_ s: HostState) {
        condition.lock()
        if reads.isEmpty {
            condition.unlock()
            return
        }
        let r = reads
        reads.removeAll()
        condition.unlock()
        for f in r { f(s) }
    }

    /// Queues a job behind every job submitted before it, including batches still on the
    /// decode stage (so `drain` and catalog changes keep their place in the order).
    private func enqueue(_ j: Job) {
        guard usesDecodeStage else { return append(j) }
        let job = SubmittedJob(job: j)
        decodeQueue.async { [self] in append(job.job) }
    }

    /// A job handed to the decode queue, which only passes it on to the host thread.
    private struct SubmittedJob: @unchecked Sendable { let job: Job }

    private func append(_ j: Job) {
        condition.lock()
        jobs.append(j)
        condition.signal()
        condition.unlock()
    }

    // MARK: - The host thread

    private func run() {
        while true {
            condition.lock()
            // Jobs arriving while a group commits are applied at once; a finished commit with
            // nothing else to do is settled (its failure handled, expiries audited).
            while jobs.isEmpty && reads.isEmpty && !(inFlight?.finished ?? false) { condition.wait() }
            if !reads.isEmpty {
                condition.unlock()
                drainReads(state!)
                continue
            }
            if jobs.isEmpty {
                condition.unlock()
                settle(state!)
                continue
            }
            let taken = jobs
            jobs.removeAll()
            condition.unlock()
            process(taken)
        }
    }

    /// The group being committed on `commitQueue` while this thread applies the next jobs
    /// (host thread only). At most one group is in flight: sealing the next one waits for it.
    private var inFlight: InFlight?
    private let commitQueue = DispatchQueue(label: "tripline-commit")

    final class InFlight: @unchecked Sendable {
        let done = DispatchSemaphore(value: 0)
        /// Set by the commit queue before `done` is signalled.
        var failure: (any Error)?
        /// Set under the host's condition lock once the commit is over.
        var finished = false
        /// The id the group's first alert took (the next id if it has none).
        let firstAlertId: Int64
        init(firstAlertId: Int64) { self.firstAlertId = firstAlertId }
    }

    struct Pending {
        var log: [UInt8] = []
        var logCount = 0
        var firstSeq: Int64 = 0
        var maxTime: Millis = .min
        var alerts: [StoredAlert] = []
        var deliveries: [Delivery] = []
        var waiters: [(CheckedContinuation<IngestResult, any Error>, IngestResult, Int)] = []
        /// Cluster mode: records offered to the gateway wait for publishing.
        var unpublished = false
        var callbacks: [@Sendable ((any Error)?) -> Void] = []
    }

    private func process(_ taken: [Job]) {
        let s = state!
        var group = Pending()
        for job in taken {
            // Queries asked meanwhile do not wait for the rest of the queue.
            drainReads(s)
            switch job {
            case .ingest(let batch, let pre, let c):
                if let r = apply(batch, pre, s, into: &group, continuation: c) {
                    c.resume(throwing: r)
                    dequeued(batch.count)
                }
                // Sealed at once when the store is idle (no commit in flight, or it is over):
                // a batch then waits for its own commit only, not for the batches taken with
                // it. While a commit is in flight, batches gather into the next group.
                if group.logCount >= options.groupCommitEvents || (cluster == nil && group.logCount > 0 && storeIdle) { commit(&group, s) }
            case .advance(let t, let c) where cluster != nil:
                cluster!.advance(until: t)
                group.unpublished = true
                var res = IngestResult()
                res.watermark = s.pipeline.watermark
                group.waiters.append((c, res, 0))
            case .advance(let t, let c):
                s.pipeline.advance(until: t)
                appendLog(&group, s, LogRecord.advance(t)[...], time: .min)
                collectAlerts(s, into: &group)
                var res = IngestResult()
                res.watermark = s.pipeline.watermark
                group.waiters.append((c, res, 0))
            case .perform(let body):
                commit(&group, s)
                settle(s)
                body(s)
            case .clusterAlerts(let list, let done):
                storeAlerts(list, s, into: &group)
                group.callbacks.append(done)
            case .markWatermark:
                cluster?.markWatermark()
                group.unpublished = true
            }
        }
        commit(&group, s)
        // Between groups no decoded event waits: ids nothing holds any more can go.
        s.pipeline.compactIds()
    }

    /// No group commit is in flight, or the one in flight is over (host thread).
    private var storeIdle: Bool {
        guard let f = inFlight else { return true }
        condition.lock()
        defer { condition.unlock() }
        return f.finished
    }

    private func dequeued(_ n: Int) {
        condition.lock()
        queuedEvents -= n
        metrics.set(\.queueDepthEvents, queuedEvents)
        condition.unlock()
    }

    /// Decodes and applies one batch; returns the error that refuses it, if any.
    private func apply(_ batch: EventBatchInput, _ pre: Predecoded?, _ s: HostState, into group: inout Pending,
                       continuation c: CheckedContinuation<IngestResult, any Error>) -> IngestError? {
        if let cluster { return applyToCluster(cluster, batch, s, check: futureCheck(batch), into: &group, continuation: c) }
        let d: DecodedBatch
        switch decoded(batch, pre, s) {
        case .success(let b): d = b
        case .failure(let invalid):
            metrics.add(\.batchesRefused, 1)
            return .invalid(invalid.errors)
        }
        let events = d.events
        var res = IngestResult()
        res.received = events.count
        let before = s.pipeline.stats
        group.log.reserveCapacity(group.log.count + batch.bytes.count + events.count)
        for (i, ev) in events.enumerated() {
            switch s.pipeline.ingest(d, at: i) {
            case .late: res.lateLines.append(batch.numbers[i])
            case .accepted:
                s.latest.track(ev)
                if !s.standing.isEmpty { s.standingCheck(ev.entity) }
            case .duplicate: break
            }
            s.index(entity: ev.entity, time: ev.time, seq: s.nextSeq)
            appendLog(&group, s, batch.bytes[batch.starts[i]..<batch.ends[i]], time: ev.time)
        }
        let after = s.pipeline.stats
        res.duplicates = after.duplicates - before.duplicates
        res.applied = after.applied - before.applied
        res.watermark = s.pipeline.watermark
        res.alerts = collectAlerts(s, into: &group)
        metrics.add(\.eventsReceived, events.count)
        metrics.add(\.eventsDuplicate, res.duplicates)
        metrics.add(\.eventsLate, res.lateLines.count)
        group.waiters.append((c, res, batch.count))
        return nil
    }

    /// Cluster mode: offers the batch to the gateway; it is acknowledged once the group's
    /// records are published (`commit`).
    private func applyToCluster(_ cluster: any ClusterLink, _ batch: EventBatchInput, _ s: HostState, check: (Event, Int) -> TriplineError?,
                                into group: inout Pending, continuation c: CheckedContinuation<IngestResult, any Error>) -> IngestError? {
        let latest = s.latest
        switch cluster.offer(batch, check: check, accepted: { ev in
            latest.track(ev)
            if !s.standing.isEmpty { s.standingCheck(ev.entity) }
        }) {
        case .failure(let invalid):
            metrics.add(\.batchesRefused, 1)
            return .invalid(invalid.errors)
        case .success(let o):
            var res = IngestResult()
            res.received = o.received
            res.duplicates = o.duplicates
            res.lateLines = o.late.map { batch.numbers[$0] }
            res.applied = o.received - o.duplicates - o.late.count
            res.watermark = o.watermark
            metrics.add(\.eventsReceived, o.received)
            metrics.add(\.eventsDuplicate, o.duplicates)
            metrics.add(\.eventsLate, o.late.count)
            group.unpublished = true
            group.waiters.append((c, res, batch.count))
            return nil
        }
    }

    /// Cluster mode: queues alerts the workers produced (in canonical order) to be stored and
    /// delivered like a local engine's; `done` is called once they are committed (or not).
    public func storeClusterAlerts(_ list: [NamedAlert], done: @escaping @Sendable ((any Error)?) -> Void) {
        enqueue(.clusterAlerts(list, done))
    }

    /// Cluster mode: tells every partition the watermark, so that timers fire in quiet ones.
    public func markClusterWatermark() {
        enqueue(.markWatermark)
    }

    /// Adds one line to the group's log batch (assigning the next seq).
    func appendLog(_ group: inout Pending, _ s: HostState, _ line: ArraySlice<UInt8>, time: Millis) {
        if group.logCount == 0 { group.firstSeq = s.nextSeq }
        group.log.append(contentsOf: line)
        group.log.append(10)
        group.logCount += 1
        if time > group.maxTime { group.maxTime = time }
        s.nextSeq += 1
    }

    /// Drains the engine's completed alerts into the group as stored alerts.
    @discardableResult
    func collectAlerts(_ s: HostState, into group: inout Pending) -> Int {
        var drained: [NamedAlert] = []
        s.pipeline.drainAlerts(into: &drained)
        if drained.isEmpty { return 0 }
        storeAlerts(drained, s, into: &group)
        return drained.count
    }

    /// Turns alerts into stored alerts with their silences and deliveries. A cluster's alerts
    /// name their rule by id only: its position and severity come from this node's catalog
    /// (the cluster's).
    func storeAlerts(_ drained: [NamedAlert], _ s: HostState, into group: inout Pending) {
        let now = wallClock()
        var positions: [String: Int] = [:]
        if cluster != nil { for (i, r) in s.catalog.rules.enumerated() { positions[r.id] = i } }
        for var a in drained {
            var version = a.ruleIndex < s.catalog.versions.count ? s.catalog.versions[a.ruleIndex] : 0
            if cluster != nil {
                if let i = positions[a.rule] {
                    a.ruleIndex = i
                    a.severity = s.catalog.rules[i].severity
                    version = s.catalog.versions[i]
                } else {
                    // A rule the catalog no longer has (its alerts up to the change come after
                    // it): its last version that was not a deletion.
                    version = (try? store.ruleVersions(a.rule))?.last(where: { !$0.deleted })?.version ?? 0
                }
            }
            var stored = StoredAlert(
                id: s.nextAlertId, rule: a.rule, version: version, firing: a.firing, time: a.time,
                entity: a.entity, zone: a.zone, pairA: a.pairA, pairB: a.pairB, line: a.line, silence: nil, createdAt: now)
            s.nextAlertId += 1
            stored.silence = s.silences.first { $0.matches(stored, severity: a.severity.rawValue, at: now) }?.id
            if stored.silence == nil && !s.policyActive {
                for r in s.receivers where r.kind == "webhook" && r.minSeverity.flatMap(Severity.init(rawValue:)).map({ a.severity >= $0 }) ?? true {
                    group.deliveries.append(Delivery(receiver: r.id, alertId: stored.id, nextAttemptAt: now, updatedAt: now))
                }
            }
            group.alerts.append(stored)
        }
    }

    /// Seals the group. On one node it is committed on the commit queue while this thread
    /// applies the next jobs (after waiting for the group before it, which this one was
    /// applied on top of); its batches are acknowledged once it is durable. A cluster's group
    /// is published and committed here.
    private func commit(_ group: inout Pending, _ s: HostState) {
        if group.logCount == 0 && group.alerts.isEmpty && group.waiters.isEmpty && group.callbacks.isEmpty && !group.unpublished { return }
        defer { group = Pending() }
        if let cluster {
            if group.unpublished {
                // Acknowledged only once JetStream holds every record of the group.
                do {
                    try cluster.flush()
                } catch {
                    for (c, _, n) in group.waiters {
                        dequeued(n)
                        c.resume(throwing: IngestError.storage("the cluster did not acknowledge the events: \(error)"))
                    }
                    group.waiters = []
                    group.unpublished = false
                    onClusterPublishFailed?(ClusterPublishFailed(description: "\(error)"))
                }
            }
            if let failure = persist(group, watermark: s.pipeline.watermark) {
                recover(s, failure, firstAlertId: group.alerts.first?.id ?? s.nextAlertId)
            } else {
                auditExpiries(s)
            }
            return
        }
        if let earlier = settle(s) {
            // This group was applied on top of one the store refused: refuse it too (the
            // engine was put back to what the store holds).
            for (c, _, n) in group.waiters {
                dequeued(n)
                c.resume(throwing: IngestError.storage("\(earlier)"))
            }
            return
        }
        let sealed = group, watermark = s.pipeline.watermark
        let f = InFlight(firstAlertId: group.alerts.first?.id ?? s.nextAlertId)
        inFlight = f
        commitQueue.async { [self] in
            f.failure = persist(sealed, watermark: watermark)
            f.done.signal()
            condition.lock()
            f.finished = true
            condition.signal()
            condition.unlock()
        }
    }

    /// Waits for the group in flight, if any; returns the failure that refused it (the engine
    /// is then back to what the store holds, unless another server took the lease).
    @discardableResult
    private func settle(_ s: HostState) -> (any Error)? {
        guard let f = inFlight else { return nil }
        f.done.wait()
        inFlight = nil
        if let failure = f.failure {
            recover(s, failure, firstAlertId: f.firstAlertId)
            return failure
        }
        auditExpiries(s)
        return nil
    }

    /// After a refused commit: nothing of the group (nor of any applied after it) is durable,
    /// so the engine is put back to what the store holds. After a lost lease it stays as it
    /// is: this server must not write again.
    private func recover(_ s: HostState, _ failure: any Error, firstAlertId: Int64) {
        if failure is LostActiveLease { return }
        s.nextAlertId = ((try? store.maxAlertId()) ?? firstAlertId - 1) + 1
        if cluster == nil { try? rebuild(s) }
    }

    /// Stores a sealed group and answers its batches: acknowledged once durable, refused
    /// otherwise. Returns the failure. Runs on the commit queue (one node) or the host thread
    /// (cluster); touches no host state.
    private func persist(_ group: Pending, watermark: Millis) -> (any Error)? {
        let started = DispatchTime.now().uptimeNanoseconds
        do {
            let batch = group.logCount == 0 ? nil : LogBatch(firstSeq: group.firstSeq, count: group.logCount, maxTime: group.maxTime, storedAt: wallClock(), lines: group.log)
            try store.commit(log: batch, alerts: group.alerts, deliveries: group.deliveries)
            metrics.observeCommit(nanoseconds: DispatchTime.now().uptimeNanoseconds - started, rows: group.logCount)
            metrics.add(\.alertsEmitted, group.alerts.count)
            metrics.countAlerts(group.alerts)
            metrics.setWatermark(watermark)
            alerts.publish(group.alerts)
            if !group.deliveries.isEmpty { onDeliveriesQueued?() }
            for (c, r, n) in group.waiters {
                dequeued(n)
                c.resume(returning: r)
            }
            for f in group.callbacks { f(nil) }
            return nil
        } catch let lost as LostActiveLease {
            // Another server is active now: nothing of the group was stored, and this engine
            // must not write again.
            for (c, _, n) in group.waiters {
                dequeued(n)
                c.resume(throwing: IngestError.storage("\(lost)"))
            }
            for f in group.callbacks { f(lost) }
            onLostLease?(lost)
            return lost
        } catch {
            // Nothing of the group is durable: refuse every batch in it.
            for (c, _, n) in group.waiters {
                dequeued(n)
                c.resume(throwing: IngestError.storage("\(error)"))
            }
            for f in group.callbacks { f(error) }
            return error
        }
    }

    /// Records each rule version the watermark has expired, once.
    func auditExpiries(_ s: HostState) {
        // A cluster's rules run on its workers: here, a rule has expired once the gateway's
        // watermark reached its expiry.
        let expired: [(rule: Int, at: Millis)] = cluster == nil ? s.pipeline.expiredRules
            : s.catalog.rules.enumerated().compactMap { i, r in r.expires.flatMap { $0 <= s.pipeline.watermark ? (i, $0) : nil } }
        guard let audit, !expired.isEmpty else { return }
        if s.expiryAudited == nil {
            var seen = Set<String>()
            try? store.forEachAudit { r in if r.action == "rule.expire" { seen.insert(r.target + " " + r.detail) } }
            s.expiryAudited = seen
        }
        for (r, at) in expired {
            let id = s.catalog.rules[r].id, version = s.catalog.versions[r]
            let detail = J.obj([("version", .int(version)), ("at", .time(at))])
            let key = id + " " + detail.text
            if s.expiryAudited!.contains(key) { continue }
            if (try? audit.record(actor: "engine", action: "rule.expire", target: id, detail: detail)) != nil {
                s.expiryAudited!.insert(key)
            }
        }
    }

    // MARK: - Rebuilding

    /// Replaces the engine with one built on the current catalog and replays the whole log
    /// into it. Alerts it completes were emitted before and are not emitted again.
    func rebuild(_ s: HostState, retiredZones: [Zone] = []) throws {
        let started = Date()
        let pipeline = Self.makePipeline(s.catalog, options, retiredZones: retiredZones)
        var count = 0
        var timeline: [[TimelineEntry]] = []
        let latest = LatestPositions(trackPoints: options.trackPoints)
        var nextSeq: Int64 = try store.nextLogSeq()
        try store.forEachLogBatch { batch in
            batch.forEachLine { line, seq in
                if let (ev, outcome) = pipeline.replay(logLine: line, number: Int(seq)) {
                    if case .accepted = outcome { latest.track(ev) }
                    let e = Int(ev.entity)
                    if e >= timeline.count { timeline.append(contentsOf: repeatElement([], count: e + 1 - timeline.count)) }
                    timeline[e].append(TimelineEntry(time: ev.time, seq: seq))
                }
                count += 1
            }
            nextSeq = max(nextSeq, batch.firstSeq + Int64(batch.count))
            // Alerts a rebuild completes were emitted before.
            pipeline.discardAlerts()
            pipeline.compactIds()
        }
        s.timeline = timeline
        s.timelineEntries = timeline.reduce(0) { $0 + $1.count }
        s.latest = latest
        s.nextSeq = nextSeq
        pipeline.discardAlerts()
        s.pipeline = pipeline
        // After the new pipeline is in place: entity numbers and names are the new engine's.
        s.standingRecheckAll()
        s.rebuiltEvents = count
        s.rebuildSeconds = Date().timeIntervalSince(started)
        metrics.setWatermark(pipeline.watermark)
    }

    /// The logged events of `entity` with time in [from, to] (at most `limit`, oldest first),
    /// as (seq, line), and whether more were left out.
    public func timeline(entity: String, from: Millis?, to: Millis?, limit: Int) async throws -> (events: [(Int64, String)], truncated: Bool) {
        let seqs: ([Int64], Bool) = try await perform { s in
            guard let e = s.pipeline.entityNumber(entity), Int(e) < s.timeline.count else { return ([], false) }
            var out: [Int64] = []
            var entries = s.timeline[Int(e)].filter { $0.time >= (from ?? .min) && $0.time <= (to ?? .max) }
            entries.sort { ($0.time, $0.seq) < ($1.time, $1.seq) }
            for x in entries.prefix(limit) { out.append(x.seq) }
            return (out, entries.count > limit)
        }
        let lines = try store.logLines(seqs.0)
        return (seqs.0.compactMap { seq in lines[seq].map { (seq, $0) } }, seqs.1)
    }

    /// After retention deleted log batches: drops their timeline entries (on the host thread,
    /// where the log is appended, so the first stored seq cannot move meanwhile). Returns how
    /// many entries went.
    @discardableResult
    public func trimTimeline() async throws -> Int {
        try await perform { [store] s in
            s.trimTimeline(before: try store.firstLogSeq() ?? s.nextSeq)
        }
    }

    /// The zones a catalog change created, changed or deleted, each with its new version (one
    /// more than its last, kept in the store's meta as `zone.version.<id>`; a new zone is at 1,
    /// a deletion takes a version too, so a zone created again continues from it).
    func zoneEdits(from before: Catalog, to after: Catalog) throws -> [ZoneEdit] {
        var edits: [ZoneEdit] = []
        for id in Set(before.zoneJSON.keys).union(after.zoneJSON.keys).sorted() {
            let old = before.zoneJSON[id], new = after.zoneJSON[id]
            if old == new { continue }
            let key = "zone.version." + id
            // A zone stored before versions were kept is at version 1.
            let version = (Int(try store.meta(key) ?? "") ?? (old == nil ? 0 : 1)) + 1
            try store.setMeta(key, String(version))
            edits.append(ZoneEdit(zone: id, version: version, change: old == nil ? .created : new == nil ? .deleted : .updated))
        }
        return edits
    }

    /// Applies a catalog change: writes it with `persist` (which may refuse it by throwing),
    /// reloads the catalog and rebuilds the engine from the log.
    public func changeCatalog<T: Sendable>(_ persist: @escaping @Sendable (any TriplineStore, HostState) throws -> T) async throws -> T {
        try await perform { [self] s in
            let result = try persist(store, s)
            let (catalog, problems) = try Catalog.load(store, sensitive: options.sensitive)
            let before = s.catalog
            s.catalog = catalog
            s.catalogProblems = problems
            if let cluster {
                // Zone versions are counted here as on one server; the workers emit the
                // transitions at the change's place in the stream.
                try cluster.publishCatalog(catalog, zoneEdits: try zoneEdits(from: before, to: catalog))
                s.pipeline = cluster.timeCore
            } else {
                let edits = try zoneEdits(from: before, to: catalog)
                let previous = s.pipeline
                let retired = before.zones.filter { catalog.zoneJSON[$0.id] == nil }
                try rebuild(s, retiredZones: retired)
                if !edits.isEmpty {
                    // The transitions the edits cause, at the change, stored with it.
                    s.pipeline.applyZoneEdits(edits, previous: previous)
                    s.pipeline.closeOpenAlerts()
                    var group = Pending()
                    collectAlerts(s, into: &group)
                    commit(&group, s)
                    // Durable before the change is answered.
                    if let failure = settle(s) {
                        throw IngestError.storage("the catalog change is stored, but the alerts its zone edits caused were not: \(failure)")
                    }
                }
            }
            return result
        }
    }
}

/// Fans committed alerts out to live subscribers (SSE, WebSocket). A slow subscriber loses
/// the oldest buffered alerts (and is told how many), never slowing the engine.
public final class AlertBroadcaster: @unchecked Sendable {
    private let lock = NSLock()
    private var subscribers: [Int: AsyncStream<StoredAlert>.Continuation] = [:]
    private var next = 0

    public func subscribe() -> (Int, AsyncStream<StoredAlert>) {
        let (stream, cont) = AsyncStream<StoredAlert>.makeStream(bufferingPolicy: .bufferingNewest(10_000))
        lock.lock()
        if closed {
            lock.unlock()
            cont.finish()
            return (-1, stream)
        }
        let id = next
        next += 1
        subscribers[id] = cont
        lock.unlock()
        cont.onTermination = { [weak self] _ in self?.unsubscribe(id) }
        return (id, stream)
    }

    public func unsubscribe(_ id: Int) {
        lock.lock()
        let c = subscribers.removeValue(forKey: id)
        lock.unlock()
        c?.finish()
    }

    public var count: Int {
        lock.lock()
        defer { lock.unlock() }
        return subscribers.count
    }

    /// Ends every subscription (at shutdown): their streams finish.
    public func finishAll() {
        lock.lock()
        closed = true
        let subs = subscribers
        subscribers.removeAll()
        lock.unlock()
        for c in subs.values { c.finish() }
    }
    private var closed = false

    /// The alerts of `stream`, with a nil every `every` (a heartbeat). Ends when `stream` ends.
    public static func withHeartbeat<T: Sendable>(_ stream: AsyncStream<T>, every: Duration) -> AsyncStream<T?> {
        let (out, cont) = AsyncStream<T?>.makeStream(bufferingPolicy: .bufferingNewest(10_000))
        let forward = Task {
            for await a in stream { cont.yield(a) }
            cont.finish()
        }
        let beat = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: every)
                if Task.isCancelled { break }
                cont.yield(nil)
            }
        }
        cont.onTermination = { _ in
            forward.cancel()
            beat.cancel()
        }
        return out
    }

    func publish(_ alerts: [StoredAlert]) {
        if alerts.isEmpty { return }
        lock.lock()
        let subs = Array(subscribers.values)
        lock.unlock()
        for s in subs { for a in alerts { s.yield(a) } }
    }
}

/// What spatial queries read, kept at event time as events are accepted: each entity's
/// latest position (in the position index), the numeric attributes of that position, and the
/// latest reading of each metric.
final class LatestPositions {
    let index = PositionIndex()
    /// Each entity's last positions by event time (`serve --track-points`), for `intersects`.
    let tracks: TrackStore?

    init(trackPoints: Int = 0) {
        tracks = trackPoints > 0 ? TrackStore(capacity: trackPoints) : nil
    }
    /// By metric name id: per entity, the latest reading's value and time (`.min`: none).
    var metrics: [MetricColumn?] = []
    final class MetricColumn {
        var value: [Double] = []
        var time: [Millis] = []
    }
    /// Per entity: the numeric attributes of its latest position (name id, value).
    var attrs: [[(Int32, Double)]] = []

    func track(_ ev: Event) {
        let e = Int(ev.entity)
        if ev.type == Symbols.positionType {
            tracks?.add(entity: ev.entity, lon: ev.lon, lat: ev.lat, time: ev.time)
            let before = e < index.time.count ? index.time[e] : .min
            guard ev.time >= before else { return }
            index.track(entity: ev.entity, lon: ev.lon, lat: ev.lat, time: ev.time)
            if ev.attrs.isEmpty && e >= attrs.count { return }
            if e >= attrs.count { attrs.append(contentsOf: repeatElement([], count: max(e + 1, attrs.count * 2) - attrs.count)) }
            attrs[e].removeAll(keepingCapacity: true)
            for a in ev.attrs { if case .number(let v) = a.value { attrs[e].append((a.key, v)) } }
        } else if ev.type == Symbols.readingType, ev.metric >= 0 {
            let m = Int(ev.metric)
            if m >= metrics.count { metrics.append(contentsOf: repeatElement(nil, count: m + 1 - metrics.count)) }
            let col: MetricColumn
            if let c = metrics[m] { col = c } else { col = MetricColumn(); metrics[m] = col }
            if e >= col.time.count {
                let n = max(e + 1, col.time.count * 2)
                col.value.append(contentsOf: repeatElement(0, count: n - col.value.count))
                col.time.append(contentsOf: repeatElement(.min, count: n - col.time.count))
            }
            if ev.time >= col.time[e] {
                col.value[e] = ev.value
                col.time[e] = ev.time
            }
        }
    }

    /// The latest reading of metric `m` for the entity, if any.
    func reading(_ m: Int32, _ e: Int32) -> Double? {
        guard Int(m) < metrics.count, let col = metrics[Int(m)], Int(e) < col.time.count, col.time[Int(e)] != .min else { return nil }
        return col.value[Int(e)]
    }

    /// The numeric attribute `key` of the entity's latest position, if it has one.
    func attr(_ key: Int32, _ e: Int32) -> Double? {
        guard Int(e) < attrs.count else { return nil }
        for (k, v) in attrs[Int(e)] where k == key { return v }
        return nil
    }
}

extension HostState {
    /// Entities with a known position: (id, kind, lon, lat, time).
    public func positions() -> [(String, String, Double, Double, Millis)] {
        var kinds: [String: String] = [:]
        for e in catalog.entities { kinds[e.id] = e.kind }
        var out: [(String, String, Double, Double, Millis)] = []
        let p = latest.index
        for i in 0..<p.time.count where p.time[i] != .min {
            let id = pipeline.entityName(Int32(i))
            out.append((id, kinds[id] ?? "unknown", p.lon[i], p.lat[i], p.time[i]))
        }
        return out
    }

    /// Records a logged event in the timeline index.
    @inline(__always)
    func index(entity: Int32, time: Millis, seq: Int64) {
        let e = Int(entity)
        if e >= timeline.count { timeline.append(contentsOf: repeatElement([], count: max(e + 1, timeline.count * 2) - timeline.count)) }
        timeline[e].append(TimelineEntry(time: time, seq: seq))
        timelineEntries += 1
    }

    /// Drops the timeline entries of log lines below `first` (deleted by retention). Each
    /// entity's entries are in seq order, so this cuts a prefix; a trimmed list is copied into a
    /// fresh buffer, so the memory of deleted events is returned, not kept as spare capacity.
    func trimTimeline(before first: Int64) -> Int {
        var dropped = 0
        for e in timeline.indices where !timeline[e].isEmpty && timeline[e][0].seq < first {
            var lo = 0, hi = timeline[e].count
            while lo < hi {
                let mid = (lo + hi) / 2
                if timeline[e][mid].seq < first { lo = mid + 1 } else { hi = mid }
            }
            dropped += lo
            timeline[e] = lo == timeline[e].count ? [] : Array(timeline[e][lo...])
        }
        timelineEntries -= dropped
        return dropped
    }
}

/// See `EngineHost.notifyGate`.
public final class NotifyGate: @unchecked Sendable {
    private let lock = NSLock()
    private var generation = 0
    public var current: Int { lock.withLock { generation } }
    /// Runs an erasure: later flushes computed before it are dropped.
    public func erasing<T>(_ body: () throws -> T) rethrows -> T {
        try lock.withLock {
            generation += 1
            return try body()
        }
    }
    /// Runs `body` if no erasure happened since `seen`; answers whether it ran.
    public func ifUnchanged(since seen: Int, _ body: () throws -> Void) rethrows -> Bool {
        try lock.withLock {
            guard generation == seen else { return false }
            try body()
            return true
        }
    }
}

/// See `EngineHost.notifySnapshot`.
public final class NotifySnapshot: @unchecked Sendable {
    private let lock = NSLock()
    private var value: (NotifierState, Int)?
    public func set(_ s: NotifierState, version: Int) { lock.withLock { value = (s, version) } }
    public func clear() { lock.withLock { value = nil } }
    public var current: (state: NotifierState, version: Int)? { lock.withLock { value.map { ($0.0, $0.1) } } }
}
