import CTriplineSupport

/// Options of an engine run.
public struct EngineOptions: Sendable {
    /// Events up to this much older than the largest time seen are still applied in order.
    public var allowedLateness: Millis = 0
    /// How long an accepted event id is remembered for duplicate detection (spec v1.2): an id
    /// accepted with event time s is remembered while the watermark is at most s + this.
    public var dedupWindow: Millis = 86_400_000
    public init(allowedLateness: Millis = 0, dedupWindow: Millis = 86_400_000) {
        self.allowedLateness = allowedLateness
        self.dedupWindow = dedupWindow
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

/// The deterministic engine shared by every mode (spec sections 2-5): interned ids,
/// event ids and duplicate detection, the event-time watermark with buffering, timers in
/// deadline order, and one evaluator per rule kind. It never reads a clock or a file.
public final class Engine {
    public var symbols: Symbols
    public let zones: [Zone]
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
    struct EntityState {
        var arrivals: UInt32 = 0
        var ready = false
        /// How many zones the latest position is inside: up to 3 inline (sorted), more in
        /// `insideOverflow`.
        var insideCount: UInt16 = 0
        var inside: (Int32, Int32, Int32) = (0, 0, 0)
        /// The first 64 distinct entity selectors this entity matches, one bit each.
        var match: UInt64 = 0
        /// The latest position, for speed (lastTime == .min before the first).
        var lastLon = 0.0
        var lastLat = 0.0
        var lastTime: Millis = .min
        var lastRef = EventRef(raw: 0)
        /// Where the entity's latest arrival is in `arrivalRing` (-1: none); each record
        /// links to the entity's previous one.
        var lastArrival: Int64 = -1
    }
    var entities: [EntityState] = []
    /// Selectors beyond the first 64, per entity (empty when there are at most 64).
    var matchTable: MatchTable
    var insideOverflow: [Int32: [Int32]] = [:]
    /// Accepted given ids inside the dedup window: entity << 32 | id index -> the event time
    /// they were accepted with. An entry whose time + window is below the watermark is
    /// forgotten (treated as absent at once, removed when `idQueue` reaches it).
    var idMemory = IntMap<Millis>()
    /// The accepted given ids in acceptance order, for removing them once forgotten.
    var idQueue = IdQueue()
    /// Per entity, the n of accepted given ids spelled like assigned ones (`<entity>#<n>`),
    /// with the time they were accepted with.
    var givenAssignedForm: [Int32: [UInt32: Millis]] = [:]
    /// Every arrival inside the dedup window, of all entities, in arrival order.
    var arrivalRing = ArrivalRing()
    /// Live event ids after the last collection (`compactIds`).
    var liveIdsAfterCollection = 0

    // Time.
    public private(set) var maxTime: Millis = .min
    public private(set) var watermark: Millis = .min
    var pending = PendingEvents()
    var arrivalSequence: UInt64 = 0
    var timers = TimerQueue()
    var expiryQueue: [(Millis, Int32)]
    /// Rules whose `expires` the watermark has reached, in the order it happened.
    public private(set) var expiredRules: [(rule: Int32, at: Millis)] = []

    // Evaluators, one per kind.
    var geofence = GeofenceEvaluator()
    var speed = SpeedEvaluator()
    var dwell = DwellEvaluator()
    var gathering = GatheringEvaluator()
    var proximity = ProximityEvaluator()
    var frequency = FrequencyEvaluator()
    var novelty = NoveltyEvaluator()
    var threshold = ThresholdEvaluator()
    var sequence = SequenceEvaluator()
    var absence = AbsenceEvaluator()
    let ruleKinds: [RuleKind]
    /// How many rules are evaluated (rules with the same definition share one evaluation).
    public let distinctDefinitions: Int
    /// Position of each rule inside its kind's evaluator.
    let ruleSlot: [Int]
    let needsZones: Bool
    var emitter: Emitter
    var zoneScratch: [Int32] = []
    var enteredScratch: [Int32] = []
    var prevScratch: [Int32] = []
    var exitedScratch: [Int32] = []

    public private(set) var stats = EngineStats()

    public init(zones: [Zone], entities: [EntityInfo], rules: [Rule], options: EngineOptions = EngineOptions(), symbols: Symbols = Symbols()) {
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
        self.rules = rules
        self.options = options
        self.index = ZoneIndex(shapes: zones.map(\.shape))
        // Distinct entity selectors.
        var sels: [Selector] = []
        var selIndex: [Selector: Int32] = [:]
        func sel(_ s: Selector) -> Int32 {
            if let i = selIndex[s] { return i }
            let i = Int32(sels.count)
            sels.append(s)
            selIndex[s] = i
            return i
        }
        // Rules with the same definition (kind parameters, entity and zone selectors) compute
        // the same transitions: one of them is evaluated and the emitter fans its transitions
        // out to all of them (each with its own id, cooldown and expiry).
        struct Definition: Hashable {
            var parameters: RuleParameters
            var match: Selector
            var zones: Selector?
        }
        var firstWith: [Definition: Int] = [:]
        var evaluatedAs = Array(0..<rules.count)
        var fanout: [[Int32]] = Array(repeating: [], count: rules.count)
        for (i, r) in rules.enumerated() {
            let d = Definition(parameters: r.parameters, match: r.match, zones: r.zones)
            if let j = firstWith[d] { evaluatedAs[i] = j } else { firstWith[d] = i }
            fanout[evaluatedAs[i]].append(Int32(i))
        }
        self.emitter = Emitter(rules: rules, fanout: fanout)
        self.distinctDefinitions = firstWith.count
        self.ruleKinds = rules.map(\.kind)
        var slots = Array(repeating: -1, count: rules.count)
        var geo = GeofenceEvaluator(), spd = SpeedEvaluator(), dw = DwellEvaluator(), ga = GatheringEvaluator()
        var px = ProximityEvaluator(), fq = FrequencyEvaluator(), nv = NoveltyEvaluator(), th = ThresholdEvaluator()
        var sq = SequenceEvaluator(), ab = AbsenceEvaluator()
        var zonesNeeded = false
        for (i, r) in rules.enumerated() where evaluatedAs[i] == i {
            let ri = Int32(i)
            let s = sel(r.match)
            switch r.parameters {
            case .enter:
                geo.enterRules.append(.init(rule: ri, selector: s, zoneMask: ZoneMask.build(r.zones, zones: zones)))
                zonesNeeded = true
            case .exit:
                geo.exitRules.append(.init(rule: ri, selector: s, zoneMask: ZoneMask.build(r.zones, zones: zones)))
                zonesNeeded = true
            case .speed(let v):
                spd.rules.append(.init(rule: ri, selector: s, maxKmh: v))
            case .dwell(let min):
                slots[i] = dw.rules.count
                dw.rules.append(.init(rule: ri, selector: s, zoneMask: ZoneMask.build(r.zones, zones: zones), min: min))
                zonesNeeded = true
            case .gathering(let n, let w):
                slots[i] = ga.rules.count
                ga.rules.append(.init(rule: ri, selector: s, zoneMask: ZoneMask.build(r.zones, zones: zones), minCount: n, window: w))
                zonesNeeded = true
            case .proximity(let d, let w, let other):
                slots[i] = px.rules.count
                px.add(rule: ri, match: s, other: other.map(sel) ?? s, distance: d, window: w)
            case .frequency(let k, let w, let f):
                let cf = CompiledFilter(f, symbols: &syms, zones: zones)
                zonesNeeded = zonesNeeded || cf.needsZones
                slots[i] = fq.add(rule: ri, selector: s, count: k, window: w, filter: f, compiled: cf)
            case .novelty(let k, let w, let h, let cp):
                slots[i] = nv.add(rule: ri, selector: s, count: k, window: w, lookback: h, prefix: cp?.prefix, notPrefix: cp?.notPrefix)
            case .threshold(let metric, let c):
                th.add(rule: ri, selector: s, metric: syms.names.intern(metric), condition: c)
            case .sequence(let steps, let within):
                let compiled: [SequenceEvaluator.Step] = steps.map {
                    switch $0 {
                    case .enter(let z): zonesNeeded = true; return .enter(ZoneMask.build(z, zones: zones))
                    case .exit(let z): zonesNeeded = true; return .exit(ZoneMask.build(z, zones: zones))
                    case .event(let f):
                        let cf = CompiledFilter(f, symbols: &syms, zones: zones)
                        zonesNeeded = zonesNeeded || cf.needsZones
                        return .event(cf)
                    }
                }
                sq.rules.append(.init(rule: ri, selector: s, steps: compiled, within: within))
            case .absence(let d, let f):
                let cf = f.map { CompiledFilter($0, symbols: &syms, zones: zones) }
                zonesNeeded = zonesNeeded || (cf?.needsZones ?? false)
                slots[i] = ab.add(rule: ri, selector: s, duration: d, filter: f, compiled: cf)
            }
        }
        self.symbols = syms
        self.geofence = geo
        self.speed = spd
        self.dwell = dw
        self.gathering = ga
        self.proximity = px
        self.frequency = fq
        self.novelty = nv
        self.threshold = th
        self.sequence = sq
        self.absence = ab
        self.needsZones = zonesNeeded
        self.ruleSlot = slots
        self.selectors = sels
        self.matchTable = MatchTable(stride: max(0, (sels.count - 64 + 63) / 64))
        // Canonical ranks: code point order of ids.
        func ranks(_ ids: [String]) -> [Int32] {
            let order = ids.indices.sorted { Array(ids[$0].utf8).lexicographicallyPrecedes(Array(ids[$1].utf8)) }
            var rank = Array(repeating: Int32(0), count: ids.count)
            for (k, i) in order.enumerated() { rank[i] = Int32(k) }
            return rank
        }
        self.zoneRank = ranks(zones.map(\.id))
        self.ruleRank = ranks(rules.map(\.id))
        // Known entities get their state (selector bits) now, not on their first event.
        defer {
            if self.symbols.entities.count > 0 { reserveEntities(self.symbols.entities.count) }
            for i in self.registry.indices where self.registry[i] != nil { createEntity(i) }
        }
        self.expiryQueue = rules.enumerated().compactMap { i, r in r.expires.map { ($0, Int32(i)) } }.sorted { $0.0 > $1.0 }
    }

    func reserveEntities(_ n: Int) {
        if n <= entities.count { return }
        entities.append(contentsOf: repeatElement(EntityState(), count: n - entities.count))
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

    /// Does entity `e` match selector `s`?
    @inline(__always)
    func matches(_ e: Int32, _ s: Int32) -> Bool {
        if s < 64 { return (entities[Int(e)].match >> UInt64(s)) & 1 == 1 }
        return matchTable.matches(e, s - 64)
    }

    /// Offers one arriving event to the engine (spec sections 2 and 3).
    @discardableResult
    public func ingest(_ ev: Event) -> IngestOutcome {
        stats.arrived += 1
        let e = ev.entity
        ensureEntity(e)
        let ei = Int(e)
        entities[ei].arrivals += 1
        let n = entities[ei].arrivals
        // Duplicate detection (spec section 2, with v1.2's dedup window).
        let window = options.dedupWindow
        let ref: EventRef
        var duplicate = false
        var assignedForm: UInt32? = nil
        if ev.givenId >= 0 {
            ref = .given(ev.givenId)
            if let s = idMemory[key(e, ev.givenId)], s + window >= watermark {
                duplicate = true
            } else if let k = assignedNumber(ev.givenId, entity: e) {
                assignedForm = k
                // Collides with an earlier arrival accepted under its assigned id, still remembered?
                if k < n && assignedRemembered(ei, k) { duplicate = true }
            }
        } else {
            ref = .assigned(entity: e, n: n)
            if !givenAssignedForm.isEmpty, let s = givenAssignedForm[e]?[n], s + window >= watermark { duplicate = true }
        }
        if duplicate {
            stats.duplicates += 1
            logArrival(ei, -1 - ev.time)
            return .duplicate(ref)
        }
        if ev.time < watermark {
            stats.late += 1
            logArrival(ei, -1 - ev.time)
            return .late(ref)
        }
        if ev.givenId >= 0 {
            logArrival(ei, -1 - ev.time)
            let k = key(e, ev.givenId)
            idMemory[k] = ev.time
            idQueue.push(key: k, time: ev.time, assignedForm: assignedForm ?? .max)
            if let a = assignedForm { givenAssignedForm[e, default: [:]][a] = ev.time }
        } else {
            logArrival(ei, ev.time)
        }
        if ev.time > maxTime { maxTime = ev.time }
        let newWatermark = maxTime &- options.allowedLateness
        if pending.isEmpty && ev.time <= newWatermark {
            advanceTimers(to: ev.time)
            apply(ev, ref)
        } else {
            pending.push(.init(event: ev, ref: ref, arrival: arrivalSequence))
            arrivalSequence += 1
        }
        if newWatermark > watermark {
            watermark = newWatermark
            forgetIds()
        }
        while let item = pending.pop(upTo: watermark) {
            advanceTimers(to: item.event.time)
            apply(item.event, item.ref)
        }
        advanceTimers(to: watermark)
        return .accepted(ref)
    }

    /// Offers arriving events in order, as `ingest` does one by one, overlapping the memory
    /// latency of later events' state (their entity record and zone-grid slot) with the work
    /// on the current one. Calls `late` with the position of each late event in `events`.
    public func ingest(contentsOf events: [Event], late: (Int) -> Void = { _ in }) {
        events.withUnsafeBufferPointer { ingest(contentsOf: $0[...], late: late) }
    }

    /// `ingest(contentsOf:)` over part of a buffer; `late` gets positions relative to its start.
    public func ingest(contentsOf evs: Slice<UnsafeBufferPointer<Event>>, late: (Int) -> Void = { _ in }) {
        let ahead = 8
        let base = evs.startIndex
        do {
            for i in evs.indices {
                if i + ahead < evs.endIndex {
                    // Fields read one by one: copying the event would retain its attributes.
                    let nextEntity = evs[i + ahead].entity, nextType = evs[i + ahead].type
                    let e = Int(nextEntity)
                    if e < entities.count { entities.withUnsafeBufferPointer { tripline_prefetch($0.baseAddress! + e) } }
                    if nextType == Symbols.positionType {
                        if needsZones { index.prefetch(x: evs[i + ahead].lon, y: evs[i + ahead].lat) }
                        for g in proximity.grids.indices { proximity.grids[g].latest.prefetch(key(nextEntity)) }
                    } else if nextType == Symbols.readingType && !threshold.levels.isEmpty {
                        threshold.latest.prefetch(key(nextEntity, evs[i + ahead].metric))
                    }
                    for g in absence.groups.indices { absence.groups[g].seen.prefetch(key(nextEntity)) }
                }
                // The zone grid's slot for event i + 8 was requested 4 events ago: its cell's
                // entries can be requested now.
                if needsZones && i + ahead / 2 < evs.endIndex && evs[i + ahead / 2].type == Symbols.positionType {
                    index.prefetchRun(x: evs[i + ahead / 2].lon, y: evs[i + ahead / 2].lat)
                }
                if case .late = ingest(evs[i]) { late(i - base) }
            }
        }
    }

    /// Ends the input: applies every buffered event, sets the watermark to the largest time,
    /// and, with `until` later than that, advances it to `until` firing due timers.
    public func finish(until: Millis? = nil) {
        while let item = pending.pop(upTo: .max) {
            advanceTimers(to: item.event.time)
            apply(item.event, item.ref)
        }
        if maxTime > watermark { watermark = maxTime }
        advanceTimers(to: watermark)
        if let until, until > watermark {
            watermark = until
            advanceTimers(to: until)
        }
        forgetIds()
        emitter.closeAll()
        syncStats()
    }

    /// A live server's "advance event time to `until`" (an operator's command, or
    /// `idle_advance`): applies buffered events up to it, moves the watermark there, fires the
    /// timers due by then and completes every alert group. When `until` is at or after the
    /// largest time seen this is exactly `finish(until:)`, and later events may still follow
    /// (those before `until` are late).
    public func advance(until: Millis) {
        while let item = pending.pop(upTo: until) {
            advanceTimers(to: item.event.time)
            apply(item.event, item.ref)
        }
        if until > watermark { watermark = until }
        advanceTimers(to: watermark)
        forgetIds()
        emitter.closeAll()
        syncStats()
    }

    /// Moves alerts whose time group is complete into `out`, in canonical order
    /// (time, rule id, key, emission order).
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
        return x.sequence < y.sequence
    }

    /// The two entities of a pair key, sorted by id (code points).
    public func sortedPair(_ k: AlertKey) -> (Int32, Int32) {
        if k.pairA < 0 { return (k.pairA, k.pairB) }
        return symbols.entities.codePointLess(k.pairB, k.pairA) ? (k.pairB, k.pairA) : (k.pairA, k.pairB)
    }

    func syncStats() {
        stats.suppressedByCooldown = emitter.suppressedByCooldown
        stats.suppressedByExpiry = emitter.suppressedByExpiry
    }

    /// Alerts emitted so far per rule (after cooldown and expiry).
    public var alertsPerRule: [Int] { emitter.emittedPerRule }

    // MARK: - Time

    /// Fires every timer with deadline <= `t`, in deadline order, and reports rule expiry.
    func advanceTimers(to t: Millis) {
        emitter.advance(to: t)
        while let last = expiryQueue.last, last.0 <= t {
            expiryQueue.removeLast()
            expiredRules.append((last.1, last.0))
        }
        while timers.lowerBound <= t, let timer = timers.pop(upTo: t) {
            stats.timersFired += 1
            emitter.advance(to: timer.deadline)
            fire(timer)
        }
    }

    func fire(_ timer: EngineTimer) {
        let slot = ruleSlot[Int(timer.rule)]
        switch ruleKinds[Int(timer.rule)] {
        case .dwell: dwell.fire(timer, slot: slot, emitter: &emitter)
        case .gathering: gathering.fire(timer, slot: slot, engine: self, emitter: &emitter, timers: &timers)
        case .proximity: proximity.fire(timer, slot: slot, emitter: &emitter, timers: &timers)
        case .frequency: frequency.fire(timer, slot: slot, emitter: &emitter, timers: &timers)
        case .novelty: novelty.fire(timer, slot: slot, emitter: &emitter, timers: &timers)
        case .absence: absence.fire(timer, slot: slot, emitter: &emitter, timers: &timers)
        case .enter, .exit, .speed, .threshold, .sequence: break
        }
    }

    // MARK: - Applying events

    func apply(_ ev: Event, _ ref: EventRef) {
        stats.applied += 1
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
            if needsZones && updateZones(ev, zones: &zones, entered: &entered, exited: &exited) {
                geofence.onTransitions(entity: ev.entity, entered: entered[...], exited: exited[...], time: ev.time, ref: ref,
                                       engine: self, emitter: &emitter)
                if !dwell.isEmpty {
                    dwell.onTransitions(entity: ev.entity, entered: entered[...], exited: exited[...], time: ev.time, ref: ref,
                                        engine: self, emitter: &emitter, timers: &timers)
                }
            }
            if !gathering.isEmpty { gathering.onPosition(ev, ref: ref, zones: zones, engine: self, emitter: &emitter, timers: &timers) }
            if !proximity.isEmpty { proximity.onPosition(ev, ref: ref, engine: self, emitter: &emitter, timers: &timers) }
            if !speed.isEmpty {
                let ei = Int(ev.entity)
                let prev = SpeedEvaluator.Previous(lon: entities[ei].lastLon, lat: entities[ei].lastLat, time: entities[ei].lastTime, ref: entities[ei].lastRef)
                entities[ei].lastLon = ev.lon
                entities[ei].lastLat = ev.lat
                entities[ei].lastTime = ev.time
                entities[ei].lastRef = ref
                speed.onPosition(ev, ref: ref, previous: prev, engine: self, emitter: &emitter)
            }
        } else if ev.type == Symbols.readingType {
            if !threshold.isEmpty { threshold.onReading(ev, ref: ref, engine: self, emitter: &emitter) }
        } else if ev.type == Symbols.contactType {
            if !novelty.isEmpty { novelty.onContact(ev, ref: ref, engine: self, emitter: &emitter, timers: &timers) }
        }
        if !frequency.isEmpty { frequency.onEvent(ev, ref: ref, zones: zones, engine: self, emitter: &emitter, timers: &timers) }
        if !absence.isEmpty { absence.onEvent(ev, ref: ref, zones: zones, engine: self, emitter: &emitter, timers: &timers) }
        if !sequence.isEmpty {
            sequence.onEvent(ev, ref: ref, order: stats.applied, zones: zones, entered: entered, exited: exited,
                             engine: self, emitter: &emitter)
        }
    }

    /// Looks the position up in the zone index (into `zoneScratch`) and, when the entity's
    /// set of zones changed, fills `enteredScratch` and `exitedScratch`. Returns whether it changed.
    func updateZones(_ ev: Event, zones zoneScratch: inout [Int32], entered enteredScratch: inout [Int32], exited exitedScratch: inout [Int32]) -> Bool {
        index.zones(coveringX: ev.lon, y: ev.lat, into: &zoneScratch)
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
        let si = Int(ids.starts[Int(id)]), ei = Int(ids.ends[Int(id)])
        let sn = Int(names.starts[Int(entity)]), en = Int(names.ends[Int(entity)])
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

    /// Approximate bytes of engine state per entity seen (interned names included).
    public var stateBytes: (perEntity: Int, total: Int, entities: Int) {
        let n = entities.filter(\.ready).count
        var total = entities.capacity * MemoryLayout<EntityState>.stride
        total += matchTable.bits.capacity * 8
        total += arrivalRing.memoryBytes
        for (_, v) in insideOverflow { total += 48 + v.capacity * 4 }
        total += idMemory.memoryBytes + idQueue.memoryBytes
        total += symbols.entities.memoryBytes + symbols.eventIds.memoryBytes
        return (n == 0 ? 0 : total / n, total, n)
    }

    /// Approximate bytes held by the rule evaluators' per-key state (hash tables, windows,
    /// pending timers); a lower bound, as small arrays inside values are counted by size.
    public var ruleStateBytes: Int { ruleStateByKind.reduce(0) { $0 + $1.bytes } }

    /// `ruleStateBytes` by rule kind (and the timer queue and cooldown state), largest first.
    public var ruleStateByKind: [(kind: String, bytes: Int)] {
        var parts: [(String, Int)] = []
        parts.append(("timers", timers.count * MemoryLayout<EngineTimer>.stride))
        parts.append(("cooldown", emitter.cooldownState.count * 64))
        parts.append(("dwell", dwell.rules.reduce(0) { $0 + $1.visits.memoryBytes }))
        parts.append(("absence", absence.groups.reduce(0) { $0 + $1.seen.memoryBytes }))
        parts.append(("frequency", frequency.groups.reduce(0) { $0 + $1.tracks.memoryBytes + $1.tracks.entries.reduce(0) { $0 + $1.value.refs.entries.capacity * MemoryLayout<TimedRefs.Entry>.stride } }))
        var nv = 0
        for d in novelty.detectors {
            nv += d.lastContact.memoryBytes + d.history.memoryBytes + d.history.entries.reduce(0) { $0 + $1.value.times.capacity * 12 }
            for m in d.members { nv += m.count.tracks.memoryBytes + m.count.tracks.entries.reduce(0) { $0 + $1.value.refs.entries.capacity * MemoryLayout<TimedRefs.Entry>.stride } }
        }
        parts.append(("novelty", nv))
        parts.append(("threshold", threshold.latest.memoryBytes + threshold.baselines.reduce(0) { $0 + $1.states.memoryBytes + $1.states.entries.reduce(0) { $0 + $1.value.window.times.capacity * 16 } }))
        parts.append(("gathering", gathering.rules.reduce(0) { $0 + $1.crowds.memoryBytes + $1.crowds.entries.reduce(0) { $0 + $1.value.members.memoryBytes } }))
        parts.append(("proximity", proximity.grids.reduce(0) { $0 + $1.latest.memoryBytes + $1.cells.memoryBytes + $1.occupied.count * 8 }
                      + proximity.rules.reduce(0) { $0 + $1.near.memoryBytes + $1.pending.memoryBytes }))
        parts.append(("sequence", sequence.rules.reduce(0) { $0 + $1.partials.memoryBytes }))
        return parts.sorted { $0.1 > $1.1 }.map { (kind: $0.0, bytes: $0.1) }
    }
}
