/// `enter` and `exit` (spec section 5.1). The per-(entity, zone) state is shared by every
/// geofence rule: the engine keeps, per entity, the sorted set of zones its latest position
/// is inside, and hands each evaluator the zones entered and exited by a position.
struct GeofenceEvaluator {
    struct Member {
        var rule: Int32
        var selector: Int32
        var zoneMask: ZoneMask
        /// Which membership the rule reads: 0 the plain one, v > 0 `MembershipView` v - 1.
        var view: Int32 = 0
    }
    var enterRules: [Member] = []
    var exitRules: [Member] = []

    var isEmpty: Bool { enterRules.isEmpty && exitRules.isEmpty }

    /// A position moved `entity` into `entered` and out of `exited` (both sorted zone ids) in
    /// membership `view`; `enteredFirst` (views only) gives, per entered zone, the first
    /// position of the run that confirmed the entry, which joins the evidence.
    /// (Mutating, though it changes nothing, and reading the rules by index: a copy of the
    /// evaluator, or of each rule, retained their arrays at every transition.)
    mutating func onTransitions(view: Int32 = 0, entity: Int32, entered: ArraySlice<Int32>, enteredFirst: ArraySlice<EventRef> = [],
                                exited: ArraySlice<Int32>, time: Millis, ref: EventRef,
                                matching: some EntityMatching, emitter: inout Emitter) {
        if !entered.isEmpty {
            for i in enterRules.indices where enterRules[i].view == view && matching.matches(entity, enterRules[i].selector) {
                let rule = enterRules[i].rule
                for (n, z) in zip(entered.indices, entered) where enterRules[i].zoneMask.contains(z) {
                    let first = enteredFirst.isEmpty ? ref : enteredFirst[enteredFirst.startIndex + (n - entered.startIndex)]
                    emitter.emit(rule: rule, key: .entityZone(entity, z), firing: true, time: time, evidence: first == ref ? .one(ref) : .two(first, ref), details: .none)
                }
            }
        }
        if !exited.isEmpty {
            for i in exitRules.indices where exitRules[i].view == view && matching.matches(entity, exitRules[i].selector) {
                let rule = exitRules[i].rule
                for z in exited where exitRules[i].zoneMask.contains(z) {
                    emitter.emit(rule: rule, key: .entityZone(entity, z), firing: true, time: time, evidence: .one(ref), details: .none)
                }
            }
        }
    }
}
