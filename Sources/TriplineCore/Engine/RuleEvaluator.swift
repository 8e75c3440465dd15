/// What an evaluator may see outside its own state: whether an entity matches an entity
/// selector of the plan, and the names (counterparts, members). The engine provides it; an
/// evaluator never sees the engine itself.
protocol EntityMatching: AnyObject {
    /// Does entity `e` match selector `s` (a selector number of the rule plan)?
    func matches(_ e: Int32, _ s: Int32) -> Bool
    var symbols: Symbols { get }
    /// The latest position of entity `e`, its time and its event, when the plan has speed or
    /// proximity rules (the engine's entity record; the proximity grid keeps no copy).
    func latestPosition(_ e: Int32) -> (lon: Double, lat: Double, time: Millis, ref: EventRef)
}

/// One rule kind's evaluator (one per kind, each in its own file next to its section of the
/// rules). The event hooks differ by kind (zone transitions, a position, a reading, a contact,
/// any event) and take the same small context: `matching`, the `emitter` that applies
/// cooldown and expiry and orders alerts, and the `timers` of the time core. These are common:
protocol RuleEvaluator {
    /// No rule of this kind in the plan: the engine skips it.
    var isEmpty: Bool { get }
    /// A timer this evaluator set is due (`slot`: the rule's position inside the evaluator).
    mutating func fire(_ t: EngineTimer, slot: Int, matching: some EntityMatching, emitter: inout Emitter, timers: inout TimerQueue)
    /// Asks for the memory an event of `entity` (of type `type`, metric `metric`) will touch,
    /// a few events before it is applied. (`mutating` though it changes nothing: the engine
    /// then reaches the evaluator in place, where a non-mutating call on a struct stored in
    /// the engine's class copies it, retaining and releasing each of its arrays per event.)
    mutating func prefetch(entity: Int32, type: Int32, metric: Int32)
    /// Approximate bytes of per-key state (hash tables, windows; small arrays inside values
    /// counted by size).
    var stateBytes: Int { get }
    /// Every event ref the state holds (for releasing given ids nothing holds any more).
    func forEachRef(_ body: (EventRef) -> Void)
}

extension RuleEvaluator {
    func fire(_ t: EngineTimer, slot: Int, matching: some EntityMatching, emitter: inout Emitter, timers: inout TimerQueue) {}
    mutating func prefetch(entity: Int32, type: Int32, metric: Int32) {}
    var stateBytes: Int { 0 }
    func forEachRef(_ body: (EventRef) -> Void) {}
}

extension TimedRefs {
    /// The refs still in the window.
    @inline(__always)
    func forEachRef(_ body: (EventRef) -> Void) { for i in head..<entries.count { body(entries[i].ref) } }
}

extension GeofenceEvaluator: RuleEvaluator {}
extension SpeedEvaluator: RuleEvaluator {}

extension DwellEvaluator: RuleEvaluator {
    var stateBytes: Int { rules.reduce(0) { $0 + $1.visits.memoryBytes } }
    func forEachRef(_ body: (EventRef) -> Void) {
        for m in rules { for s in m.visits.slots where s.key != IntMap<Visit>.emptyKey { body(s.value.ref) } }
    }
}

extension GatheringEvaluator: RuleEvaluator {
    var stateBytes: Int { rules.reduce(0) { $0 + $1.crowds.memoryBytes + $1.crowds.entries.reduce(0) { $0 + $1.value.members.memoryBytes } } }
    func forEachRef(_ body: (EventRef) -> Void) {
        for m in rules {
            for c in m.crowds.slots where c.key != IntMap<Crowd>.emptyKey {
                for p in c.value.members.slots where p.key != IntMap<Presence>.emptyKey { body(p.value.ref) }
            }
        }
    }
}

extension ProximityEvaluator: RuleEvaluator {
    @inline(__always)
    mutating func prefetch(entity: Int32, type: Int32, metric: Int32) {
        guard type == Symbols.positionType else { return }
        for g in grids.indices { grids[g].latest.prefetch(entity) }
    }
    var stateBytes: Int {
        grids.reduce(0) { $0 + $1.latest.memoryBytes + $1.cells.memoryBytes + $1.occupied.count * 8 }
            + rules.reduce(0) { $0 + $1.near.memoryBytes + $1.pending.memoryBytes }
    }
    /// None: the grid's latest positions are the engine's entity records, whose events the
    /// engine visits itself.
    func forEachRef(_ body: (EventRef) -> Void) {}
}

extension FrequencyEvaluator: RuleEvaluator {
    var stateBytes: Int {
        groups.reduce(0) { $0 + $1.tracks.memoryBytes + $1.tracks.entries.reduce(0) { $0 + $1.value.refs.entries.capacity * MemoryLayout<TimedRefs.Entry>.stride } }
    }
    func forEachRef(_ body: (EventRef) -> Void) {
        for g in groups { for s in g.tracks.slots where s.key != IntMap<Track>.emptyKey { s.value.refs.forEachRef(body) } }
    }
}

extension NoveltyEvaluator: RuleEvaluator {
    var stateBytes: Int {
        var n = 0
        for d in detectors {
            n += d.lastContact.memoryBytes + d.history.memoryBytes + d.history.entries.reduce(0) { $0 + $1.value.times.capacity * 12 }
            for m in d.members { n += m.count.tracks.memoryBytes + m.count.tracks.entries.reduce(0) { $0 + $1.value.refs.entries.capacity * MemoryLayout<TimedRefs.Entry>.stride } }
        }
        return n
    }
    func forEachRef(_ body: (EventRef) -> Void) {
        for d in detectors {
            for m in d.members { for s in m.count.tracks.slots where s.key != IntMap<SlidingCount.Track>.emptyKey { s.value.refs.forEachRef(body) } }
        }
    }
}

extension ThresholdEvaluator: RuleEvaluator {
    @inline(__always)
    mutating func prefetch(entity: Int32, type: Int32, metric: Int32) {
        if type == Symbols.readingType { for g in levels.indices where levels[g].metric == metric { levels[g].latest.prefetch(entity) } }
    }
    var stateBytes: Int {
        levels.reduce(0) { $0 + $1.latest.memoryBytes } + baselines.reduce(0) { $0 + $1.states.memoryBytes + $1.states.entries.reduce(0) { $0 + $1.value.window.readings.capacity * MemoryLayout<Baseline.Reading>.stride } }
    }
}

extension SequenceEvaluator: RuleEvaluator {
    var stateBytes: Int {
        live.capacity + rules.reduce(0) { $0 + $1.states.memoryBytes + $1.states.entries.reduce(0) { $0 + $1.value.partials.capacity * MemoryLayout<Partial?>.stride } }
    }
    func forEachRef(_ body: (EventRef) -> Void) {
        for m in rules {
            for s in m.states.slots where s.key != IntMap<State>.emptyKey {
                for p in s.value.partials { if let p { for r in p.refs { body(r) } } }
                if let p = s.value.pending { for r in p.refs { body(r) } }
            }
        }
    }
}

extension AbsenceEvaluator: RuleEvaluator {
    @inline(__always)
    mutating func prefetch(entity: Int32, type: Int32, metric: Int32) {
        for g in groups.indices { groups[g].seen.prefetch(key(entity)) }
    }
    var stateBytes: Int { groups.reduce(0) { $0 + $1.seen.memoryBytes } }
    func forEachRef(_ body: (EventRef) -> Void) {
        for g in groups { for s in g.seen.slots where s.key != IntMap<Seen>.emptyKey { body(s.value.ref) } }
    }
}

// What the evaluators' empty table slots hold (see `IntMapValue`).
extension DwellEvaluator.Visit: IntMapValue { static var vacant: Self { Self(start: 0, ref: EventRef(raw: 0), generation: 0, fired: false) } }
extension GatheringEvaluator.Presence: IntMapValue { static var vacant: Self { Self(time: 0, ref: EventRef(raw: 0), sequence: 0, pending: 0) } }
extension GatheringEvaluator.Crowd: IntMapValue {
    /// One table shared by every vacant slot (a copy is a retain, not an allocation).
    /// (Never mutated: a `let` of a value type whose copies are copied on write.)
    nonisolated(unsafe) private static let noMembers = IntMap<GatheringEvaluator.Presence>()
    static var vacant: Self { Self(members: noMembers, firing: false) }
}
extension ProximityEvaluator.Latest: EntityTableValue {
    /// No cube has this key (keys are 63 bits).
    static var vacant: Self { Self(cellKey: .max) }
    var isVacant: Bool { cellKey == .max }
}
extension SlidingCount.Track: IntMapValue { static var vacant: Self { Self() } }
extension FrequencyEvaluator.Track: IntMapValue { static var vacant: Self { Self() } }
extension AggregateEvaluator.Track: IntMapValue { static var vacant: Self { Self() } }
extension NoveltyEvaluator.History: IntMapValue { static var vacant: Self { Self() } }
extension ThresholdEvaluator.BaselineState: IntMapValue { static var vacant: Self { Self() } }
extension SequenceEvaluator.State: IntMapValue { static var vacant: Self { Self(partials: []) } }
extension AbsenceEvaluator.Seen: IntMapValue { static var vacant: Self { Self(time: 0, ref: EventRef(raw: 0), members: 0, firing: 0, pending: 0) } }
