/// `sequence` (spec section 5.8, and 5b.13 for negated steps): per entity, events
/// e1 < ... < ek in processing order matching the positive steps, with
/// time(ek) - time(e1) <= T. Among candidate starts the latest counts and each later step
/// takes the earliest matching event after the previous one.
///
/// For each number of completed positive steps the evaluator keeps one partial match: the
/// one with the latest start — O(steps) state per entity. This is exact because two partials
/// waiting for the same step have the same future (the same events extend them and the same
/// forbidden events drop them), and the later start is never worse for `within`. A partial
/// that an event extends moves up a level (its own chain took that event, so it does not stay
/// behind to take a later one); a partial waiting for positive step i+1 is dropped by an event
/// satisfying a negated step between i and i+1 that does not extend it.
///
/// Without a trailing negated step a completing event fires once, clears the entity's
/// partial matches and does not start a new one. With `{absent: S, for: D}` last, completing
/// the positive steps makes a match pending until time(ek) + D (a timer). An event satisfying
/// S cancels every pending match it follows; the first pending match to reach its deadline
/// fires, and every partial and pending match of the entity is cleared. Since every pending
/// match has the same D, the earliest one has the earliest deadline and any event that
/// cancels it cancels all later ones too; so only the earliest is kept.
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
    struct Pending {
        var start: Millis
        var deadline: Millis
        var refs: [EventRef]
    }
    struct State {
        /// partials[i] has completed positive steps 0...i.
        var partials: [Partial?]
        var pending: Pending? = nil
        var generation: UInt32 = 0
    }
    /// A rule's steps (kept apart from its state, so that reading them does not share the
    /// state's storage while it is updated). A class, never changed after the rule is added:
    /// taking it for an event retains one object, where copying a struct retained each of its
    /// step lists and filters.
    final class Spec: Sendable {
        let rule: Int32
        /// The positive steps, in order.
        let steps: [Step]
        /// forbidden[i]: the negated steps between positive step i and i + 1.
        let forbidden: [[Step]]
        /// The trailing negated step and its deadline.
        let trailing: (step: Step, deadline: Millis)?
        let within: Millis

        init(rule: Int32, steps: [Step], forbidden: [[Step]], trailing: (step: Step, deadline: Millis)?, within: Millis) {
            self.rule = rule
            self.steps = steps
            self.forbidden = forbidden
            self.trailing = trailing
            self.within = within
        }

        /// Does `ev` satisfy the first positive step?
        @inline(__always)
        func startsAt(_ ev: Event, zones: [Int32], entered: [Int32], exited: [Int32]) -> Bool {
            steps.withUnsafeBufferPointer { SequenceEvaluator.matches($0[0], ev, zones: zones, entered: entered, exited: exited) }
        }
    }
    struct Member {
        var spec: Spec
        var selector: Int32
        /// Which membership enter and exit steps read (see `GeofenceEvaluator.Member.view`).
        var view: Int32 = 0
        var states = IntMap<State>()
    }
    var rules: [Member] = []
    /// Which rules have a state for which entity, kept in step with the rules' `states`: per
    /// entity id, `liveStride` bytes, bit i for rule i. Most events of most entities neither
    /// extend nor start a match; for them the evaluator reads the entity's bits, one cache line
    /// for all its rules, instead of probing each rule's table (a cache miss per rule) or a
    /// bit array per rule (a line per rule). 1 byte per entity id for up to 8 sequence rules.
    var live: [UInt8] = []
    var liveStride = 0

    var isEmpty: Bool { rules.isEmpty }

    @inline(__always)
    func hasState(_ rule: Int, _ e: Int32) -> Bool {
        let i = Int(e) * liveStride + rule >> 3
        return i < live.count && (live[i] >> UInt8(rule & 7)) & 1 != 0
    }

    @inline(__always)
    mutating func setHasState(_ rule: Int, _ e: Int32, _ on: Bool) {
        let i = Int(e) * liveStride + rule >> 3
        if i >= live.count {
            if !on { return }
            // Grown by an eighth at a time (not doubled): one byte per entity id and 8 rules.
            let n = Swift.max((Int(e) + 1) * liveStride, live.count + live.count / 8)
            live.reserveCapacity(n)
            live.append(contentsOf: repeatElement(0, count: n - live.count))
        }
        let bit: UInt8 = 1 << UInt8(rule & 7)
        // Written only when it changes (a write checks the array's uniqueness).
        if (live[i] & bit != 0) == on { return }
        if on { live[i] |= bit } else { live[i] &= ~bit }
    }

    /// Adds a rule from its compiled steps (positive and negated, in the rule's order).
    mutating func add(rule: Int32, selector: Int32, steps: [(Step, negated: Bool, deadline: Millis?)], within: Millis?, view: Int32 = 0) -> Int {
        var positives: [Step] = [], forbidden: [[Step]] = [], trailing: (Step, Millis)?
        for (s, negated, deadline) in steps {
            if !negated {
                positives.append(s)
                forbidden.append([])
            } else if let deadline {
                trailing = (s, deadline)
            } else {
                forbidden[forbidden.count - 1].append(s)
            }
        }
        forbidden.removeLast()
        rules.append(Member(spec: Spec(rule: rule, steps: positives, forbidden: forbidden, trailing: trailing, within: within ?? .max), selector: selector, view: view))
        // Rules are added when the engine is built, before any state exists.
        precondition(live.isEmpty, "sequence rules are added before any event")
        liveStride = (rules.count + 7) / 8
        return rules.count - 1
    }

    static func matches(_ s: Step, _ ev: Event, zones: [Int32], entered: [Int32], exited: [Int32]) -> Bool {
        switch s {
        case .enter(let m): return entered.contains(where: { m.contains($0) })
        case .exit(let m): return exited.contains(where: { m.contains($0) })
        case .event(let f): return f.matches(ev, insideZones: zones)
        }
    }

    /// `views` holds what this event did to each steadied membership (empty for events that
    /// are not positions).
    mutating func onEvent(_ ev: Event, ref: EventRef, order: Int, zones: [Int32], entered plainEntered: [Int32], exited plainExited: [Int32],
                          views: [MembershipView], matching: some EntityMatching,
                          emitter: inout Emitter, timers: inout TimerQueue) {
        for i in rules.indices where matching.matches(ev.entity, rules[i].selector) {
            let v = Int(rules[i].view)
            let entered = v == 0 ? plainEntered : views.isEmpty ? [] : views[v - 1].entered
            let exited = v == 0 ? plainExited : views.isEmpty ? [] : views[v - 1].exited
            // Most events of most entities neither extend nor start a match: no state is touched.
            assert(hasState(i, ev.entity) == rules[i].states.contains(key(ev.entity)), "the live bits follow the state tables")
            // (The first step is read in place: copying the rule's steps out retained them.)
            if !hasState(i, ev.entity) && !rules[i].spec.startsAt(ev, zones: zones, entered: entered, exited: exited) { continue }
            let m = rules[i].spec
            let k = m.steps.count
            let keep = rules[i].states.update(key(ev.entity), default: { State(partials: Array(repeating: nil, count: k - 1)) }) { st -> Bool in
                Self.advance(&st, m, ev: ev, ref: ref, order: order, zones: zones, entered: entered, exited: exited, emitter: &emitter, timers: &timers)
            }
            if !keep { rules[i].states.remove(key(ev.entity)) }
            setHasState(i, ev.entity, keep)
        }
    }

    /// Applies one event to an entity's matches; returns whether any partial or pending remains.
    static func advance(_ st: inout State, _ m: Spec, ev: Event, ref: EventRef, order: Int, zones: [Int32], entered: [Int32], exited: [Int32],
                        emitter: inout Emitter, timers: inout TimerQueue) -> Bool {
        let k = m.steps.count, within = m.within, t = ev.time
        func hit(_ s: Step) -> Bool { matches(s, ev, zones: zones, entered: entered, exited: exited) }
        func forbidden(_ level: Int) -> Bool { m.forbidden[level].contains(where: hit) }
        // An event satisfying the trailing negated step cancels the pending match it follows.
        if let tr = m.trailing, st.pending != nil, hit(tr.step) { st.pending = nil }
        func complete(start: Millis, refs: [EventRef]) -> Bool {
            guard let tr = m.trailing else {
                emitter.emit(rule: m.rule, key: .entity(ev.entity), firing: true, time: t, evidence: AlertEvidence(refs),
                             details: .number(.spanS, Double(t - start) / 1000))
                return true
            }
            if st.pending == nil {
                st.generation &+= 1
                st.pending = Pending(start: start, deadline: t + tr.deadline, refs: refs)
                timers.schedule(deadline: t + tr.deadline, rule: m.rule, a: ev.entity, generation: st.generation)
            }
            return false
        }
        if k == 1 {
            if hit(m.steps[0]) && complete(start: t, refs: [ref]) { return false }
            return st.pending != nil
        }
        // Completion: the latest-start partial that has all but the last positive step.
        if let last = st.partials[k - 2] {
            if hit(m.steps[k - 1]) {
                st.partials[k - 2] = nil
                if t - last.start <= within && complete(start: last.start, refs: last.refs + [ref]) { return false }
            } else if forbidden(k - 2) {
                st.partials[k - 2] = nil
            }
        }
        // Extensions, from the longest partial down, so that the event serves each partial once.
        if k > 2 {
            for level in stride(from: k - 2, through: 1, by: -1) {
                guard let prev = st.partials[level - 1] else { continue }
                if hit(m.steps[level]) {
                    st.partials[level - 1] = nil
                    guard t - prev.start <= within else { continue }
                    if let cur = st.partials[level], cur.startOrder >= prev.startOrder { continue }
                    st.partials[level] = Partial(start: prev.start, startOrder: prev.startOrder, refs: prev.refs + [ref])
                } else if forbidden(level - 1) {
                    st.partials[level - 1] = nil
                }
            }
        }
        if hit(m.steps[0]) {
            st.partials[0] = Partial(start: t, startOrder: order, refs: [ref])
        }
        // Partials that can no longer complete in time are dropped.
        var any = st.pending != nil
        for level in 0..<(k - 1) {
            if let q = st.partials[level], t - q.start > within { st.partials[level] = nil }
            if st.partials[level] != nil { any = true }
        }
        return any
    }

    /// A pending match's deadline: it fires when still pending, and the entity's matches are
    /// cleared.
    mutating func fire(_ t: EngineTimer, slot: Int, matching: some EntityMatching, emitter: inout Emitter, timers: inout TimerQueue) {
        let rule = rules[slot].spec.rule
        var clear = false
        rules[slot].states.modify(key(t.a)) { st in
            guard let p = st.pending, p.deadline == t.deadline, st.generation == t.generation else { return }
            emitter.emit(rule: rule, key: .entity(t.a), firing: true, time: t.deadline, evidence: AlertEvidence(p.refs),
                         details: .number(.spanS, Double(t.deadline - p.start) / 1000))
            clear = true
        }
        if clear {
            rules[slot].states.remove(key(t.a))
            setHasState(slot, t.a, false)
        }
    }
}
