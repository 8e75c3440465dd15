/// An event filter compiled against the engine's interned names (spec sections 2 and 5):
/// type, optional metric, type-strict attribute equalities, and for position events an
/// optional set of zones of which the position must be inside at least one.
struct CompiledFilter {
    var type: Int32
    var metric: Int32
    var attrs: [(Int32, AttrValue)]
    var zones: ZoneMask?

    init(_ f: EventFilter, symbols: inout Symbols, masks: ZoneMaskMemo) {
        type = symbols.names.intern(f.type)
        metric = f.metric.map { symbols.names.intern($0) } ?? -1
        attrs = f.attrs.sorted { $0.key < $1.key }.map { k, v in
            let key = symbols.names.intern(k)
            switch v {
            case .string(let s): return (key, .string(symbols.names.intern(s)))
            case .number(let d): return (key, .number(d))
            case .bool(let b): return (key, .bool(b))
            }
        }
        self.zones = f.zones.map { masks.mask($0) }
    }

    /// Does `ev` pass? `insideZones` are the zones a position is inside (sorted).
    func matches(_ ev: Event, insideZones: [Int32]) -> Bool {
        if ev.type != type { return false }
        if metric >= 0 && ev.metric != metric { return false }
        for (k, v) in attrs {
            guard let a = ev.attrs.first(where: { $0.key == k }), a.value == v else { return false }
        }
        if let zones {
            guard ev.type == Symbols.positionType, insideZones.contains(where: { zones.contains($0) }) else { return false }
        }
        return true
    }

    var needsZones: Bool { zones != nil }
}

/// A first-in first-out queue of timestamped event references (a sliding window),
/// amortised O(1) at both ends; times and references side by side (one allocation).
struct TimedRefs {
    struct Entry {
        var time: Millis
        var ref: EventRef
    }
    var entries: [Entry] = []
    var head = 0

    var count: Int { entries.count - head }
    var isEmpty: Bool { head == entries.count }
    var oldestTime: Millis? { head < entries.count ? entries[head].time : nil }

    mutating func append(_ t: Millis, _ r: EventRef) {
        entries.append(Entry(time: t, ref: r))
    }

    /// Drops entries with time + window <= `now` (they have left (now - window, now]).
    /// Returns how many were dropped.
    @discardableResult
    mutating func expire(window: Millis, now: Millis) -> Int {
        var dropped = 0
        while head < entries.count && entries[head].time + window <= now {
            head += 1
            dropped += 1
        }
        if head > 64 && head * 2 > entries.count {
            entries.removeFirst(head)
            head = 0
        }
        if head == entries.count && head > 0 {
            entries.removeAll(keepingCapacity: true)
            head = 0
        }
        return dropped
    }

    /// The first 100 references still held, in processing order.
    var evidence: [EventRef] { entries[head..<min(entries.count, head + 100)].map(\.ref) }
}
