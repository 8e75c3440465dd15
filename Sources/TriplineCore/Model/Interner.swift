/// Maps byte strings to dense integer ids without creating a `String` per lookup.
/// Open addressing over an arena of bytes; FNV-1a hashing.
public struct Interner: Sendable {
    var arena: [UInt8] = []
    var starts: [Int32] = []
    var ends: [Int32] = []
    /// Slots: 0 = empty, else (upper 32 bits of the hash) << 32 | (id + 1).
    var table: [UInt64]
    var mask: Int
    /// Ids released by `retain(_:)`, reused by `intern` (an interner that is never told to
    /// release anything keeps this empty and hands out ids 0, 1, 2, ...).
    var free: [Int32] = []
    /// The table may fill to 4/5 (else to 1/2). For strings that are mostly found (entity
    /// names, looked up on every event and added once): a third of the table's memory
    /// saved, and a found string still costs about 3 slots of 8 bytes, in one cache line
    /// or two. Strings that are mostly new (given event ids) keep the half-full table,
    /// where a miss reads about 2.5 slots, not 13.
    let compact: Bool

    /// A table for `capacity` strings; `compact`: see the property.
    public init(capacity: Int = 1024, compact: Bool = false) {
        self.compact = compact
        var cap = 16
        while Interner.isFull(capacity, slots: cap, compact: compact) { cap <<= 1 }
        table = Array(repeating: 0, count: cap)
        mask = cap - 1
    }

    @inline(__always)
    static func isFull(_ live: Int, slots: Int, compact: Bool) -> Bool {
        compact ? live * 5 > slots * 4 : live * 2 > slots
    }

    /// Number of ids handed out (live or released): every id is below it.
    public var count: Int { starts.count }

    /// Number of strings held.
    public var liveCount: Int { starts.count - free.count }

    
    static func hash(_ p: UnsafeBufferPointer<UInt8>) -> UInt64 {
        // Eight bytes at a time, multiply-xorshift mixing.
        var h: UInt64 = 0x9E37_79B9_7F4A_7C15 ^ UInt64(p.count)
        let n = p.count
        var i = 0
        guard let base = p.baseAddress else { return h }
        while i + 8 <= n {
            let w = UnsafeRawPointer(base + i).loadUnaligned(as: UInt64.self)
            h = (h ^ w) &* 0xBF58_476D_1CE4_E5B9
            h ^= h >> 31
            i += 8
        }
        var tail: UInt64 = 0
        var shift: UInt64 = 0
        while i < n { tail |= UInt64(base[i]) << shift; shift += 8; i += 1 }
        h = (h ^ tail) &* 0x94D0_49BB_1331_11EB
        return h ^ (h >> 29)
    }

    
    func equal(_ id: Int, _ p: UnsafeBufferPointer<UInt8>) -> Bool {
        let s = Int(starts[id]), e = Int(ends[id])
        if e - s != p.count { return false }
        return arena.withUnsafeBufferPointer { a in
            var k = 0
            while k < p.count {
                if a[s + k] != p[k] { return false }
                k += 1
            }
            return true
        }
    }

    /// The id of the byte string, if interned.
    
    public func lookup(_ p: UnsafeBufferPointer<UInt8>) -> Int32? {
        let h = Interner.hash(p)
        let tag = h >> 32
        var slot = Int(truncatingIfNeeded: h) & mask
        while true {
            let e = table[slot]
            if e == 0 { return nil }
            let id = Int32(truncatingIfNeeded: e & 0xFFFF_FFFF) - 1
            if e >> 32 == tag && equal(Int(id), p) { return id }
            slot = (slot + 1) & mask
        }
    }

    /// The id of the byte string, interning it if new.
    
    public mutating func intern(_ p: UnsafeBufferPointer<UInt8>) -> Int32 {
        let h = Interner.hash(p)
        let tag = h >> 32
        var slot = Int(truncatingIfNeeded: h) & mask
        while true {
            let e = table[slot]
            if e == 0 { break }
            let id = Int32(truncatingIfNeeded: e & 0xFFFF_FFFF) - 1
            if e >> 32 == tag && equal(Int(id), p) { return id }
            slot = (slot + 1) & mask
        }
        let id: Int32
        if let reused = free.popLast() {
            id = reused
            starts[Int(id)] = Int32(arena.count)
            arena.append(contentsOf: p)
            ends[Int(id)] = Int32(arena.count)
        } else {
            id = Int32(starts.count)
            starts.append(Int32(arena.count))
            arena.append(contentsOf: p)
            ends.append(Int32(arena.count))
        }
        table[slot] = tag << 32 | UInt64(id + 1)
        if Interner.isFull(liveCount, slots: table.count, compact: compact) { grow() }
        return id
    }

    /// Keeps the strings whose ids are marked in `live` (indexed by id; ids at or beyond its
    /// end count as live) and releases the others: their ids go to the free list for reuse,
    /// their bytes are dropped and the arena is compacted. Live ids keep their numbers.
    public mutating func retain(_ live: [Bool]) {
        var isFree = [Bool](repeating: false, count: starts.count)
        for f in free { isFree[Int(f)] = true }
        var newArena: [UInt8] = []
        newArena.reserveCapacity(arena.count / 2)
        var newFree: [Int32] = []
        var liveIds = 0
        for id in 0..<starts.count {
            if isFree[id] || (id < live.count && !live[id]) {
                newFree.append(Int32(id))
                starts[id] = 0
                ends[id] = 0
                continue
            }
            let s = Int(starts[id]), e = Int(ends[id])
            starts[id] = Int32(newArena.count)
            newArena.append(contentsOf: arena[s..<e])
            ends[id] = Int32(newArena.count)
            liveIds += 1
        }
        arena = newArena
        // Lowest ids reused first (popLast takes from the end).
        free = newFree.reversed()
        var cap = 16
        while Interner.isFull(liveIds, slots: cap, compact: compact) { cap <<= 1 }
        rebuildTable(slots: cap)
    }

    mutating func grow() { rebuildTable(slots: table.count * 2) }

    /// A table of `slots` slots holding every live id. The hashes are computed again from
    /// the arena (not kept per id: 8 bytes per string saved, for a rehash of the bytes
    /// only when the table doubles or `retain` compacts).
    mutating func rebuildTable(slots cap: Int) {
        var table = [UInt64](repeating: 0, count: cap)
        let mask = cap - 1
        var released = [Bool](repeating: false, count: free.isEmpty ? 0 : starts.count)
        for f in free { released[Int(f)] = true }
        arena.withUnsafeBufferPointer { a in
            for id in 0..<starts.count where free.isEmpty || !released[id] {
                let h = Interner.hash(UnsafeBufferPointer(rebasing: a[Int(starts[id])..<Int(ends[id])]))
                var slot = Int(truncatingIfNeeded: h) & mask
                while table[slot] != 0 { slot = (slot + 1) & mask }
                table[slot] = (h >> 32) << 32 | UInt64(id + 1)
            }
        }
        self.table = table
        self.mask = mask
    }

    
    public mutating func intern(_ s: String) -> Int32 {
        var s = s
        return s.withUTF8 { intern($0) }
    }

    public func lookup(_ s: String) -> Int32? {
        var s = s
        return s.withUTF8 { lookup($0) }
    }

    /// The string of an id.
    public func string(_ id: Int32) -> String {
        let s = Int(starts[Int(id)]), e = Int(ends[Int(id)])
        return String(decoding: arena[s..<e], as: UTF8.self)
    }

    /// Appends the raw bytes of an id to a buffer.
    
    public func appendBytes(_ id: Int32, to out: inout [UInt8]) {
        let s = Int(starts[Int(id)]), e = Int(ends[Int(id)])
        out.append(contentsOf: arena[s..<e])
    }

    /// Appends the string of an id as a JSON string literal (quoted, escaped).
    public func appendJSONString(_ id: Int32, to out: inout [UInt8]) {
        out.append(34)
        appendEscapedBytes(id, to: &out)
        out.append(34)
    }

    /// Appends the string of an id escaped for the inside of a JSON string literal.
    func appendEscapedBytes(_ id: Int32, to out: inout [UInt8]) {
        let s = Int(starts[Int(id)]), e = Int(ends[Int(id)])
        arena.withUnsafeBufferPointer { a in JSONText.appendEscaped(UnsafeBufferPointer(rebasing: a[s..<e]), to: &out) }
    }

    /// Compares two ids by the code points of their strings (UTF-8 byte order).
    public func codePointLess(_ a: Int32, _ b: Int32) -> Bool {
        let sa = Int(starts[Int(a)]), ea = Int(ends[Int(a)])
        let sb = Int(starts[Int(b)]), eb = Int(ends[Int(b)])
        return arena[sa..<ea].lexicographicallyPrecedes(arena[sb..<eb])
    }

    /// Approximate bytes held.
    public var memoryBytes: Int { arena.capacity + starts.capacity * 4 + ends.capacity * 4 + table.capacity * 8 + free.capacity * 4 }
}

/// Strings added to an interner after some id, to replay them in the same order into
/// another interner (so that ids agree across threads).
public struct InternerDelta: Sendable {
    public var firstId: Int
    public var bytes: [UInt8]
    public var ends: [Int]
    public init(firstId: Int = 0, bytes: [UInt8] = [], ends: [Int] = []) {
        self.firstId = firstId
        self.bytes = bytes
        self.ends = ends
    }
}

extension Interner {
    /// The strings with ids `firstId...`.
    public func delta(from firstId: Int) -> InternerDelta {
        var d = InternerDelta(firstId: firstId, bytes: [], ends: [])
        if firstId >= count { return d }
        for id in firstId..<count {
            appendBytes(Int32(id), to: &d.bytes)
            d.ends.append(d.bytes.count)
        }
        return d
    }

    /// Interns the strings of `d`; they must receive the ids they had.
    public mutating func apply(_ d: InternerDelta) {
        precondition(d.firstId == count || d.ends.isEmpty, "interner deltas must be applied in order")
        d.bytes.withUnsafeBufferPointer { b in
            var start = 0
            for end in d.ends {
                _ = intern(UnsafeBufferPointer(rebasing: b[start..<end]))
                start = end
            }
        }
    }
}

extension Interner {
    /// Interns every string of a delta (from another interner) and returns the ids they got
    /// here, by their index in the delta: for strings whose ids need not agree across threads.
    public mutating func internAll(_ d: InternerDelta) -> [Int32] {
        var out: [Int32] = []
        out.reserveCapacity(d.ends.count)
        d.bytes.withUnsafeBufferPointer { b in
            var start = 0
            for end in d.ends {
                out.append(intern(UnsafeBufferPointer(rebasing: b[start..<end])))
                start = end
            }
        }
        return out
    }
}

extension Symbols {
    /// How many strings each interner holds.
    public var counts: (Int, Int, Int) { (entities.count, eventIds.count, names.count) }

    /// Everything interned since `counts`.
    public func delta(since counts: (Int, Int, Int)) -> (InternerDelta, InternerDelta, InternerDelta) {
        (entities.delta(from: counts.0), eventIds.delta(from: counts.1), names.delta(from: counts.2))
    }

}
