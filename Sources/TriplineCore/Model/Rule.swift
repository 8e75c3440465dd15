/// Alert severities, in increasing order.
public enum Severity: String, Sendable, CaseIterable, Comparable {
    case info, low, medium, high, critical
    public static func < (a: Severity, b: Severity) -> Bool {
        allCases.firstIndex(of: a)! < allCases.firstIndex(of: b)!
    }
}

/// The rule kinds of spec section 5.
public enum RuleKind: String, Sendable, CaseIterable {
    case enter, exit, dwell, gathering, proximity, frequency, novelty, threshold, sequence, absence, speed

    /// Kinds that accept a rule-level `zones` selector.
    public var takesZones: Bool { self == .enter || self == .exit || self == .dwell || self == .gathering }
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

/// One step of a sequence rule.
public enum SequenceStep: Sendable, Hashable {
    case enter(Selector)
    case exit(Selector)
    case event(EventFilter)
}

/// The parameters of each rule kind.
public enum RuleParameters: Sendable, Hashable {
    case enter
    case exit
    case dwell(min: Millis)
    case gathering(minCount: Int, window: Millis)
    case proximity(distanceM: Double, within: Millis, other: Selector?)
    case frequency(count: Int, window: Millis, event: EventFilter)
    case novelty(count: Int, window: Millis, lookback: Millis, counterpart: CounterpartFilter?)
    case threshold(metric: String, condition: ThresholdCondition)
    case sequence(steps: [SequenceStep], within: Millis)
    case absence(duration: Millis, event: EventFilter?)
    case speed(maxKmh: Double)

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
    public var cooldown: Millis
    public var expires: Millis?
    public var parameters: RuleParameters
    /// Line of the rule in its file (0 when built in code).
    public var line: Int

    public var kind: RuleKind { parameters.kind }

    public init(id: String, purpose: String, owner: String, severity: Severity = .medium, match: Selector = .all,
                zones: Selector? = nil, cooldown: Millis = 0, expires: Millis? = nil, parameters: RuleParameters, line: Int = 0) {
        self.id = id
        self.purpose = purpose
        self.owner = owner
        self.severity = severity
        self.match = match
        self.zones = zones
        self.cooldown = cooldown
        self.expires = expires
        self.parameters = parameters
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
