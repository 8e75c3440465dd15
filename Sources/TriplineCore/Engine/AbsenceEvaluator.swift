/// `absence` (spec section 5.9): for an entity seen at least once, fires at last_seen + D
/// when no matching event came in between, and resolves at the next matching event.
/// Key {entity}.
struct AbsenceEvaluator {
    struct Seen {
        var time: Millis
        var ref: EventRef
        var firing: Bool
        /// Deadline of the timer already pending for this entity (one at a time).
        var pending: Millis
    }
    struct Member {
        var rule: Int32
        var selector: Int32
        var duration: Millis
        var filter: CompiledFilter?
        var seen: [Int32: Seen] = [:]
    }
    var rules: [Member] = []
    var slot: [Int32: Int] = [:]

    var isEmpty: Bool { rules.isEmpty }

    mutating func onEvent(_ ev: Event, ref: EventRef, zones: [Int32], engine: Engine, emitter: inout Emitter, timers: inout TimerQueue) {
        for i in rules.indices where engine.matches(ev.entity, rules[i].selector) {
            if let f = rules[i].filter, !f.matches(ev, insideZones: zones) { continue }
            let deadline = ev.time + rules[i].duration
            if var s = rules[i].seen[ev.entity] {
                if s.firing {
                    emitter.emit(rule: rules[i].rule, key: .entity(ev.entity), firing: false, time: ev.time, evidence: [ref],
                                 details: [("silent_s", .number(Double(ev.time - s.time) / 1000))])
                    s.firing = false
                }
                s.time = ev.time
                s.ref = ref
                // A pending timer is moved on when it fires; schedule only when none is pending.
                if s.pending == .min {
                    s.pending = deadline
                    timers.schedule(deadline: deadline, rule: rules[i].rule, a: ev.entity)
                }
                rules[i].seen[ev.entity] = s
            } else {
                rules[i].seen[ev.entity] = Seen(time: ev.time, ref: ref, firing: false, pending: deadline)
                timers.schedule(deadline: deadline, rule: rules[i].rule, a: ev.entity)
            }
        }
    }

    mutating func fire(_ t: EngineTimer, emitter: inout Emitter, timers: inout TimerQueue) {
        guard let i = slot[t.rule], var s = rules[i].seen[t.a] else { return }
        let due = s.time + rules[i].duration
        if due > t.deadline {
            // Seen again since: the silence now ends later.
            s.pending = due
            timers.schedule(deadline: due, rule: t.rule, a: t.a)
        } else {
            s.pending = .min
            if !s.firing {
                s.firing = true
                emitter.emit(rule: t.rule, key: .entity(t.a), firing: true, time: t.deadline, evidence: [s.ref],
                             details: [("silent_s", .number(Double(rules[i].duration) / 1000))])
            }
        }
        rules[i].seen[t.a] = s
    }
}
