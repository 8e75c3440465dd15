/// `dwell` (spec section 5.2): a visit starts at the first inside position after a state
/// other than inside and ends at the first outside position; the rule fires at start + min
/// unless the visit ended before then, and resolves at the exit. Key {entity, zone}.
struct DwellEvaluator {
    struct Visit {
        var start: Millis
        var ref: EventRef
        var generation: UInt32
        var fired: Bool
    }
    struct Member {
        var rule: Int32
        var selector: Int32
        var zoneMask: ZoneMask
        var min: Millis
        /// Which membership the rule reads (see `GeofenceEvaluator.Member.view`).
        var view: Int32 = 0
        /// Open visits by entity << 32 | zone.
        var visits = IntMap<Visit>()
        var generation: UInt32 = 0
    }
    var rules: [Member] = []

    var isEmpty: Bool { rules.isEmpty }

    mutating func onTransitions(view: Int32 = 0, entity: Int32, entered: ArraySlice<Int32>, exited: ArraySlice<Int32>, time: Millis, ref: EventRef,
                                matching: some EntityMatching, emitter: inout Emitter, timers: inout TimerQueue) {
        for i in rules.indices where rules[i].view == view && matching.matches(entity, rules[i].selector) {
            for z in exited where rules[i].zoneMask.contains(z) {
                if let v = rules[i].visits.remove(key(entity, z)), v.fired {
                    emitter.emit(rule: rules[i].rule, key: .entityZone(entity, z), firing: false, time: time, evidence: .one(ref),
                                 details: .number(.dwellS, Double(time - v.start) / 1000))
                }
            }
            for z in entered where rules[i].zoneMask.contains(z) {
                rules[i].generation &+= 1
                let g = rules[i].generation
                rules[i].visits.insert(key(entity, z), Visit(start: time, ref: ref, generation: g, fired: false))
                timers.schedule(deadline: time + rules[i].min, rule: rules[i].rule, a: entity, b: z, generation: g)
            }
        }
    }

    mutating func fire(_ t: EngineTimer, slot i: Int, matching: some EntityMatching, emitter: inout Emitter, timers: inout TimerQueue) {
        let min = rules[i].min
        rules[i].visits.modify(key(t.a, t.b)) { v in
            guard v.generation == t.generation, !v.fired else { return }
            v.fired = true
            emitter.emit(rule: t.rule, key: .entityZone(t.a, t.b), firing: true, time: t.deadline, evidence: .one(v.ref),
                         details: .number(.dwellS, Double(min) / 1000))
        }
    }
}
