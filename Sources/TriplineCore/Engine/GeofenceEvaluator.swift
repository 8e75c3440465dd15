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
    func onTransitions(view: Int32 = 0, entity: Int32, entered: ArraySlice<Int32>, enteredFirst: ArraySlice<EventRef> = [],
                       exited: ArraySlice<Int32>, time: Millis, ref: EventRef,
                       matching: some EntityMatching, emitter: inout Emitter) {
        if !entered.isEmpty {
            for m in enterRules where m.view == view && matching.matches(entity, m.selector) {
                for (n, z) in zip(entered.indices, entered) where m.zoneMask.contains(z) {
                    let first = enteredFirst.isEmpty ? ref : enteredFirst[enteredFirst.startIndex + (n - entered.startIndex)]
                    emitter.emit(rule: m.rule, key: .entityZone(entity, z), firing: true, time: time, evidence: first == ref ? .one(ref) : .two(first, ref), details: .none)
                }
            }
        }
        if !exited.isEmpty {
            for m in exitRules where m.view == view && matching.matches(entity, m.selector) {
                for z in exited where m.zoneMask.contains(z) {
                    emitter.emit(rule: m.rule, key: .entityZone(entity, z), firing: true, time: time, evidence: .one(ref), details: .none)
                }
            }
        }
    }
}
