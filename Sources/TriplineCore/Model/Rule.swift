/// Alert severities, in increasing order.
public enum Severity: String, Sendable, CaseIterable, Comparable {
    case info, low, medium, high, critical
    public static func < (a: Severity, b: Severity) -> Bool {
        allCases.firstIndex(of: a)! < allCases.firstIndex(of: b)!
    }
}

/// The rule kinds of spec section 5.
public enum RuleKind: String, Sendable, CaseIterable {
    case enter, exit, dwell, gathering, proximity, frequency, novelty, threshold, sequence, absence, speed, aggregate

    /// Kinds that accept a rule-level `zones` selector.
    public var takesZones: Bool { self == .enter || self == .exit || self == .dwell || self == .gathering }

    /// Kinds whose zone membership `enter_after` and `exit_margin_m` can steady (a sequence
    /// rule only when it has an enter or exit step).
    public var takesJitter: Bool { takesZones || self == .sequence }
}

/// How a rule sees zone membership when positions jitter near a boundary (`enter_after`,
/// `exit_margin_m`). The default (`ZoneJitter()`) is exactly the membership of spec 1.2:
/// an entity is inside from its first inside position and outside from its first outside one.
public struct ZoneJitter: Sendable, Hashable {
    /// What confirms an entry: this many consecutive inside positions, or inside positions
    /// spanning at least this long (the first to the confirming one).
    public enum EnterAfter: Sendable, Hashable {
        case fixes(Int)
        case duration(Millis)
    }
    public var enterAfter: EnterAfter
    /// An entity that is inside stays inside until a position lies more than this many metres
    /// from the zone (haversine to the nearest boundary point; a circle's radius plus this).
    public var exitMarginM: Double

    public init(enterAfter: EnterAfter = .fixes(1), exitMarginM: Double = 0) {
        self.enterAfter = enterAfter
        self.exitMarginM = exitMarginM
    }

    /// Is this spec 1.2's membership (no steadying at all)?
    public var isDefault: Bool { enterAfter == .fixes(1) && exitMarginM == 0 }
}

/// The condition of a threshold rule.
public enum ThresholdCondition: Sendable, Hashable {
    case above(Double)
    case below(Double)
    case baseline(window: Millis, factor: Double, minSamples: Int)
}

/// A counterpart filter for novelty rules.
public struct CounterpartFilter: Sendable, Hashable {
    public var prefix: [String]?
    public var notPrefix: [String]?
    public init(prefix: [String]? = nil, notPrefix: [String]? = nil) {
        self.prefix = prefix
        self.notPrefix = notPrefix
    }
    public func accepts(_ c: String) -> Bool {
        if let prefix, !prefix.contains(where: { c.hasPrefix($0) }) { return false }
        if let notPrefix, notPrefix.contains(where: { c.hasPrefix($0) }) { return false }
        return true
    }
}

/// One step of a sequence rule: a positive step, or (spec 1.3, 5b.13) a negated one, which
/// forbids events satisfying its inner step between its neighbours; a trailing negated step
/// carries the deadline `for`.
public indirect enum SequenceStep: Sendable, Hashable {
    case enter(Selector)
    case exit(Selector)
    case event(EventFilter)
    case absent(SequenceStep, for: Millis?)

    public var isAbsent: Bool { if case .absent = self { return true } else { return false } }
}

/// What `by` groups a `frequency` or `aggregate` rule's state by (spec 1.3, 5b.11): the
/// counterpart of contact events, or the value of an attribute as text.
public enum GroupBy: Sendable, Hashable {
    case counterpart
    case attr(String)
}

/// The function of an `aggregate` rule (5b.12).
public enum AggregateFunction: String, Sendable, Hashable, CaseIterable {
    case sum, mean, min, max
    case countDistinct = "count_distinct"
}

/// The field an `aggregate` rule reads from each event (5b.12).
public enum AggregateField: Sendable, Hashable {
    /// The value of reading events.
    case value
    /// The counterpart of contact events (`count_distinct` only).
    case counterpart
    case attr(String)
}

/// `above X` or `below X`, both strict.
public enum Bound: Sendable, Hashable {
    case above(Double)
    case below(Double)
    public func holds(_ v: Double) -> Bool {
        switch self {
        case .above(let x): return v > x
        case .below(let x): return v < x
        }
    }
}

/// The parameters of each rule kind.
public enum RuleParameters: Sendable, Hashable {
    case enter
    case exit
    case dwell(min: Millis)
    case gathering(minCount: Int, window: Millis)
    case proximity(distanceM: Double, within: Millis, other: Selector?)
    case frequency(count: Int, window: Millis, event: EventFilter, by: GroupBy?)
    case novelty(count: Int, window: Millis, lookback: Millis, counterpart: CounterpartFilter?)
    case threshold(metric: String, condition: ThresholdCondition)
    /// `within` may be nil only when the steps have a single positive step.
    case sequence(steps: [SequenceStep], within: Millis?)
    case absence(duration: Millis, event: EventFilter?)
    case speed(maxKmh: Double)
    case aggregate(fn: AggregateFunction, of: AggregateField, window: Millis, event: EventFilter, bound: Bound, by: GroupBy?)

    public var kind: RuleKind {
        switch self {
        case .enter: return .enter
        case .exit: return .exit
        case .dwell: return .dwell
        case .gathering: return .gathering
        case .proximity: return .proximity
        case .frequency: return .frequency
        case .novelty: return .novelty
        case .threshold: return .threshold
        case .sequence: return .sequence
        case .absence: return .absence
        case .speed: return .speed
        case .aggregate: return .aggregate
        }
    }
}

/// A validated rule.
public struct Rule: Sendable, Hashable {
    public var id: String
    public var purpose: String
    public var owner: String
    public var severity: Severity
    public var match: Selector
    public var zones: Selector?
    /// `enter_after` / `exit_margin_m` (nil: spec 1.2 membership).
    public var jitter: ZoneJitter?
    public var cooldown: Millis
    public var expires: Millis?
    public var parameters: RuleParameters
    /// Free `key: value` labels (such as team or site) that the rule's alerts carry into
    /// notification routing; never sensitive keys, never a built-in alert label name.
    public var labels: [String: String]
    /// `summary`, `description`, `runbook_url`: Mustache templates over the alert.
    public var annotations: [String: String]
    /// Line of the rule in its file (0 when built in code).
    public var line: Int

    public var kind: RuleKind { parameters.kind }

    public init(id: String, purpose: String, owner: String, severity: Severity = .medium, match: Selector = .all,
                zones: Selector? = nil, cooldown: Millis = 0, expires: Millis? = nil, parameters: RuleParameters,
                labels: [String: String] = [:], annotations: [String: String] = [:], line: Int = 0, jitter: ZoneJitter? = nil) {
        self.id = id
        self.purpose = purpose
        self.owner = owner
        self.severity = severity
        self.match = match
        self.zones = zones
        self.jitter = jitter
        self.cooldown = cooldown
        self.expires = expires
        self.parameters = parameters
        self.labels = labels
        self.annotations = annotations
        self.line = line
    }
}

/// A zone as loaded: id, category, tags and shape.
public struct Zone: Sendable {
    public var id: String
    public var category: String
    public var tags: [String: String]
    public var shape: ZoneShape
    public init(id: String, category: String, tags: [String: String] = [:], shape: ZoneShape) {
        self.id = id
        self.category = category
        self.tags = tags
        self.shape = shape
    }
}
