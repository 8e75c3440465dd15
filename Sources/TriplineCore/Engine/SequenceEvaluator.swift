/// `sequence` (spec section 5.8): per entity, events e1 < ... < ek in processing order
/// matching the steps, with time(ek) - time(e1) <= T. For each number of completed steps the
/// evaluator keeps one partial match: the one with the latest start, built from the earliest
/// matching events after that start — O(steps) state per entity. A completing event fires
/// once, clears the entity's partial matches and does not start a new one. Key {entity}.
struct SequenceEvaluator {
    enum Step {
        case enter(ZoneMask)
        case exit(ZoneMask)
        case event(CompiledFilter)
    }
    struct Partial {
        var start: Millis
        /// Processing order of the start event, to tell which start is the latest.
        var startOrder: Int
        var refs: [EventRef]
    }
    struct Member {
        var rule: Int32
        var selector: Int32
        var steps: [Step]
        var within: Millis
        /// Per entity: partial[i] has completed steps 0...i.
        var partials = IntMap<[Partial?]>()
    }
    var rules: [Member] = []

    var isEmpty: Bool { rules.isEmpty }

    static func matches(_ s: Step, _ ev: Event, zones: [Int32], entered: [Int32], exited: [Int32]) -> Bool {
        switch s {
        case .enter(let m): return entered.contains(where: { m.contains($0) })
        case .exit(let m): return exited.contains(where: { m.contains($0) })
        case .event(let f): return f.matches(ev, insideZones: zones)
        }
    }

    mutating func onEvent(_ ev: Event, ref: EventRef, order: Int, zones: [Int32], entered: [Int32], exited: [Int32], matching: some EntityMatching, emitter: inout Emitter) {
        for i in rules.indices where matching.matches(ev.entity, rules[i].selector) {
            let k = rules[i].steps.count
            // Most events of most entities neither extend nor start a match: no state is touched.
            let has = rules[i].partials.contains(key(ev.entity))
            if !has && !Self.matches(rules[i].steps[0], ev, zones: zones, entered: entered, exited: exited) { continue }
            let steps = rules[i].steps, within = rules[i].within, rule = rules[i].rule
            let keep = rules[i].partials.update(key(ev.entity), default: { Array(repeating: nil, count: k - 1) }) { p -> Bool in
                Self.advance(&p, steps: steps, within: within, rule: rule, ev: ev, ref: ref, order: order, zones: zones, entered: entered,
                             exited: exited, emitter: &emitter)
            }
            if !keep { rules[i].partials.remove(key(ev.entity)) }
        }
    }

    /// Applies one event to an entity's partial matches; returns whether any remain.
    static func advance(_ p: inout [Partial?], steps: [Step], within: Millis, rule: Int32, ev: Event, ref: EventRef, order: Int, zones: [Int32],
                        entered: [Int32], exited: [Int32], emitter: inout Emitter) -> Bool {
        let k = steps.count
        let t = ev.time
        // Completion: the latest-start partial that has all but the last step.
        if let last = p[k - 2], t - last.start <= within, matches(steps[k - 1], ev, zones: zones, entered: entered, exited: exited) {
            emitter.emit(rule: rule, key: .entity(ev.entity), firing: true, time: t, evidence: last.refs + [ref],
                         details: [("span_s", .number(Double(t - last.start) / 1000))])
            return false
        }
        // Extensions, from the longest partial down, so that the event serves each partial once.
        if k > 2 {
            for level in stride(from: k - 2, through: 1, by: -1) {
                guard let prev = p[level - 1], t - prev.start <= within,
                      matches(steps[level], ev, zones: zones, entered: entered, exited: exited) else { continue }
                if let cur = p[level], cur.startOrder >= prev.startOrder { continue }
                p[level] = Partial(start: prev.start, startOrder: prev.startOrder, refs: prev.refs + [ref])
            }
        }
        if matches(steps[0], ev, zones: zones, entered: entered, exited: exited) {
            p[0] = Partial(start: t, startOrder: order, refs: [ref])
        }
        // Partials that can no longer complete in time are dropped.
        var any = false
        for level in 0..<(k - 1) {
            if let q = p[level], t - q.start > within { p[level] = nil }
            if p[level] != nil { any = true }
        }
        return any
    }
}
