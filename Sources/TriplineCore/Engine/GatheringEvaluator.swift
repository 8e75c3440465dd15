/// `gathering` (spec section 5.3): for a zone, S(t) is the set of matching entities with an
/// inside position in (t - W, t]. Fires when |S| reaches N from below; resolves when it falls
/// below N, at the expiry that drops it. Key {zone}.
struct GatheringEvaluator {
    struct Presence {
        /// Latest inside position.
        var time: Millis
        var ref: EventRef
        var sequence: UInt64
        /// Deadline of the expiry timer pending for this member, or .min.
        var pending: Millis
    }
    struct Crowd {
        var members = IntMap<Presence>()
        var firing = false
    }
    struct Member {
        var rule: Int32
        var selector: Int32
        var zoneMask: ZoneMask
        var minCount: Int
        var window: Millis
        /// Which membership the rule reads (see `GeofenceEvaluator.Member.view`): a position
        /// counts as inside when that membership is inside after it.
        var view: Int32 = 0
        var crowds = IntMap<Crowd>()
    }
    var rules: [Member] = []
    var sequence: UInt64 = 0

    var isEmpty: Bool { rules.isEmpty }

    mutating func onPosition(_ ev: Event, view: Int32 = 0, ref: EventRef, zones: [Int32], matching: some EntityMatching, emitter: inout Emitter, timers: inout TimerQueue) {
        guard !zones.isEmpty else { return }
        sequence += 1
        let seq = sequence
        for i in rules.indices where rules[i].view == view && matching.matches(ev.entity, rules[i].selector) {
            let rule = rules[i].rule, window = rules[i].window, minCount = rules[i].minCount
            for z in zones where rules[i].zoneMask.contains(z) {
                rules[i].crowds.update(key(z), default: { Crowd() }) { crowd in
                    let isNew = !crowd.members.contains(key(ev.entity))
                    crowd.members.update(key(ev.entity), default: { Presence(time: ev.time, ref: ref, sequence: seq, pending: .min) }) { p in
                        p.time = ev.time
                        p.ref = ref
                        p.sequence = seq
                        if p.pending == .min {
                            p.pending = ev.time + window
                            timers.schedule(deadline: p.pending, rule: rule, a: ev.entity, b: z)
                        }
                    }
                    if isNew && crowd.members.count >= minCount && !crowd.firing {
                        crowd.firing = true
                        let present = crowd.members.entries
                        emitter.emit(rule: rule, key: .zone(z), firing: true, time: ev.time,
                                     evidence: Array(present.map(\.value).sorted { $0.sequence < $1.sequence }.prefix(100).map(\.ref)),
                                     details: Self.details(present.map { Int32(truncatingIfNeeded: $0.key) }, matching))
                    }
                }
            }
        }
    }

    static func details(_ members: [Int32], _ matching: some EntityMatching) -> [(String, DetailValue)] {
        let names = members.map { matching.symbols.entities.string($0) }.sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }
        return [("count", .number(Double(members.count))), ("entities", .strings(names))]
    }

    mutating func fire(_ t: EngineTimer, slot i: Int, matching: some EntityMatching, emitter: inout Emitter, timers: inout TimerQueue) {
        let window = rules[i].window, minCount = rules[i].minCount
        var empty = false
        rules[i].crowds.modify(key(t.b)) { crowd in
            guard let p = crowd.members[key(t.a)] else { return }
            let due = p.time + window
            if due > t.deadline {
                crowd.members.modify(key(t.a)) { $0.pending = due }
                timers.schedule(deadline: due, rule: t.rule, a: t.a, b: t.b)
                return
            }
            crowd.members.remove(key(t.a))
            // Members whose latest inside position leaves the window at this same instant leave
            // together: the transition reports the zone as it is at that time.
            for (k, q) in crowd.members.entries where q.time + window <= t.deadline { crowd.members.remove(k) }
            if crowd.members.count < minCount && crowd.firing {
                crowd.firing = false
                emitter.emit(rule: t.rule, key: .zone(t.b), firing: false, time: t.deadline, evidence: [],
                             details: Self.details(crowd.members.entries.map { Int32(truncatingIfNeeded: $0.key) }, matching))
            }
            empty = crowd.members.isEmpty && !crowd.firing
        }
        if empty { rules[i].crowds.remove(key(t.b)) }
    }
}
