/// The keys that may never be collected or selected on (spec section 6). Compared
/// case-insensitively. The list can be extended by configuration, never emptied.
public struct SensitiveTags: Sendable, Hashable {
    public static let defaultKeys: [String] = [
        "health", "ethnicity", "race", "religion", "politics", "political_opinion",
        "sexual_orientation", "biometric", "genetic", "trade_union", "criminal_record",
    ]
    public private(set) var keys: Set<String>

    /// The default list plus `extra` keys.
    public init(extra: [String] = []) {
        keys = Set(SensitiveTags.defaultKeys)
        for k in extra { keys.insert(k.lowercased()) }
    }

    public func isSensitive(_ key: String) -> Bool { keys.contains(key.lowercased()) }
}

/// An entity as registered: id, kind and tags.
public struct EntityInfo: Sendable, Hashable {
    public var id: String
    public var kind: String
    public var tags: [String: String]
    public init(id: String, kind: String = "unknown", tags: [String: String] = [:]) {
        self.id = id
        self.kind = kind
        self.tags = tags
    }
}

/// Selects entities (or zones): every given field must match; an absent field matches all.
public struct Selector: Sendable, Hashable, CustomStringConvertible {
    /// `kind` for entities, `category` for zones.
    public var classes: [String]?
    /// Tag key to accepted values.
    public var tags: [String: [String]]?
    public var ids: [String]?

    public init(classes: [String]? = nil, tags: [String: [String]]? = nil, ids: [String]? = nil) {
        self.classes = classes
        self.tags = tags
        self.ids = ids
    }

    /// Matches everything.
    public static let all = Selector()

    public func matches(id: String, class cls: String, tags entityTags: [String: String]) -> Bool {
        if let classes, !classes.contains(cls) { return false }
        if let ids, !ids.contains(id) { return false }
        if let tags {
            for (k, vs) in tags {
                guard let v = entityTags[k], vs.contains(v) else { return false }
            }
        }
        return true
    }

    public func matches(_ e: EntityInfo) -> Bool { matches(id: e.id, class: e.kind, tags: e.tags) }

    public var description: String {
        var parts: [String] = []
        if let classes { parts.append("class in \(classes)") }
        if let tags { parts.append("tags \(tags.sorted { $0.key < $1.key })") }
        if let ids { parts.append("ids \(ids)") }
        return parts.isEmpty ? "{}" : parts.joined(separator: ", ")
    }
}

/// A typed attribute literal: `attrs` equality is type-strict (spec section 2).
public enum AttrLiteral: Sendable, Hashable {
    case string(String)
    case number(Double)
    case bool(Bool)
}

/// Which events a rule counts: a type, optionally a metric, attribute equalities and (for
/// position events) zones.
public struct EventFilter: Sendable, Hashable {
    public var type: String
    public var metric: String?
    public var attrs: [String: AttrLiteral]
    public var zones: Selector?

    public init(type: String, metric: String? = nil, attrs: [String: AttrLiteral] = [:], zones: Selector? = nil) {
        self.type = type
        self.metric = metric
        self.attrs = attrs
        self.zones = zones
    }
}
