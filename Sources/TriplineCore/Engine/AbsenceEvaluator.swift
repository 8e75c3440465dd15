/// `absence` (spec section 5.9): for an entity seen at least once, fires at last_seen + D
/// when no matching event came in between, and resolves at the next matching event.
/// Key {entity}.
struct AbsenceEvaluator {
    struct Seen {
        var time: Millis
        var ref: EventRef
        var firing: Bool
        /// Deadline of the timer pending for this entity (one at a time), or .min.
        var pending: Millis
    }
    struct Member {
        var rule: Int32
        var selector: Int32
        var duration: Millis
        var filter: CompiledFilter?
        var seen = IntMap<Seen>()
    }
    var rules: [Member] = []

    var isEmpty: Bool { rules.isEmpty }

    mutating func onEvent(_ ev: Event, ref: EventRef, zones: [Int32], engine: Engine, emitter: inout Emitter, timers: inout TimerQueue) {
        for i in rules.indices where engine.matches(ev.entity, rules[i].selector) {
            if let f = rules[i].filter, !f.matches(ev, insideZones: zones) { continue }
            let rule = rules[i].rule
            let deadline = ev.time + rules[i].duration
            rules[i].seen.update(key(ev.entity), default: { Seen(time: ev.time, ref: ref, firing: false, pending: .min) }) { s in
                if s.firing {
                    emitter.emit(rule: rule, key: .entity(ev.entity), firing: false, time: ev.time, evidence: [ref],
                                 details: [("silent_s", .number(Double(ev.time - s.time) / 1000))])
                    s.firing = false
                }
                s.time = ev.time
                s.ref = ref
                // A pending timer is moved on when it fires; schedule only when none is pending.
                if s.pending == .min {
                    s.pending = deadline
                    timers.schedule(deadline: deadline, rule: rule, a: ev.entity)
                }
            }
        }
    }

    mutating func fire(_ t: EngineTimer, slot i: Int, emitter: inout Emitter, timers: inout TimerQueue) {
        let duration = rules[i].duration
        rules[i].seen.modify(key(t.a)) { s in
            let due = s.time + duration
            if due > t.deadline {
                // Seen again since: the silence now ends later.
                s.pending = due
                timers.schedule(deadline: due, rule: t.rule, a: t.a)
            } else {
                s.pending = .min
                if !s.firing {
                    s.firing = true
                    emitter.emit(rule: t.rule, key: .entity(t.a), firing: true, time: t.deadline, evidence: [s.ref],
                                 details: [("silent_s", .number(Double(duration) / 1000))])
                }
            }
        }
    }
}
