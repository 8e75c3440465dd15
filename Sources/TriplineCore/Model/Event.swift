/// Interned names shared by the codecs and the engine: entity ids, given event ids, and
/// other names (event types, metrics, attribute keys and string values, counterparts).
public struct Symbols: Sendable {
    public var entities = Interner(capacity: 1 << 14, compact: true)
    public var eventIds = Interner(capacity: 1 << 10)
    public var names = Interner(capacity: 256)
    public let sensitive: SensitiveTags
    /// Per name id: 0 = not yet checked as an attribute key, 1 = allowed, 2 = sensitive.
    var attrKeyState: [UInt8] = []

    public static let positionType: Int32 = 0
    public static let readingType: Int32 = 1
    public static let contactType: Int32 = 2

    public init(sensitive: SensitiveTags = SensitiveTags()) {
        self.sensitive = sensitive
        _ = names.intern("position")
        _ = names.intern("reading")
        _ = names.intern("contact")
    }

    /// True when the name id is a sensitive attribute key (cached per name).
    mutating func isSensitiveKey(_ id: Int32) -> Bool {
        let i = Int(id)
        if i >= attrKeyState.count { attrKeyState.append(contentsOf: repeatElement(0, count: i - attrKeyState.count + 64)) }
        if attrKeyState[i] == 0 { attrKeyState[i] = sensitive.isSensitive(names.string(id)) ? 2 : 1 }
        return attrKeyState[i] == 2
    }
}

/// An attribute value of an event: type-strict.
public enum AttrValue: Sendable, Equatable {
    case string(Int32)
    case number(Double)
    case bool(Bool)
}

/// One attribute of an event.
public struct Attr: Sendable, Equatable {
    public var key: Int32
    public var value: AttrValue
    public init(key: Int32, value: AttrValue) {
        self.key = key
        self.value = value
    }
}

/// A decoded event with interned names (spec section 2).
public struct Event: Sendable {
    public var entity: Int32
    public var time: Millis
    /// Index into `Symbols.eventIds`, or -1 when the event carried no id.
    public var givenId: Int32 = -1
    /// Index into `Symbols.names`; 0 position, 1 reading, 2 contact, others custom.
    public var type: Int32
    public var lon: Double = 0
    public var lat: Double = 0
    public var metric: Int32 = -1
    public var value: Double = 0
    public var counterpart: Int32 = -1
    public var attrs: [Attr] = []

    public init(entity: Int32, time: Millis, type: Int32) {
        self.entity = entity
        self.time = time
        self.type = type
    }

    public var isPosition: Bool { type == Symbols.positionType }
}

/// A reference to an event id for evidence: either a given id (index into the event id
/// interner) or an assigned one, `<entity>#<n>`, kept as the pair without building a string.
public struct EventRef: Sendable, Hashable {
    public var raw: UInt64
    public static func given(_ id: Int32) -> EventRef { EventRef(raw: (1 << 63) | UInt64(UInt32(bitPattern: id))) }
    public static func assigned(entity: Int32, n: UInt32) -> EventRef { EventRef(raw: UInt64(UInt32(bitPattern: entity)) << 32 | UInt64(n)) }
    public var isGiven: Bool { raw >> 63 == 1 }
    public var givenIndex: Int32 { Int32(bitPattern: UInt32(truncatingIfNeeded: raw)) }
    public var entity: Int32 { Int32(bitPattern: UInt32(truncatingIfNeeded: (raw >> 32) & 0x7FFF_FFFF)) }
    public var sequence: UInt32 { UInt32(truncatingIfNeeded: raw) }

    /// The id as text.
    public func text(_ symbols: Symbols) -> String {
        isGiven ? symbols.eventIds.string(givenIndex) : "\(symbols.entities.string(entity))#\(sequence)"
    }
}
