import CTriplineSupport

/// Options of an engine run.
public struct EngineOptions: Sendable {
    /// Events up to this much older than the largest time seen are still applied in order.
    public var allowedLateness: Millis = 0
    /// How long an accepted event id is remembered for duplicate detection (spec v1.2): an id
    /// accepted with event time s is remembered while the watermark is at most s + this.
    public var dedupWindow: Millis = 86_400_000
    /// The watermark moves only by `advance(until:)` (stamped upstream), never by the events.
    public var externalWatermark = false
    public init(allowedLateness: Millis = 0, dedupWindow: Millis = 86_400_000, externalWatermark: Bool = false) {
        self.allowedLateness = allowedLateness
        self.dedupWindow = dedupWindow
        self.externalWatermark = externalWatermark
    }
}

/// What became of one arriving event.
public enum IngestOutcome: Sendable, Equatable {
    /// Applied at once or buffered until the watermark reaches it.
    case accepted(EventRef)
    /// Its id was already accepted for that entity: not applied.
    case duplicate(EventRef)
    /// Its time is before the watermark: not applied, to be written to the late output.
    case late(EventRef)
}

/// Counters of a run.
public struct EngineStats: Sendable {
    public var arrived = 0
    public var applied = 0
    public var duplicates = 0
    public var late = 0
    public var timersFired = 0
    public var suppressedByCooldown = 0
    public var suppressedByExpiry = 0
}

/// The deterministic engine shared by every mode (spec sections 2-5). It runs a `RulePlan`
/// (the compiled rules) with per-entity state indexed by interned ids, the `TimeCore`
/// (duplicates, watermark, buffering, timers, expiry) and one evaluator per rule kind, and
/// hands completed alerts out in canonical order. It never reads a clock or a file. Hosts
/// drive it through `Pipeline`.
public final class Engine: EntityMatching {
    public var symbols: Symbols
    /// The catalog's zones, then the retired ones (zones a change just deleted, kept only to
    /// name the exits it causes; never in the zone index).
    public let zones: [Zone]
    /// How many of `zones` are the catalog's.
    public let liveZoneCount: Int
    public let rules: [Rule]
    public let index: ZoneIndex
    public let options: EngineOptions

    // Catalog.
    /// Registered entities by interned id (nil: not in the entities file).
    var registry: [EntityInfo?]
    let selectors: [Selector]
    let zoneRank: [Int32]
    let ruleRank: [Int32]

    /// Per-entity state, indexed by interned entity id: everything a position touches in one
    /// record, so that an event costs one cache miss for its entity, not one per array.
    ///
    /// The record is 64 bytes (it was 72): the fields are ordered so that no padding is left
    /// but one byte, and the latest position's event is kept in 32 bits and a flag (the
    /// entity of an assigned id is the record's own).
    struct EntityState {
        /// The zones the latest position is inside: up to 3 inline (sorted), more in
        /// `insideOverflow`; `insideCount` says how many.
        var inside: (Int32, Int32, Int32) = (0, 0, 0)
        var insideCount: UInt16 = 0
        /// Bit 0: the entity's state exists (`ready`). Bit 1: the latest position's event has
        /// a given id (`lastRefLow` is its index), not an assigned one (`lastRefLow` is n).
        var flags: UInt8 = 0
        /// The first 64 distinct entity selectors this entity matches, one bit each.
        var match: UInt64 = 0
        /// The latest position, for speed and proximity (whose grid reads its members'
        /// positions here), and its time and event, also for zone edits when zone rules run
        /// (lastTime == .min before the first).
        var lastLon = 0.0
        var lastLat = 0.0
        var lastTime: Millis = .min
        /// Arrival count and latest arrival, for the time core's id memory.
        var arrivals = TimeCore.Arrivals()
        /// The low 32 bits of the latest position's `EventRef` (see `flags`).
        var lastRefLow: UInt32 = 0

        var ready: Bool {
            get { flags & 1 != 0 }
            set { flags = newValue ? flags | 1 : flags & ~1 }
        }

        /// The latest position's event, for entity `e` (this record's).
        @inline(__always)
        func lastRef(_ e: Int32) -> EventRef {
            flags & 2 != 0 ? .given(Int32(bitPattern: lastRefLow)) : .assigned(entity: e, n: lastRefLow)
        }

        @inline(__always)
        mutating func setLastRef(_ r: EventRef, _ e: Int32) {
            if r.isGiven {
                lastRefLow = UInt32(bitPattern: r.givenIndex)
                flags |= 2
            } else {
                assert(r.entity == e, "an assigned id's entity is the record's")
                lastRefLow = r.sequence
                flags &= ~2
            }
        }
    }
    var entities: [EntityState] = []
    /// Where `entities`' elements were after its last growth, for prefetching only (see
    /// `IntMap.prefetchBase`: no retain of the array per event; never dereferenced).
    var entitiesBase: UInt = 0
    /// Selectors beyond the first 64, per entity (empty when there are at most 64).
    var matchTable: MatchTable
    var insideOverflow: [Int32: [Int32]] = [:]
    /// Live event ids after the last collection (`compactIds`).
    var liveIdsAfterCollection = 0

    /// Duplicates, watermark, buffered events, timers and rule expiry.
    var time: TimeCore
    public var maxTime: Millis { time.maxTime }
    public var watermark: Millis { time.watermark }
    /// Rules whose `expires` the watermark has reached, in the order it happened.
    public var expiredRules: [(rule: Int32, at: Millis)] { time.expired }

    /// One evaluator per rule kind.
    var kinds: Evaluators
    let ruleKinds: [RuleKind]
    /// How many rules are evaluated (rules with the same definition share one evaluation).
    public let distinctDefinitions: Int
    /// Position of each rule inside its kind's evaluator.
    let ruleSlot: [Int]
    let needsZones: Bool
    /// Stands for `index` in the zones another thread looked up with it (`ZoneLookup`): an
    /// object, so that it cannot be mistaken for another engine's while referenced.
    let indexToken = IndexToken()
    /// Positions whose zones came looked up already (`ZoneLookup`), not from `index` here.
    var knownZoneLookups = 0
    var emitter: Emitter
    /// Group texts of `by` rules and values told apart by `count_distinct` (alert keys
    /// name groups by their id here).
    var groupTexts = GroupTexts()
    /// The text of a group id of an alert key.
    public func groupText(_ id: Int32) -> String { groupTexts.texts.string(id) }
    var zoneScratch: [Int32] = []
    var enteredScratch: [Int32] = []
    var prevScratch: [Int32] = []
    var exitedScratch: [Int32] = []

    var applied = 0
    public var stats: EngineStats {
        var s = EngineStats()
        s.arrived = time.arrived
        s.applied = applied
        s.duplicates = time.duplicates
        s.late = time.late
        s.timersFired = time.timersFired
        s.suppressedByCooldown = emitter.suppressedByCooldown
        s.suppressedByExpiry = emitter.suppressedByExpiry
        return s
    }

    public init(zones live: [Zone], retiredZones: [Zone] = [], entities: [EntityInfo], rules: [Rule], options: EngineOptions = EngineOptions(), symbols: Symbols = Symbols()) {
        let zones = live + retiredZones
        // Known entities are interned up front: their state is then allocated once.
        var syms = symbols
        var reg: [EntityInfo?] = Array(repeating: nil, count: syms.entities.count)
        for e in entities {
            let id = Int(syms.entities.intern(e.id))
            if id >= reg.count { reg.append(contentsOf: repeatElement(nil, count: id + 1 - reg.count)) }
            reg[id] = e
        }
        self.registry = reg
        self.zones = zones
        self.liveZoneCount = live.count
        self.rules = rules
        self.options = options
        self.index = ZoneIndex(shapes: live.map(\.shape))
        let plan = RulePlan(rules: rules, zones: zones, symbols: &syms)
        self.emitter = Emitter(rules: rules, fanout: plan.fanout)
        self.distinctDefinitions = plan.distinctDefinitions
        self.ruleKinds = plan.ruleKinds
        self.kinds = plan.evaluators
        self.needsZones = plan.needsZones
        self.ruleSlot = plan.ruleSlot
        self.selectors = plan.selectors
        self.zoneRank = plan.zoneRank
        self.ruleRank = plan.ruleRank
        self.symbols = syms
        self.matchTable = MatchTable(stride: max(0, (plan.selectors.count - 64 + 63) / 64))
        self.time = TimeCore(allowedLateness: options.allowedLateness, window: options.dedupWindow,
                             external: options.externalWatermark, expiries: plan.expiries)
        // Known entities get their state (selector bits) now, not on their first event.
        if self.symbols.entities.count > 0 { reserveEntities(self.symbols.entities.count) }
        for i in self.registry.indices where self.registry[i] != nil { createEntity(i) }
    }

    func reserveEntities(_ n: Int) {
        if n <= entities.count { return }
        entities.append(contentsOf: repeatElement(EntityState(), count: n - entities.count))
        entitiesBase = entities.withUnsafeBufferPointer { UInt(bitPattern: $0.baseAddress) }
        matchTable.bits.append(contentsOf: repeatElement(0, count: n * matchTable.stride - matchTable.bits.count))
    }

    /// Makes sure per-entity state exists for `e` (first sighting creates the entity).
    @inline(__always)
    func ensureEntity(_ e: Int32) {
        let i = Int(e)
        if i >= entities.count { reserveEntities(max(i + 1, entities.count + entities.count / 2, 1024)) }
        if !entities[i].ready { createEntity(i) }
    }

    func createEntity(_ i: Int) {
        entities[i].ready = true
        let info = (i < registry.count ? registry[i] : nil) ?? EntityInfo(id: symbols.entities.string(Int32(i)))
        for (s, selector) in selectors.enumerated() where selector.matches(info) {
            if s < 64 {
                entities[i].match |= 1 << UInt64(s)
            } else {
                matchTable.bits[i * matchTable.stride + ((s - 64) >> 6)] |= 1 << UInt64(s & 63)
            }
        }
    }

    /// The latest position of entity `e` (one that has had a position, with speed or proximity
    /// rules in the plan).
    @inline(__always)
    func latestPosition(_ e: Int32) -> (lon: Double, lat: Double, time: Millis, ref: EventRef) {
        let i = Int(e)
        return (entities[i].lastLon, entities[i].lastLat, entities[i].lastTime, entities[i].lastRef(e))
    }

    /// Does entity `e` match selector `s`?
    @inline(__always)
    func matches(_ e: Int32, _ s: Int32) -> Bool {
        if s < 64 { return (entities[Int(e)].match >> UInt64(s)) & 1 == 1 }
        return matchTable.matches(e, s - 64)
    }

    /// Offers one arriving event to the engine (spec sections 2 and 3): the time core decides
    /// whether it is a duplicate, late, applied now or buffered; then every event the
    /// watermark has reached is applied in time order, each after the timers due by its time.
    @discardableResult
    public func ingest(_ ev: Event) -> IngestOutcome { ingest(ev, knownZones: nil) }

    /// `ingest`, with the zones the position is in when another thread already looked them up
    /// in this engine's index (`ZoneLookup`); used when the event is applied at once.
    @inline(__always)
    func ingest(_ ev: Event, knownZones: UnsafeBufferPointer<Int32>?) -> IngestOutcome {
        ensureEntity(ev.entity)
        switch time.offer(ev, arrivals: &entities[Int(ev.entity)].arrivals, assignedForm: { id, e in self.assignedNumber(id, entity: e) }) {
        case .duplicate(let ref): return .duplicate(ref)
        case .late(let ref): return .late(ref)
        case .applyNow(let ref):
            advanceTimers(to: ev.time)
            apply(ev, ref, knownZones: knownZones)
            applyReady()
            return .accepted(ref)
        case .buffered(let ref):
            applyReady()
            return .accepted(ref)
        }
    }

    /// Offers an event an upstream stage already accepted, under the id reference it gave it
    /// (a cluster worker: the gateway decided duplicates and lateness for every partition at
    /// once); otherwise as `ingest`.
    public func ingestAccepted(_ ev: Event, ref: EventRef) {
        ensureEntity(ev.entity)
        switch time.offerAccepted(ev, ref: ref) {
        case .applyNow(let ref):
            advanceTimers(to: ev.time)
            apply(ev, ref)
            applyReady()
        case .buffered, .duplicate, .late:
            applyReady()
        }
    }

    /// Applies the buffered events the watermark has reached, then fires the timers due by it.
    @inline(__always)
    func applyReady() {
        while let item = time.nextReady() {
            advanceTimers(to: item.event.time)
            apply(item.event, item.ref)
        }
        advanceTimers(to: time.watermark)
    }

    /// Offers arriving events in order, as `ingest` does one by one, overlapping the memory
    /// latency of later events' state (their entity record and zone-grid slot, and what each
    /// evaluator will touch) with the work on the current one. Calls `late` with the position
    /// of each late event in `events`.
    public func ingest(contentsOf events: [Event], late: (Int) -> Void = { _ in }) {
        events.withUnsafeBufferPointer { ingest(contentsOf: $0[...], late: late) }
    }

    /// `ingest(contentsOf:)` over part of a buffer; `late` gets positions relative to its start.
    public func ingest(contentsOf evs: Slice<UnsafeBufferPointer<Event>>, late: (Int) -> Void = { _ in }) {
        ingest(contentsOf: evs, zones: nil, late: late)
    }

    /// `ingest(contentsOf:)` with, for each event, the zones a `ZoneLookup` of this engine
    /// found for it: `zones.starts[i]..<zones.starts[i + 1]` in `zones.ids` for the event at
    /// `evs.startIndex + i` (positions; empty for other events).
    func ingest(contentsOf evs: Slice<UnsafeBufferPointer<Event>>, zones known: (starts: UnsafeBufferPointer<Int32>, ids: UnsafeBufferPointer<Int32>)?,
                late: (Int) -> Void) {
        let ahead = 8
        let base = evs.startIndex
        let prefetchProximity = !kinds.proximity.isEmpty, prefetchThreshold = !kinds.threshold.isEmpty, prefetchAbsence = !kinds.absence.isEmpty
        // With the zones known, the index is not read here.
        let lookUp = needsZones && known == nil
        for i in evs.indices {
            if i + ahead < evs.endIndex {
                // Fields read one by one: copying the event would retain its attributes.
                let nextEntity = evs[i + ahead].entity, nextType = evs[i + ahead].type
                let e = Int(nextEntity)
                if e < entities.count { tripline_prefetch(UnsafeRawPointer(bitPattern: entitiesBase &+ UInt(bitPattern: e &* MemoryLayout<EntityState>.stride))) }
                if nextType == Symbols.positionType && lookUp { index.prefetch(x: evs[i + ahead].lon, y: evs[i + ahead].lat) }
                if prefetchProximity { kinds.proximity.prefetch(entity: nextEntity, type: nextType, metric: -1) }
                if prefetchThreshold { kinds.threshold.prefetch(entity: nextEntity, type: nextType, metric: evs[i + ahead].metric) }
                if prefetchAbsence { kinds.absence.prefetch(entity: nextEntity, type: nextType, metric: -1) }
            }
            // The zone grid's slot for event i + 8 was requested 4 events ago: its cell's
            // entries can be requested now.
            if lookUp && i + ahead / 2 < evs.endIndex && evs[i + ahead / 2].type == Symbols.positionType {
                index.prefetchRun(x: evs[i + ahead / 2].lon, y: evs[i + ahead / 2].lat)
            }
            var given: UnsafeBufferPointer<Int32>?
            if let known {
                let k = i - base
                given = UnsafeBufferPointer(rebasing: known.ids[Int(known.starts[k])..<Int(known.starts[k + 1])])
            }
            if case .late = ingest(evs[i], knownZones: given) { late(i - base) }
        }
    }

    /// Ends the input: applies every buffered event, sets the watermark to the largest time,
    /// and, with `until` later than that, advances it to `until` firing due timers.
    public func finish(until: Millis? = nil) {
        while let item = time.nextBuffered(upTo: .max) {
            advanceTimers(to: item.event.time)
            apply(item.event, item.ref)
        }
        time.finishInput()
        advanceTimers(to: time.watermark)
        if let until, until > time.watermark {
            time.moveWatermark(to: until)
            advanceTimers(to: until)
        }
        emitter.closeAll()
    }

    /// The watermark stamped upstream reached `t` (a worker with an outside watermark): the
    /// buffered events up to `t` are applied and the timers due by `t` fire, exactly as when
    /// the events' own watermark reaches `t`. Alerts at `t` itself stay open: events at `t`
    /// may still come.
    public func moveWatermark(to t: Millis) {
        time.moveWatermark(to: t)
        applyReady()
    }

    /// A live server's "advance event time to `until`" (an operator's command, idle advance,
    /// or a watermark stamped upstream): applies buffered events up to it, moves the
    /// watermark there, fires the timers due by then and completes every alert group. When
    /// `until` is at or after the largest time seen this is exactly `finish(until:)`, and later
    /// events may still follow (those before `until` are late).
    public func advance(until: Millis) {
        while let item = time.nextBuffered(upTo: until) {
            advanceTimers(to: item.event.time)
            apply(item.event, item.ref)
        }
        time.moveWatermark(to: until)
        advanceTimers(to: time.watermark)
        emitter.closeAll()
    }

    /// Moves alerts whose time group is complete into `out`, in canonical order
    /// (time, rule id, key, emission order).
    /// Completes the alerts of the current time group (see `Pipeline.closeOpenAlerts`).
    public func closeOpenAlerts() { emitter.closeAll() }

    public func drainAlerts(into out: inout [Alert]) {
        let start = out.count
        emitter.takeCompleted(into: &out)
        guard out.count > start + 1 else { return }
        // Time and rule decide almost every comparison: those with local copies (no access to
        // the engine's properties), the rest of the canonical order only on ties.
        let rank = ruleRank
        let less = { (x: Alert, y: Alert) -> Bool in
            if x.time != y.time { return x.time < y.time }
            if x.rule != y.rule { return rank[Int(x.rule)] < rank[Int(y.rule)] }
            return self.canonicalLess(x, y)
        }
        // The emitter emits in time order (events and timers are applied in time order), so
        // only each time's alerts need sorting; were it ever not so, everything is sorted.
        let inOrder = out.withUnsafeMutableBufferPointer { buf -> Bool in
            var i = start
            while i < buf.count {
                let t = buf[i].time
                var j = i + 1
                while j < buf.count && buf[j].time == t { j += 1 }
                if j < buf.count && buf[j].time < t { return false }
                if j - i > 16 {
                    buf[i..<j].sort(by: less)
                } else if j - i > 1 {
                    // Insertion sort: most groups are a handful of alerts, often in order.
                    for k in (i + 1)..<j where less(buf[k], buf[k - 1]) {
                        let x = buf[k]
                        var m = k
                        while m > i && less(x, buf[m - 1]) { buf.swapAt(m, m - 1); m -= 1 }
                    }
                }
                i = j
            }
            return true
        }
        if !inOrder { out[start...].sort(by: less) }
    }

    func canonicalLess(_ x: Alert, _ y: Alert) -> Bool {
        if x.time != y.time { return x.time < y.time }
        if x.rule != y.rule { return ruleRank[Int(x.rule)] < ruleRank[Int(y.rule)] }
        if x.key.entity != y.key.entity {
            if x.key.entity < 0 || y.key.entity < 0 { return x.key.entity < y.key.entity }
            return symbols.entities.codePointLess(x.key.entity, y.key.entity)
        }
        if x.key.zone != y.key.zone {
            if x.key.zone < 0 || y.key.zone < 0 { return x.key.zone < y.key.zone }
            return zoneRank[Int(x.key.zone)] < zoneRank[Int(y.key.zone)]
        }
        let (xa, xb) = sortedPair(x.key), (ya, yb) = sortedPair(y.key)
        if xa != ya { return symbols.entities.codePointLess(xa, ya) }
        if xb != yb { return symbols.entities.codePointLess(xb, yb) }
        if x.key.group != y.key.group {
            if x.key.group < 0 || y.key.group < 0 { return x.key.group < y.key.group }
            return groupTexts.texts.codePointLess(x.key.group, y.key.group)
        }
        return x.sequence < y.sequence
    }

    /// The two entities of a pair key, sorted by id (code points).
    public func sortedPair(_ k: AlertKey) -> (Int32, Int32) {
        if k.pairA < 0 { return (k.pairA, k.pairB) }
        return symbols.entities.codePointLess(k.pairB, k.pairA) ? (k.pairB, k.pairA) : (k.pairA, k.pairB)
    }

    /// Alerts emitted so far per rule (after cooldown and expiry).
    public var alertsPerRule: [Int] { emitter.emittedPerRule }

    // MARK: - Time

    /// Fires every timer with deadline <= `t`, in deadline order, and records rule expiry.
    @inline(__always)
    func advanceTimers(to t: Millis) {
        emitter.advance(to: t)
        time.reach(t)
        var fired = false
        while let timer = time.nextTimer(upTo: t) {
            emitter.advance(to: timer.deadline)
            fire(timer)
            fired = true
        }
        // A timer's alerts before t are complete (nothing at their time can come any more):
        // their group closes now, not at the next event, so that what is complete at t does
        // not depend on which events come next (a rebuild at t drops exactly these).
        if fired { emitter.advance(to: t) }
    }

    func fire(_ timer: EngineTimer) {
        let slot = ruleSlot[Int(timer.rule)]
        switch ruleKinds[Int(timer.rule)] {
        case .dwell: kinds.dwell.fire(timer, slot: slot, matching: self, emitter: &emitter, timers: &time.timers)
        case .gathering: kinds.gathering.fire(timer, slot: slot, matching: self, emitter: &emitter, timers: &time.timers)
        case .proximity: kinds.proximity.fire(timer, slot: slot, matching: self, emitter: &emitter, timers: &time.timers)
        case .frequency: kinds.frequency.fire(timer, slot: slot, matching: self, emitter: &emitter, timers: &time.timers)
        case .novelty: kinds.novelty.fire(timer, slot: slot, matching: self, emitter: &emitter, timers: &time.timers)
        case .absence: kinds.absence.fire(timer, slot: slot, matching: self, emitter: &emitter, timers: &time.timers)
        case .aggregate: kinds.aggregate.fire(timer, slot: slot, matching: self, emitter: &emitter, timers: &time.timers)
        case .sequence: kinds.sequence.fire(timer, slot: slot, matching: self, emitter: &emitter, timers: &time.timers)
        case .enter, .exit, .speed, .threshold: break
        }
    }

    // MARK: - Applying events

    func apply(_ ev: Event, _ ref: EventRef, knownZones: UnsafeBufferPointer<Int32>? = nil) {
        applied += 1
        emitter.advance(to: ev.time)
        // The scratch arrays move into locals for the event (and back after): an array stored
        // in the engine (a class) is retained and released each time it is passed on.
        var zones: [Int32] = [], entered: [Int32] = [], exited: [Int32] = []
        swap(&zones, &zoneScratch)
        swap(&entered, &enteredScratch)
        swap(&exited, &exitedScratch)
        defer {
            swap(&zones, &zoneScratch)
            swap(&entered, &enteredScratch)
            swap(&exited, &exitedScratch)
        }
        // (removeAll on an empty array is not free: skipped.)
        if !entered.isEmpty { entered.removeAll(keepingCapacity: true) }
        if !exited.isEmpty { exited.removeAll(keepingCapacity: true) }
        if !zones.isEmpty { zones.removeAll(keepingCapacity: true) }
        if ev.type == Symbols.positionType {
            if needsZones && updateZones(ev, known: knownZones, zones: &zones, entered: &entered, exited: &exited) {
                kinds.geofence.onTransitions(entity: ev.entity, entered: entered[...], exited: exited[...], time: ev.time, ref: ref,
                                       matching: self, emitter: &emitter)
                if !kinds.dwell.isEmpty {
                    kinds.dwell.onTransitions(entity: ev.entity, entered: entered[...], exited: exited[...], time: ev.time, ref: ref,
                                        matching: self, emitter: &emitter, timers: &time.timers)
                }
            }
            if !kinds.gathering.isEmpty { kinds.gathering.onPosition(ev, ref: ref, zones: zones, matching: self, emitter: &emitter, timers: &time.timers) }
            if !kinds.views.isEmpty { applyViews(ev, ref, zones) }
            if !kinds.speed.isEmpty || !kinds.proximity.isEmpty {
                // One access to the record (each `entities[ei].x = ...` checked the array's
                // uniqueness on its own).
                let prev = Self.moveLatest(&entities[Int(ev.entity)], ev, ref)
                // The proximity grid reads the latest positions of the entity's neighbours
                // from their records (`latestPosition`); this entity's is already this one.
                if !kinds.proximity.isEmpty { kinds.proximity.onPosition(ev, ref: ref, matching: self, emitter: &emitter, timers: &time.timers) }
                if !kinds.speed.isEmpty { kinds.speed.onPosition(ev, ref: ref, previous: prev, matching: self, emitter: &emitter) }
            } else if needsZones {
                // The latest position's event is the evidence of a zone edit's transitions.
                let ei = Int(ev.entity)
                entities[ei].lastTime = ev.time
                entities[ei].setLastRef(ref, ev.entity)
            }
        } else if ev.type == Symbols.readingType {
            if !kinds.threshold.isEmpty { kinds.threshold.onReading(ev, ref: ref, matching: self, emitter: &emitter) }
        } else if ev.type == Symbols.contactType {
            if !kinds.novelty.isEmpty { kinds.novelty.onContact(ev, ref: ref, matching: self, emitter: &emitter, timers: &time.timers) }
        }
        if !kinds.frequency.isEmpty { kinds.frequency.onEvent(ev, ref: ref, zones: zones, matching: self, texts: &groupTexts, emitter: &emitter, timers: &time.timers) }
        if !kinds.aggregate.isEmpty { kinds.aggregate.onEvent(ev, ref: ref, zones: zones, matching: self, texts: &groupTexts, emitter: &emitter, timers: &time.timers) }
        if !kinds.absence.isEmpty { kinds.absence.onEvent(ev, ref: ref, zones: zones, matching: self, emitter: &emitter, timers: &time.timers) }
        if !kinds.sequence.isEmpty {
            // (The views are read from a copy: `kinds` is being modified by the call.)
            let views = ev.type == Symbols.positionType ? kinds.views : []
            kinds.sequence.onEvent(ev, ref: ref, order: applied, zones: zones, entered: entered, exited: exited, views: views,
                             matching: self, emitter: &emitter, timers: &time.timers)
        }
    }

    /// Makes `ev` the latest position of its entity's record; returns the one before.
    @inline(__always)
    static func moveLatest(_ r: inout EntityState, _ ev: Event, _ ref: EventRef) -> SpeedEvaluator.Previous {
        let prev = SpeedEvaluator.Previous(lon: r.lastLon, lat: r.lastLat, time: r.lastTime, ref: r.lastRef(ev.entity))
        r.lastLon = ev.lon
        r.lastLat = ev.lat
        r.lastTime = ev.time
        r.setLastRef(ref, ev.entity)
        return prev
    }

    /// Moves each steadied membership (`MembershipView`) by a position whose plain zones are
    /// `zones`, and hands its transitions to the enter, exit, dwell and gathering rules that
    /// read it (sequence rules read them after).
    func applyViews(_ ev: Event, _ ref: EventRef, _ zones: [Int32]) {
        for v in kinds.views.indices {
            kinds.views[v].onPosition(entity: ev.entity, time: ev.time, ref: ref, lon: ev.lon, lat: ev.lat, raw: zones)
            let view = Int32(v + 1)
            let entered = kinds.views[v].entered, first = kinds.views[v].enteredFirst, exited = kinds.views[v].exited
            if !entered.isEmpty || !exited.isEmpty {
                kinds.geofence.onTransitions(view: view, entity: ev.entity, entered: entered[...], enteredFirst: first[...], exited: exited[...],
                                             time: ev.time, ref: ref, matching: self, emitter: &emitter)
                if !kinds.dwell.isEmpty {
                    kinds.dwell.onTransitions(view: view, entity: ev.entity, entered: entered[...], exited: exited[...], time: ev.time, ref: ref,
                                              matching: self, emitter: &emitter, timers: &time.timers)
                }
            }
            if !kinds.gathering.isEmpty {
                let inside = kinds.views[v].inside
                kinds.gathering.onPosition(ev, view: view, ref: ref, zones: inside, matching: self, emitter: &emitter, timers: &time.timers)
            }
        }
    }

    /// Looks the position up in the zone index (into `zoneScratch`) and, when the entity's
    /// set of zones changed, fills `enteredScratch` and `exitedScratch`. Returns whether it changed.
    func updateZones(_ ev: Event, known: UnsafeBufferPointer<Int32>?, zones zoneScratch: inout [Int32], entered enteredScratch: inout [Int32],
                     exited exitedScratch: inout [Int32]) -> Bool {
        if let known {
            zoneScratch.append(contentsOf: known)
            knownZoneLookups &+= 1
        } else {
            index.zones(coveringX: ev.lon, y: ev.lat, into: &zoneScratch)
        }
        let ei = Int(ev.entity)
        let count = Int(entities[ei].insideCount)
        if count == 0 && zoneScratch.isEmpty { return false }
        // The previous set, from inline storage or the overflow map.
        if !prevScratch.isEmpty { prevScratch.removeAll(keepingCapacity: true) }
        if count > 3 {
            prevScratch.append(contentsOf: insideOverflow[ev.entity] ?? [])
        } else {
            let t = entities[ei].inside
            if count > 0 { prevScratch.append(t.0) }
            if count > 1 { prevScratch.append(t.1) }
            if count > 2 { prevScratch.append(t.2) }
        }
        if prevScratch == zoneScratch { return false }
        // Sorted set differences.
        let prev = prevScratch
        var i = 0, j = 0
        while i < zoneScratch.count || j < prev.count {
            if j >= prev.count || (i < zoneScratch.count && zoneScratch[i] < prev[j]) {
                enteredScratch.append(zoneScratch[i]); i += 1
            } else if i >= zoneScratch.count || prev[j] < zoneScratch[i] {
                exitedScratch.append(prev[j]); j += 1
            } else {
                i += 1; j += 1
            }
        }
        let n = zoneScratch.count
        if count > 3 && n <= 3 { insideOverflow[ev.entity] = nil }
        entities[ei].insideCount = UInt16(n)
        if n > 3 {
            insideOverflow[ev.entity] = zoneScratch
        } else {
            entities[ei].inside = (n > 0 ? zoneScratch[0] : 0, n > 1 ? zoneScratch[1] : 0, n > 2 ? zoneScratch[2] : 0)
        }
        return true
    }

    // MARK: - Ids

    /// If a given id is spelled `<entity>#<n>` for this entity (the form of assigned ids),
    /// returns n.
    func assignedNumber(_ id: Int32, entity: Int32) -> UInt32? {
        let ids = symbols.eventIds, names = symbols.entities
        let ri = ids.bytesRange(id), rn = names.bytesRange(entity)
        let si = ri.lowerBound, ei = ri.upperBound, sn = rn.lowerBound, en = rn.upperBound
        let nameLength = en - sn, digits = ei - si - nameLength - 1
        guard digits >= 1, digits <= 10, ids.arena[si + nameLength] == 35, ids.arena[si + nameLength + 1] != 48 else { return nil }
        for k in 0..<nameLength where ids.arena[si + k] != names.arena[sn + k] { return nil }
        var v: UInt64 = 0
        for k in (si + nameLength + 1)..<ei {
            let c = ids.arena[k]
            guard c >= 48 && c <= 57 else { return nil }
            v = v * 10 + UInt64(c - 48)
        }
        return v <= UInt64(UInt32.max) ? UInt32(v) : nil
    }

    // MARK: - Introspection

    /// Rule ids and zone ids as JSON string literals, for alert lines (built on first use).
    public private(set) lazy var quotedRuleIds = QuotedNames(rules.map(\.id))
    public private(set) lazy var quotedZoneIds = QuotedNames(zones.map(\.id))

    /// Approximate bytes of engine state per entity seen (interned names included).
    public var stateBytes: (perEntity: Int, total: Int, entities: Int) {
        let n = entities.filter(\.ready).count
        let total = stateByPart.reduce(0) { $0 + $1.bytes }
        return (n == 0 ? 0 : total / n, total, n)
    }

    /// `stateBytes` by part, largest first: the entity records, the zone match bits, the
    /// overflow lists of entities inside more than a few zones, the id memory (dedup) and
    /// per-entity arrival windows, and the interned entity names and given event ids.
    public var stateByPart: [(part: String, bytes: Int)] {
        var overflow = 0
        for (_, v) in insideOverflow { overflow += 48 + v.capacity * 4 }
        let parts: [(String, Int)] = [
            ("records", entities.capacity * MemoryLayout<EntityState>.stride),
            ("zone matches", matchTable.bits.capacity * 8),
            ("inside overflow", overflow),
            ("id memory", time.idMemory.memoryBytes + time.idQueue.memoryBytes),
            ("arrivals", time.arrivalRing.memoryBytes + time.arrivals.capacity * MemoryLayout<TimeCore.Arrivals>.stride),
            ("entity names", symbols.entities.memoryBytes),
            ("event ids", symbols.eventIds.memoryBytes),
        ]
        return parts.sorted { $0.1 > $1.1 }.map { (part: $0.0, bytes: $0.1) }
    }

    /// Approximate bytes held by the rule evaluators' per-key state (hash tables, windows,
    /// pending timers); a lower bound, as small arrays inside values are counted by size.
    public var ruleStateBytes: Int { ruleStateByKind.reduce(0) { $0 + $1.bytes } }

    /// `ruleStateBytes` by rule kind (and the timer queue and cooldown state), largest first.
    public var ruleStateByKind: [(kind: String, bytes: Int)] {
        let parts: [(String, Int)] = [
            ("timers", time.timers.count * MemoryLayout<EngineTimer>.stride),
            ("cooldown", emitter.cooldownState.count * 64),
            ("dwell", kinds.dwell.stateBytes), ("absence", kinds.absence.stateBytes), ("frequency", kinds.frequency.stateBytes),
            ("novelty", kinds.novelty.stateBytes), ("threshold", kinds.threshold.stateBytes), ("gathering", kinds.gathering.stateBytes),
            ("proximity", kinds.proximity.stateBytes), ("sequence", kinds.sequence.stateBytes), ("aggregate", kinds.aggregate.stateBytes),
            ("group texts", groupTexts.memoryBytes),
            ("zone jitter", kinds.views.reduce(0) { $0 + $1.stateBytes }),
        ]
        return parts.sorted { $0.1 > $1.1 }.map { (kind: $0.0, bytes: $0.1) }
    }
}

/// The identity of one engine's zone index (see `Engine.indexToken`).
final class IndexToken: Sendable {}
