/// `gathering` (spec section 5.3): for a zone, S(t) is the set of matching entities with an
/// inside position in (t - W, t]. Fires when |S| reaches N from below; resolves when it falls
/// below N, at the expiry that drops it. Key {zone}.
struct GatheringEvaluator {
    struct Presence {
        /// Latest inside position.
        var time: Millis
        var ref: EventRef
        var sequence: UInt64
        /// Deadline of the expiry timer pending for this member.
        var pending: Millis
    }
    struct Member {
        var rule: Int32
        var selector: Int32
        var zoneMask: ZoneMask
        var minCount: Int
        var window: Millis
        /// Per zone, the members in the window.
        var present: [Int32: [Int32: Presence]] = [:]
        var firing: Set<Int32> = []
    }
    var rules: [Member] = []
    var slot: [Int32: Int] = [:]
    var sequence: UInt64 = 0

    var isEmpty: Bool { rules.isEmpty }

    mutating func onPosition(_ ev: Event, ref: EventRef, zones: [Int32], engine: Engine, emitter: inout Emitter, timers: inout TimerQueue) {
        guard !zones.isEmpty else { return }
        sequence += 1
        for i in rules.indices where engine.matches(ev.entity, rules[i].selector) {
            for z in zones where rules[i].zoneMask.contains(z) {
                var members = rules[i].present[z] ?? [:]
                let isNew = members[ev.entity] == nil
                var p = members[ev.entity] ?? Presence(time: ev.time, ref: ref, sequence: sequence, pending: .min)
                p.time = ev.time
                p.ref = ref
                p.sequence = sequence
                if p.pending == .min {
                    p.pending = ev.time + rules[i].window
                    timers.schedule(deadline: p.pending, rule: rules[i].rule, a: ev.entity, b: z)
                }
                members[ev.entity] = p
                rules[i].present[z] = members
                if isNew && members.count >= rules[i].minCount && !rules[i].firing.contains(z) {
                    rules[i].firing.insert(z)
                    emitter.emit(rule: rules[i].rule, key: .zone(z), firing: true, time: ev.time,
                                 evidence: Array(members.values.sorted { $0.sequence < $1.sequence }.prefix(100).map(\.ref)),
                                 details: details(members, engine))
                }
            }
        }
    }

    func details(_ members: [Int32: Presence], _ engine: Engine) -> [(String, DetailValue)] {
        let names = members.keys.map { engine.symbols.entities.string($0) }.sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }
        return [("count", .number(Double(members.count))), ("entities", .strings(names))]
    }

    mutating func fire(_ t: EngineTimer, engine: Engine, emitter: inout Emitter, timers: inout TimerQueue) {
        guard let i = slot[t.rule], var members = rules[i].present[t.b], var p = members[t.a] else { return }
        let due = p.time + rules[i].window
        if due > t.deadline {
            p.pending = due
            members[t.a] = p
            rules[i].present[t.b] = members
            timers.schedule(deadline: due, rule: t.rule, a: t.a, b: t.b)
            return
        }
        members[t.a] = nil
        // Members whose latest inside position leaves the window at this same instant leave
        // together: the transition reports the zone as it is at that time.
        for (e, q) in members where q.time + rules[i].window <= t.deadline { members[e] = nil }
        rules[i].present[t.b] = members.isEmpty ? nil : members
        if members.count < rules[i].minCount && rules[i].firing.contains(t.b) {
            rules[i].firing.remove(t.b)
            emitter.emit(rule: t.rule, key: .zone(t.b), firing: false, time: t.deadline, evidence: [], details: details(members, engine))
        }
    }
}
