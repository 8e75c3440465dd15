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
public struct Alert: Sendable {
    public var rule: Int32
    public var key: AlertKey
    public var firing: Bool
    public var time: Millis
    public var evidence: [EventRef]
    public var details: [(String, DetailValue)]
    /// Emission order, for the canonical order's last tie-break.
    public var sequence: UInt64

    public init(rule: Int32, key: AlertKey, firing: Bool, time: Millis, evidence: [EventRef], details: [(String, DetailValue)], sequence: UInt64 = 0) {
        self.rule = rule
        self.key = key
        self.firing = firing
        self.time = time
        self.evidence = evidence
        self.details = details
        self.sequence = sequence
    }
}
