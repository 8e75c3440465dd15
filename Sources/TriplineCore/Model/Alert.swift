/// A number or other value in an alert's `details`.
public enum DetailValue: Sendable, Equatable {
    case number(Double)
    case null
    case strings([String])
}

/// The key an alert is about (spec section 4): an entity, a zone, both, or a pair.
public struct AlertKey: Sendable, Hashable {
    public var entity: Int32 = -1
    public var zone: Int32 = -1
    /// For pairs: the two entities (the text form is sorted by id when written).
    public var pairA: Int32 = -1
    public var pairB: Int32 = -1
    /// The group of a `by` rule (spec 1.3, 5b.11), interned in `Symbols.names`.
    public var group: Int32 = -1

    public init(entity: Int32 = -1, zone: Int32 = -1, pairA: Int32 = -1, pairB: Int32 = -1, group: Int32 = -1) {
        self.group = group
        self.entity = entity
        self.zone = zone
        self.pairA = pairA
        self.pairB = pairB
    }
    public static func entity(_ e: Int32) -> AlertKey { AlertKey(entity: e) }
    public static func entityZone(_ e: Int32, _ z: Int32) -> AlertKey { AlertKey(entity: e, zone: z) }
    public static func zone(_ z: Int32) -> AlertKey { AlertKey(zone: z) }
    public static func entityGroup(_ e: Int32, _ g: Int32) -> AlertKey { AlertKey(entity: e, group: g) }
}

/// One alert transition as the engine emits it; text is produced by `AlertEncoder`.
///
/// Evidence and details are held inline in the usual cases (up to two event references, up
/// to two numbers under fixed names), so that emitting, ordering and writing an alert
/// allocates nothing and copies no reference; other lists are kept as arrays. `evidence` and
/// `details` give them as arrays either way.
public struct Alert: Sendable {
    public var rule: Int32
    public var key: AlertKey
    public var firing: Bool
    public var time: Millis
    public var evidenceRefs: AlertEvidence
    public var detailValues: AlertDetails
    /// Emission order, for the canonical order's last tie-break.
    public var sequence: UInt64

    public var evidence: [EventRef] { evidenceRefs.array }
    public var details: [(String, DetailValue)] { detailValues.array }

    public init(rule: Int32, key: AlertKey, firing: Bool, time: Millis, evidence: [EventRef], details: [(String, DetailValue)], sequence: UInt64 = 0) {
        self.init(rule: rule, key: key, firing: firing, time: time, evidence: AlertEvidence(evidence), details: AlertDetails(details), sequence: sequence)
    }

    public init(rule: Int32, key: AlertKey, firing: Bool, time: Millis, evidence: AlertEvidence, details: AlertDetails, sequence: UInt64 = 0) {
        self.rule = rule
        self.key = key
        self.firing = firing
        self.time = time
        self.evidenceRefs = evidence
        self.detailValues = details
        self.sequence = sequence
    }
}

/// The event references of an alert: none, one or two inline, or an array.
public struct AlertEvidence: Sendable {
    var first = EventRef(raw: 0), second = EventRef(raw: 0)
    /// How many of `first` and `second` are set (0-2); -1 when `list` holds the references.
    var inline: Int8 = 0
    var list: [EventRef]? = nil

    public static let none = AlertEvidence()
    public init() {}
    public static func one(_ a: EventRef) -> AlertEvidence { AlertEvidence(first: a, inline: 1) }
    public static func two(_ a: EventRef, _ b: EventRef) -> AlertEvidence { AlertEvidence(first: a, second: b, inline: 2) }

    init(first: EventRef = EventRef(raw: 0), second: EventRef = EventRef(raw: 0), inline: Int8) {
        self.first = first
        self.second = second
        self.inline = inline
    }

    /// The references of `refs`.
    public init(_ refs: [EventRef]) {
        switch refs.count {
        case 0: inline = 0
        case 1: first = refs[0]; inline = 1
        case 2: first = refs[0]; second = refs[1]; inline = 2
        default:
            inline = -1
            list = refs
        }
    }

    /// At most the first `n` references.
    func prefix(_ n: Int) -> AlertEvidence {
        guard inline < 0, let l = list, l.count > n else { return self }
        return AlertEvidence(Array(l.prefix(n)))
    }

    public var count: Int { inline >= 0 ? Int(inline) : list!.count }

    public subscript(i: Int) -> EventRef {
        if inline < 0 { return list![i] }
        precondition(i >= 0 && i < Int(inline), "evidence index out of range")
        return i == 0 ? first : second
    }

    public var array: [EventRef] {
        switch inline {
        case 0: return []
        case 1: return [first]
        case 2: return [first, second]
        default: return list!
        }
    }
}

/// The details of an alert: up to two numbers under fixed names inline, or a list.
public struct AlertDetails: Sendable {
    /// The names the evaluators give their numbers.
    public enum Name: UInt8, Sendable {
        case kmh, distanceM, count, value, baseline, dwellS, silentS, spanS

        public var text: StaticString {
            switch self {
            case .kmh: return "kmh"
            case .distanceM: return "distance_m"
            case .count: return "count"
            case .value: return "value"
            case .baseline: return "baseline"
            case .dwellS: return "dwell_s"
            case .silentS: return "silent_s"
            case .spanS: return "span_s"
            }
        }
        public var string: String { text.description }
    }
    var names: (Name, Name) = (.kmh, .kmh)
    var values: (Double, Double) = (0, 0)
    /// How many inline numbers there are (0-2); -1 when `list` holds the details.
    var inline: Int8 = 0
    var list: [(String, DetailValue)]? = nil

    public static let none = AlertDetails()
    public init() {}
    public static func number(_ n: Name, _ v: Double) -> AlertDetails { AlertDetails(names: (n, n), values: (v, 0), inline: 1) }
    public static func numbers(_ n1: Name, _ v1: Double, _ n2: Name, _ v2: Double) -> AlertDetails {
        AlertDetails(names: (n1, n2), values: (v1, v2), inline: 2)
    }

    init(names: (Name, Name), values: (Double, Double), inline: Int8) {
        self.names = names
        self.values = values
        self.inline = inline
    }

    public init(_ details: [(String, DetailValue)]) {
        if details.isEmpty { return }
        inline = -1
        list = details
    }

    /// How many details there are.
    public var count: Int { inline >= 0 ? Int(inline) : list!.count }

    public var array: [(String, DetailValue)] {
        switch inline {
        case 0: return []
        case 1: return [(names.0.string, .number(values.0))]
        case 2: return [(names.0.string, .number(values.0)), (names.1.string, .number(values.1))]
        default: return list!
        }
    }
}
