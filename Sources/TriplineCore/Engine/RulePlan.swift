/// The rule compiler: turns a catalog's rules into what the engine runs, once. Rules with the
/// same definition share one evaluation (the emitter fans its transitions out to each, with
/// its own id, cooldown and expiry); entity selectors are numbered so that each entity's
/// matches are bits; each rule goes to its kind's evaluator, and zone selectors become zone
/// masks.
struct RulePlan {
    let rules: [Rule]
    /// The distinct entity selectors; evaluators refer to them by number.
    let selectors: [Selector]
    let ruleKinds: [RuleKind]
    /// Position of each rule inside its kind's evaluator (-1 for kinds without timers).
    let ruleSlot: [Int]
    /// Does any rule look at zones (so positions are looked up in the zone index)?
    let needsZones: Bool
    /// For each evaluated rule, the rules that share its definition (itself first).
    let fanout: [[Int32]]
    let distinctDefinitions: Int
    /// Canonical ranks (code point order of ids) of zones and rules.
    let zoneRank: [Int32]
    let ruleRank: [Int32]
    /// Rule expiries: (expires, rule).
    let expiries: [(Millis, Int32)]

    /// The evaluators with their rules and empty state.
    var evaluators = Evaluators()

    /// Compiles `rules` over `zones`; names the rules mention (metrics, event types,
    /// attribute values) are interned into `symbols`.
    init(rules: [Rule], zones: [Zone], symbols syms: inout Symbols) {
        self.rules = rules
        let masks = ZoneMaskMemo(zones)
        var sels: [Selector] = []
        var selIndex: [Selector: Int32] = [:]
        func sel(_ s: Selector) -> Int32 {
            if let i = selIndex[s] { return i }
            let i = Int32(sels.count)
            sels.append(s)
            selIndex[s] = i
            return i
        }
        struct Definition: Hashable {
            var parameters: RuleParameters
            var match: Selector
            var zones: Selector?
            var jitter: ZoneJitter?
        }
        var firstWith: [Definition: Int] = [:]
        var evaluatedAs = Array(0..<rules.count)
        var fanout: [[Int32]] = Array(repeating: [], count: rules.count)
        for (i, r) in rules.enumerated() {
            let d = Definition(parameters: r.parameters, match: r.match, zones: r.zones, jitter: r.jitter)
            if let j = firstWith[d] { evaluatedAs[i] = j } else { firstWith[d] = i }
            fanout[evaluatedAs[i]].append(Int32(i))
        }
        self.fanout = fanout
        self.distinctDefinitions = firstWith.count
        self.ruleKinds = rules.map(\.kind)
        var slots = Array(repeating: -1, count: rules.count)
        var zonesNeeded = false
        // One steadied membership per distinct `enter_after` / `exit_margin_m` (view 0 is the plain one).
        var viewOf: [ZoneJitter: Int32] = [:]
        let shapes = zones.map(\.shape)
        for (i, r) in rules.enumerated() where evaluatedAs[i] == i {
            let ri = Int32(i)
            let s = sel(r.match)
            var view: Int32 = 0
            if let j = r.jitter, !j.isDefault {
                if let v = viewOf[j] {
                    view = v
                } else {
                    evaluators.views.append(MembershipView(jitter: j, shapes: shapes))
                    view = Int32(evaluators.views.count)
                    viewOf[j] = view
                }
            }
            switch r.parameters {
            case .enter:
                evaluators.geofence.enterRules.append(.init(rule: ri, selector: s, zoneMask: masks.mask(r.zones), view: view))
                zonesNeeded = true
            case .exit:
                evaluators.geofence.exitRules.append(.init(rule: ri, selector: s, zoneMask: masks.mask(r.zones), view: view))
                zonesNeeded = true
            case .speed(let v):
                evaluators.speed.rules.append(.init(rule: ri, selector: s, maxKmh: v))
            case .dwell(let min):
                slots[i] = evaluators.dwell.rules.count
                evaluators.dwell.rules.append(.init(rule: ri, selector: s, zoneMask: masks.mask(r.zones), min: min, view: view))
                zonesNeeded = true
            case .gathering(let n, let w):
                slots[i] = evaluators.gathering.rules.count
                evaluators.gathering.rules.append(.init(rule: ri, selector: s, zoneMask: masks.mask(r.zones), minCount: n, window: w, view: view))
                zonesNeeded = true
            case .proximity(let d, let w, let other):
                slots[i] = evaluators.proximity.rules.count
                evaluators.proximity.add(rule: ri, match: s, other: other.map(sel) ?? s, distance: d, window: w)
            case .frequency(let k, let w, let f, let by):
                let cf = CompiledFilter(f, symbols: &syms, masks: masks)
                zonesNeeded = zonesNeeded || cf.needsZones
                slots[i] = evaluators.frequency.add(rule: ri, selector: s, count: k, window: w, filter: f, compiled: cf, by: by.map { textSource($0, &syms) })
            case .aggregate(let fn, let of, let w, let f, let bound, let by):
                let cf = CompiledFilter(f, symbols: &syms, masks: masks)
                zonesNeeded = zonesNeeded || cf.needsZones
                let source: AggregateSource
                switch of {
                case .value: source = .value
                case .counterpart: source = .counterpart
                case .attr(let a): source = .attr(syms.names.intern(a))
                }
                slots[i] = evaluators.aggregate.add(rule: ri, selector: s, fn: fn, source: source, window: w, filter: f, compiled: cf, bound: bound,
                                                    by: by.map { textSource($0, &syms) })
            case .novelty(let k, let w, let h, let cp):
                slots[i] = evaluators.novelty.add(rule: ri, selector: s, count: k, window: w, lookback: h, prefix: cp?.prefix, notPrefix: cp?.notPrefix)
            case .threshold(let metric, let c):
                evaluators.threshold.add(rule: ri, selector: s, metric: syms.names.intern(metric), condition: c)
            case .sequence(let steps, let within):
                func compile(_ step: SequenceStep) -> SequenceEvaluator.Step {
                    switch step {
                    case .enter(let z): zonesNeeded = true; return .enter(masks.mask(z))
                    case .exit(let z): zonesNeeded = true; return .exit(masks.mask(z))
                    case .event(let f):
                        let cf = CompiledFilter(f, symbols: &syms, masks: masks)
                        zonesNeeded = zonesNeeded || cf.needsZones
                        return .event(cf)
                    case .absent(let inner, _): return compile(inner)
                    }
                }
                let compiled = steps.map { st -> (SequenceEvaluator.Step, negated: Bool, deadline: Millis?) in
                    if case .absent(let inner, let d) = st { return (compile(inner), true, d) }
                    return (compile(st), false, nil)
                }
                slots[i] = evaluators.sequence.add(rule: ri, selector: s, steps: compiled, within: within, view: view)
            case .absence(let d, let f):
                let cf = f.map { CompiledFilter($0, symbols: &syms, masks: masks) }
                zonesNeeded = zonesNeeded || (cf?.needsZones ?? false)
                slots[i] = evaluators.absence.add(rule: ri, selector: s, duration: d, filter: f, compiled: cf)
            }
        }
        self.needsZones = zonesNeeded
        self.ruleSlot = slots
        self.selectors = sels
        func ranks(_ ids: [String]) -> [Int32] {
            // By UTF-8 bytes, compared in place (an array of each id's bytes per comparison
            // was most of this for a file of thousands of zones).
            let order = ids.indices.sorted { ids[$0].utf8.lexicographicallyPrecedes(ids[$1].utf8) }
            var rank = Array(repeating: Int32(0), count: ids.count)
            for (k, i) in order.enumerated() { rank[i] = Int32(k) }
            return rank
        }
        self.zoneRank = ranks(zones.map(\.id))
        self.ruleRank = ranks(rules.map(\.id))
        self.expiries = rules.enumerated().compactMap { i, r in r.expires.map { ($0, Int32(i)) } }
    }
}

/// A `by` of a rule, against the interned names.
func textSource(_ g: GroupBy, _ syms: inout Symbols) -> TextSource {
    switch g {
    case .counterpart: return .counterpart
    case .attr(let a): return .attr(syms.names.intern(a))
    }
}

/// One evaluator per rule kind (spec section 5), each with the rules of its kind.
struct Evaluators {
    var geofence = GeofenceEvaluator()
    var speed = SpeedEvaluator()
    var dwell = DwellEvaluator()
    var gathering = GatheringEvaluator()
    var proximity = ProximityEvaluator()
    var frequency = FrequencyEvaluator()
    var novelty = NoveltyEvaluator()
    var threshold = ThresholdEvaluator()
    var sequence = SequenceEvaluator()
    var absence = AbsenceEvaluator()
    var aggregate = AggregateEvaluator()
    /// The steadied memberships rules ask for (`enter_after`, `exit_margin_m`).
    var views: [MembershipView] = []
}
