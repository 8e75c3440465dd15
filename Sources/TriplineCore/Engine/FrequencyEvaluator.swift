/// The sliding count shared by `frequency` (spec section 5.5) and `novelty` (5.6): per
/// entity, the counted events in (t - W, t]; fires when the count reaches K from below and
/// resolves when it falls below K (at the expiry that drops it). Key {entity}.
struct SlidingCount {
    struct Track {
        var refs = TimedRefs()
        var firing = false
        /// Deadline of the expiry timer pending (at the oldest event), or .min.
        var pending: Millis = .min
    }
    var window: Millis
    var threshold: Int
    var tracks = IntMap<Track>()

    init(window: Millis, threshold: Int) {
        self.window = window
        self.threshold = threshold
    }

    /// Counts one event; returns the evidence and count when the count just reached K.
    mutating func add(entity: Int32, time: Millis, ref: EventRef, rule: Int32, timers: inout TimerQueue) -> (evidence: [EventRef], count: Int)? {
        let window = self.window, threshold = self.threshold
        return tracks.update(key(entity), default: { Track() }) { tr in
            tr.refs.append(time, ref)
            if tr.pending == .min {
                tr.pending = time + window
                timers.schedule(deadline: time + window, rule: rule, a: entity)
            }
            if tr.refs.count >= threshold && !tr.firing {
                tr.firing = true
                return (tr.refs.evidence, tr.refs.count)
            }
            return nil
        }
    }

    /// Expires events at a timer; returns the count after it when it fell below K.
    mutating func expire(entity: Int32, at deadline: Millis, rule: Int32, timers: inout TimerQueue) -> Int? {
        let window = self.window, threshold = self.threshold
        var drop = false
        let result: Int?? = tracks.modify(key(entity)) { tr -> Int? in
            tr.refs.expire(window: window, now: deadline)
            let c = tr.refs.count
            var fell: Int? = nil
            if c < threshold && tr.firing {
                tr.firing = false
                fell = c
            }
            if let oldest = tr.refs.oldestTime {
                tr.pending = oldest + window
                timers.schedule(deadline: oldest + window, rule: rule, a: entity)
            } else {
                tr.pending = .min
                drop = true
            }
            return fell
        }
        if drop { tracks.remove(key(entity)) }
        return result ?? nil
    }
}

/// Bit j set when entity `e` matches the selector of member j (groups hold at most 64).
@inline(__always)
func matchMask<M>(_ members: [M], _ e: Int32, _ matching: some EntityMatching, _ selector: (M) -> Int32) -> UInt64 {
    var mask: UInt64 = 0
    for (j, m) in members.enumerated() where matching.matches(e, selector(m)) { mask |= 1 << UInt64(j) }
    return mask
}

/// `frequency` (spec section 5.5). Rules with the same event filter and window count the
/// same events, so they share one sliding window per entity and one expiry timer chain; each
/// rule keeps its threshold and a firing bit. A count moves by one per event, so each rule's
/// threshold is crossed exactly when it would be crossed by a window of its own.
struct FrequencyEvaluator {
    struct Member {
        var rule: Int32
        var selector: Int32
        var threshold: Int
    }
    struct Track {
        var refs = TimedRefs()
        /// The group's rules firing for this entity.
        var firing: UInt64 = 0
        /// Deadline of the expiry timer pending (at the oldest event), or .min.
        var pending: Millis = .min
    }
    /// Rules sharing one filter, window and `by` (at most 64 per group).
    struct Group {
        var filterKey: EventFilter
        var filter: CompiledFilter
        var window: Millis
        /// `by` (spec 1.3, 5b.11): tracks are per (entity, group); nil: per entity.
        var by: TextSource? = nil
        var members: [Member] = []
        var tracks = IntMap<Track>()
    }
    var groups: [Group] = []

    var isEmpty: Bool { groups.isEmpty }

    /// Adds a rule; returns its group.
    mutating func add(rule: Int32, selector: Int32, count: Int, window: Millis, filter: EventFilter, compiled: CompiledFilter, by: TextSource? = nil) -> Int {
        let g: Int
        if let i = groups.firstIndex(where: { $0.filterKey == filter && $0.window == window && $0.by == by && $0.members.count < 64 }) {
            g = i
        } else {
            g = groups.count
            groups.append(Group(filterKey: filter, filter: compiled, window: window, by: by))
        }
        groups[g].members.append(Member(rule: rule, selector: selector, threshold: count))
        return g
    }

    mutating func onEvent(_ ev: Event, ref: EventRef, zones: [Int32], matching: some EntityMatching, texts: inout GroupTexts,
                          emitter: inout Emitter, timers: inout TimerQueue) {
        for g in groups.indices where groups[g].filter.matches(ev, insideZones: zones) {
            let members = groups[g].members
            let applies = matchMask(members, ev.entity, matching) { $0.selector }
            if applies == 0 { continue }
            // With `by`, an event without the field does not count.
            var group: Int32 = -1
            if let by = groups[g].by {
                group = texts.text(ev, by, names: { matching.symbols.names })
                if group < 0 { continue }
            }
            let alertKey: AlertKey = group < 0 ? .entity(ev.entity) : .entityGroup(ev.entity, group)
            let window = groups[g].window
            groups[g].tracks.update(group < 0 ? key(ev.entity) : key(ev.entity, group), default: { Track() }) { tr in
                tr.refs.append(ev.time, ref)
                if tr.pending == .min {
                    tr.pending = ev.time + window
                    timers.schedule(deadline: ev.time + window, rule: members[0].rule, a: ev.entity, b: group)
                }
                let c = tr.refs.count
                var bits = applies & ~tr.firing
                var evidence: [EventRef]? = nil
                while bits != 0 {
                    let j = bits.trailingZeroBitCount
                    bits &= bits - 1
                    guard c >= members[j].threshold else { continue }
                    tr.firing |= 1 << UInt64(j)
                    if evidence == nil { evidence = tr.refs.evidence }
                    emitter.emit(rule: members[j].rule, key: alertKey, firing: true, time: ev.time, evidence: AlertEvidence(evidence!),
                                 details: .number(.count, Double(c)))
                }
            }
        }
    }

    mutating func fire(_ t: EngineTimer, slot g: Int, matching: some EntityMatching, emitter: inout Emitter, timers: inout TimerQueue) {
        let members = groups[g].members
        let window = groups[g].window
        var drop = false
        let k = t.b < 0 ? key(t.a) : key(t.a, t.b)
        let alertKey: AlertKey = t.b < 0 ? .entity(t.a) : .entityGroup(t.a, t.b)
        groups[g].tracks.modify(k) { tr in
            tr.refs.expire(window: window, now: t.deadline)
            let c = tr.refs.count
            var bits = tr.firing
            while bits != 0 {
                let j = bits.trailingZeroBitCount
                bits &= bits - 1
                guard c < members[j].threshold else { continue }
                tr.firing &= ~(1 << UInt64(j))
                emitter.emit(rule: members[j].rule, key: alertKey, firing: false, time: t.deadline, evidence: .none, details: .number(.count, Double(c)))
            }
            if let oldest = tr.refs.oldestTime {
                tr.pending = oldest + window
                timers.schedule(deadline: oldest + window, rule: t.rule, a: t.a, b: t.b)
            } else {
                tr.pending = .min
                drop = true
            }
        }
        if drop { groups[g].tracks.remove(k) }
    }
}
