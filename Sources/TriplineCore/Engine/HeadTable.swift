/// Where a `HeadTable` reads the key an id is filed under: the id's own record holds it.
protocol HeadKeys {
    func headKey(_ id: Int32) -> UInt64
}

/// A hash map from 64-bit keys to Int32 ids (ids from 0), for tables whose ids' own records
/// already hold their keys: the proximity grid's first entity of each cube, whose record
/// (`ProximityEvaluator.Latest`) holds the cube's key. A slot is the id and a 32-bit tag of
/// the key, 8 bytes; an `IntMap<Int32>` slot holds the whole key and is 16. The key is read
/// back from the id's record (`HeadKeys`) only when a slot's tag matches, which is almost
/// always the entry looked for; the proximity search reads that record next anyway.
///
/// Open addressing with linear probing, up to 4/5 full, and backward-shift deletion, as
/// `IntMap`. The tag is the top 32 bits of the key's multiplicative hash and the home slot is
/// the top bits of the tag, so growing and deleting move entries by their tags alone and never
/// read a record: the only read is the confirmation of a matching tag, on the key being looked
/// up, inserted or removed (and, rarely, of another entry with the same tag). So an id may be
/// filed under a key before its record says so, provided no look-up comes in between: the
/// evaluator files an entity under its new cube, then writes its record.
struct HeadTable {
    struct Slot {
        /// -1: empty.
        var id: Int32
        var tag: UInt32
    }
    private(set) var slots: [Slot]
    private(set) var count = 0
    /// log2 of the slot count (at most 32: the home is taken from the tag).
    private(set) var bits: Int
    private var mask: Int

    init(capacity: Int = 8) {
        var cap = 8
        while cap * 4 < capacity * 5 { cap <<= 1 }
        slots = Array(repeating: Slot(id: -1, tag: 0), count: cap)
        mask = cap - 1
        bits = cap.trailingZeroBitCount
    }

    @inline(__always)
    static func tag(_ k: UInt64) -> UInt32 { UInt32(truncatingIfNeeded: (k &* 0x9E37_79B9_7F4A_7C15) >> 32) }

    @inline(__always)
    func home(_ tag: UInt32) -> Int { Int(truncatingIfNeeded: tag >> UInt32(32 - bits)) }

    /// The slot of key `k`, if present.
    @inline(__always)
    func find(_ k: UInt64, _ keys: some HeadKeys) -> Int? {
        let t = Self.tag(k)
        var i = home(t)
        while true {
            let s = slots[i]
            if s.id < 0 { return nil }
            if s.tag == t && keys.headKey(s.id) == k { return i }
            i = (i + 1) & mask
        }
    }

    /// The id filed under `k`, or -1.
    @inline(__always)
    func id(_ k: UInt64, _ keys: some HeadKeys) -> Int32 {
        guard let i = find(k, keys) else { return -1 }
        return slots[i].id
    }

    /// Files `id` under `k` and returns the id it replaces (-1 when `k` was absent). `id`'s
    /// record need not hold `k` yet.
    @inline(__always)
    mutating func exchange(_ k: UInt64, _ id: Int32, _ keys: some HeadKeys) -> Int32 {
        precondition(id >= 0, "a head table holds ids from 0")
        if let i = find(k, keys) {
            let old = slots[i].id
            slots[i].id = id
            return old
        }
        if (count + 1) * 5 > slots.count * 4 { grow() }
        let t = Self.tag(k)
        var i = home(t)
        while slots[i].id >= 0 { i = (i + 1) & mask }
        slots[i] = Slot(id: id, tag: t)
        count += 1
        return -1
    }

    /// Removes `k`; returns its id (-1 when absent).
    @discardableResult
    mutating func remove(_ k: UInt64, _ keys: some HeadKeys) -> Int32 {
        guard let i = find(k, keys) else { return -1 }
        let old = slots[i].id
        slots[i] = Slot(id: -1, tag: 0)
        count -= 1
        backwardShift(hole: i, mask: mask, isOccupied: { slots[$0].id >= 0 }, home: { home(slots[$0].tag) },
                      move: { slots.swapAt($0, $1) })
        return old
    }

    mutating func grow() {
        precondition(bits < 32, "a head table has at most 2^32 slots")
        let old = slots
        let cap = slots.count * 2
        slots = Array(repeating: Slot(id: -1, tag: 0), count: cap)
        mask = cap - 1
        bits += 1
        for s in old where s.id >= 0 {
            var i = home(s.tag)
            while slots[i].id >= 0 { i = (i + 1) & mask }
            slots[i] = s
        }
    }

    /// Bytes held by the table itself.
    var memoryBytes: Int { slots.capacity * MemoryLayout<Slot>.stride }

    /// The ids held, in no particular order.
    var ids: [Int32] { slots.compactMap { $0.id >= 0 ? $0.id : nil } }
}
