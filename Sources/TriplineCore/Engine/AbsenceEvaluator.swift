/// `absence` (spec section 5.9): for an entity seen at least once, fires at last_seen + D
/// when no matching event came in between, and resolves at the next matching event.
/// Key {entity}.
///
/// Rules with the same event filter see the same events, so they form one group that keeps
/// one record per entity (last seen, a firing bit per rule) and one pending timer per entity,
/// at the earliest deadline among its rules that are not firing: a matching event costs one
/// lookup however many durations and selectors the group has.
struct AbsenceEvaluator {
    /// 32 bytes, a 40-byte table slot (it was 40 and 48 with 64-bit masks, when a group took
    /// up to 64 rules).
    struct Seen {
        var time: Millis
        var ref: EventRef
        /// The group's rules that apply to this entity (selectors are fixed per entity).
        var members: UInt32
        /// Of those, the ones firing.
        var firing: UInt32
        /// Deadline of the timer pending for this entity (one at a time), or .min.
        var pending: Millis
    }
    struct Member {
        var rule: Int32
        var selector: Int32
        var duration: Millis
    }
    /// Rules sharing one filter (at most 32 per group: more make another group).
    struct Group {
        var filterKey: EventFilter?
        var filter: CompiledFilter?
        var members: [Member] = []
        var seen = IntMap<Seen>()
    }
    var groups: [Group] = []

    var isEmpty: Bool { groups.isEmpty }

    /// Adds a rule; returns its group.
    mutating func add(rule: Int32, selector: Int32, duration: Millis, filter: EventFilter?, compiled: CompiledFilter?) -> Int {
        let g: Int
        if let i = groups.firstIndex(where: { $0.filterKey == filter && $0.members.count < 32 }) {
            g = i
        } else {
            g = groups.count
            groups.append(Group(filterKey: filter, filter: compiled))
        }
        groups[g].members.append(Member(rule: rule, selector: selector, duration: duration))
        return g
    }

    /// The earliest deadline among `candidates` counted from `from`.
    @inline(__always)
    static func earliest(_ members: [Member], _ candidates: UInt32, from: Millis) -> Millis {
        var best = Millis.max
        var bits = candidates
        while bits != 0 {
            let j = bits.trailingZeroBitCount
            bits &= bits - 1
            best = Swift.min(best, from + members[j].duration)
        }
        return best
    }

    mutating func onEvent(_ ev: Event, ref: EventRef, zones: [Int32], matching: some EntityMatching, emitter: inout Emitter, timers: inout TimerQueue) {
        for g in groups.indices {
            if let f = groups[g].filter, !f.matches(ev, insideZones: zones) { continue }
            let members = groups[g].members
            // Which rules apply to this entity (bits of its own record: no lookup for entities
            // that no rule of the group is about).
            var applies: UInt32 = 0
            for (j, m) in members.enumerated() where matching.matches(ev.entity, m.selector) { applies |= 1 << UInt32(j) }
            if applies == 0 { continue }
            let k = key(ev.entity)
            // First sighting.
            if !groups[g].seen.contains(k) {
                let deadline = Self.earliest(members, applies, from: ev.time)
                groups[g].seen.insert(k, Seen(time: ev.time, ref: ref, members: applies, firing: 0, pending: deadline))
                timers.schedule(deadline: deadline, rule: members[0].rule, a: ev.entity)
                continue
            }
            groups[g].seen.modify(k) { s in
                if s.firing != 0 {
                    let details = AlertDetails.number(.silentS, Double(ev.time - s.time) / 1000)
                    var bits = s.firing
                    while bits != 0 {
                        let j = bits.trailingZeroBitCount
                        bits &= bits - 1
                        emitter.emit(rule: members[j].rule, key: .entity(ev.entity), firing: false, time: ev.time, evidence: .one(ref), details: details)
                    }
                    s.firing = 0
                }
                s.time = ev.time
                s.ref = ref
                // A pending timer is moved on when it fires; schedule only when none is pending
                // or when it is later than the earliest deadline now (a rule that was firing
                // has a shorter duration than the one the timer waits for). The later timer
                // then finds itself stale.
                let earliest = Self.earliest(members, s.members, from: ev.time)
                if s.pending == .min || earliest < s.pending {
                    s.pending = earliest
                    timers.schedule(deadline: earliest, rule: members[0].rule, a: ev.entity)
                }
            }
        }
    }

    mutating func fire(_ t: EngineTimer, slot g: Int, matching: some EntityMatching, emitter: inout Emitter, timers: inout TimerQueue) {
        let members = groups[g].members
        groups[g].seen.modify(key(t.a)) { s in
            // Superseded by an earlier timer (which moved `pending` on).
            guard t.deadline == s.pending else { return }
            // Rules whose silence ends now fire; the timer moves to the next deadline of a rule
            // not firing (later when the entity was seen since it was set).
            var bits = s.members & ~s.firing
            var next = Millis.max
            while bits != 0 {
                let j = bits.trailingZeroBitCount
                bits &= bits - 1
                let due = s.time + members[j].duration
                if due <= t.deadline {
                    s.firing |= 1 << UInt32(j)
                    emitter.emit(rule: members[j].rule, key: .entity(t.a), firing: true, time: t.deadline, evidence: .one(s.ref),
                                 details: .number(.silentS, Double(members[j].duration) / 1000))
                } else {
                    next = Swift.min(next, due)
                }
            }
            if next == .max {
                s.pending = .min
            } else {
                s.pending = next
                timers.schedule(deadline: next, rule: t.rule, a: t.a)
            }
        }
    }
}
