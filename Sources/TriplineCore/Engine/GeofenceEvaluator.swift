/// `enter` and `exit` (spec section 5.1). The per-(entity, zone) state is shared by every
/// geofence rule: the engine keeps, per entity, the sorted set of zones its latest position
/// is inside, and hands each evaluator the zones entered and exited by a position.
struct GeofenceEvaluator {
    struct Member {
        var rule: Int32
        var selector: Int32
        var zoneMask: ZoneMask
    }
    var enterRules: [Member] = []
    var exitRules: [Member] = []

    var isEmpty: Bool { enterRules.isEmpty && exitRules.isEmpty }

    /// A position moved `entity` into `entered` and out of `exited` (both sorted zone ids).
    func onTransitions(entity: Int32, entered: ArraySlice<Int32>, exited: ArraySlice<Int32>, time: Millis, ref: EventRef,
                       matching: some EntityMatching, emitter: inout Emitter) {
        if !entered.isEmpty {
            for m in enterRules where matching.matches(entity, m.selector) {
                for z in entered where m.zoneMask.contains(z) {
                    emitter.emit(rule: m.rule, key: .entityZone(entity, z), firing: true, time: time, evidence: [ref], details: [])
                }
            }
        }
        if !exited.isEmpty {
            for m in exitRules where matching.matches(entity, m.selector) {
                for z in exited where m.zoneMask.contains(z) {
                    emitter.emit(rule: m.rule, key: .entityZone(entity, z), firing: true, time: time, evidence: [ref], details: [])
                }
            }
        }
    }
}
