/// Maps byte strings to dense integer ids without creating a `String` per lookup.
/// Open addressing over an arena of records; a multiply-xorshift hash.
///
/// Each string is a record in the arena: its id (4 bytes), its length (LEB128: one byte up to
/// 127, two up to 16,383) and its bytes. A table slot holds the top half of the string's hash
/// and the record's offset, so a look-up that finds its string reads the slot and then one
/// record, whose id, length and first bytes share a cache line: two cache misses, where a slot
/// holding the id cost three (the slot, the id's start and end, the bytes). `starts` maps an id
/// to its record, for the way back (an id's string).
public struct Interner: Sendable {
    var arena: [UInt8] = []
    /// The offset of each id's record in `arena`.
    var starts: [UInt32] = []
    /// Slots: 0 = empty, else (upper 32 bits of the hash) << 32 | (record offset + 1).
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

    /// The bytes of the record at `offset` in `a`: (id, first byte, length).
    @inline(__always)
    static func record(_ a: UnsafeBufferPointer<UInt8>, _ offset: Int) -> (id: Int32, start: Int, count: Int) {
        let id = Int32(bitPattern: UInt32(a[offset]) | UInt32(a[offset + 1]) << 8 | UInt32(a[offset + 2]) << 16 | UInt32(a[offset + 3]) << 24)
        var i = offset + 4, n = 0, shift = 0
        while true {
            let b = a[i]
            i += 1
            n |= Int(b & 0x7F) << shift
            if b < 0x80 { break }
            shift += 7
        }
        return (id, i, n)
    }

    /// The id of the record at `offset` if it holds the bytes `p`.
    @inline(__always)
    func match(_ offset: Int, _ p: UnsafeBufferPointer<UInt8>) -> Int32? {
        arena.withUnsafeBufferPointer { a -> Int32? in
            let r = Interner.record(a, offset)
            if r.count != p.count { return nil }
            var k = 0
            while k < p.count {
                if a[r.start + k] != p[k] { return nil }
                k += 1
            }
            return r.id
        }
    }

    /// Where the bytes of id `id` are in `arena`.
    @inline(__always)
    func bytesRange(_ id: Int32) -> Range<Int> {
        arena.withUnsafeBufferPointer { a in
            let r = Interner.record(a, Int(starts[Int(id)]))
            return r.start..<(r.start + r.count)
        }
    }

    /// Appends the record of `id` with the bytes `p` to `arena`; returns its offset.
    static func appendRecord(_ id: Int32, _ p: UnsafeBufferPointer<UInt8>, to arena: inout [UInt8]) -> UInt32 {
        let offset = arena.count
        precondition(offset + p.count + 9 < Int(UInt32.max), "an interner holds less than 4 GB of strings")
        Interner.growByAnEighth(&arena, adding: p.count + 9)
        let u = UInt32(bitPattern: id)
        arena.append(UInt8(truncatingIfNeeded: u))
        arena.append(UInt8(truncatingIfNeeded: u >> 8))
        arena.append(UInt8(truncatingIfNeeded: u >> 16))
        arena.append(UInt8(truncatingIfNeeded: u >> 24))
        var n = p.count
        while n >= 0x80 {
            arena.append(UInt8(n & 0x7F) | 0x80)
            n >>= 7
        }
        arena.append(UInt8(n))
        arena.append(contentsOf: p)
        return UInt32(offset)
    }

    /// Makes room for `n` more elements, growing by an eighth rather than Swift's doubling:
    /// the arena and `starts` of a large vocabulary then hold at most an eighth unused (a
    /// doubled arena held up to half of it unused), for an amortised copy of about 8 bytes per
    /// byte appended (strings are appended once).
    @inline(__always)
    static func growByAnEighth<T>(_ a: inout [T], adding n: Int) {
        let need = a.count + n
        if need > a.capacity { a.reserveCapacity(Swift.max(need, a.count + a.count / 8, 64)) }
    }

    /// The id of the byte string, if interned.
    
    public func lookup(_ p: UnsafeBufferPointer<UInt8>) -> Int32? {
        let h = Interner.hash(p)
        let tag = h >> 32
        var slot = Int(truncatingIfNeeded: h) & mask
        while true {
            let e = table[slot]
            if e == 0 { return nil }
            if e >> 32 == tag, let id = match(Int(truncatingIfNeeded: e & 0xFFFF_FFFF) - 1, p) { return id }
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
            if e >> 32 == tag, let id = match(Int(truncatingIfNeeded: e & 0xFFFF_FFFF) - 1, p) { return id }
            slot = (slot + 1) & mask
        }
        let id: Int32
        if let reused = free.popLast() {
            id = reused
            starts[Int(id)] = Interner.appendRecord(id, p, to: &arena)
        } else {
            id = Int32(starts.count)
            Interner.growByAnEighth(&starts, adding: 1)
            starts.append(Interner.appendRecord(id, p, to: &arena))
        }
        table[slot] = tag << 32 | (UInt64(starts[Int(id)]) + 1)
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
                continue
            }
            let r = bytesRange(Int32(id))
            starts[id] = arena.withUnsafeBufferPointer { Interner.appendRecord(Int32(id), UnsafeBufferPointer(rebasing: $0[r]), to: &newArena) }
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
                let r = Interner.record(a, Int(starts[id]))
                let h = Interner.hash(UnsafeBufferPointer(rebasing: a[r.start..<(r.start + r.count)]))
                var slot = Int(truncatingIfNeeded: h) & mask
                while table[slot] != 0 { slot = (slot + 1) & mask }
                table[slot] = (h >> 32) << 32 | (UInt64(starts[id]) + 1)
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
        String(decoding: arena[bytesRange(id)], as: UTF8.self)
    }

    /// Appends the raw bytes of an id to a buffer.
    
    public func appendBytes(_ id: Int32, to out: inout [UInt8]) {
        out.append(contentsOf: arena[bytesRange(id)])
    }

    /// Appends the string of an id as a JSON string literal (quoted, escaped).
    public func appendJSONString(_ id: Int32, to out: inout [UInt8]) {
        out.append(34)
        appendEscapedBytes(id, to: &out)
        out.append(34)
    }

    /// Appends the string of an id escaped for the inside of a JSON string literal.
    func appendEscapedBytes(_ id: Int32, to out: inout [UInt8]) {
        let r = bytesRange(id)
        arena.withUnsafeBufferPointer { a in JSONText.appendEscaped(UnsafeBufferPointer(rebasing: a[r]), to: &out) }
    }

    /// Compares two ids by the code points of their strings (UTF-8 byte order).
    public func codePointLess(_ a: Int32, _ b: Int32) -> Bool {
        arena[bytesRange(a)].lexicographicallyPrecedes(arena[bytesRange(b)])
    }

    /// Approximate bytes held.
    public var memoryBytes: Int { arena.capacity + starts.capacity * 4 + table.capacity * 8 + free.capacity * 4 }
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
