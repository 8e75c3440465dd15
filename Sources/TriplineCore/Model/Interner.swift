/// Maps byte strings to dense integer ids without creating a `String` per lookup.
/// Open addressing over an arena of bytes; FNV-1a hashing.
public struct Interner: Sendable {
    var arena: [UInt8] = []
    var starts: [Int32] = []
    var ends: [Int32] = []
    var hashes: [UInt64] = []
    /// Slots: 0 = empty, else (upper 32 bits of the hash) << 32 | (id + 1).
    var table: [UInt64]
    var mask: Int

    public init(capacity: Int = 1024) {
        var cap = 16
        while cap < capacity * 2 { cap <<= 1 }
        table = Array(repeating: 0, count: cap)
        mask = cap - 1
    }

    /// Number of distinct strings.
    public var count: Int { starts.count }

    
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
        let id = Int32(starts.count)
        starts.append(Int32(arena.count))
        arena.append(contentsOf: p)
        ends.append(Int32(arena.count))
        hashes.append(h)
        table[slot] = tag << 32 | UInt64(id + 1)
        if starts.count * 2 > table.count { grow() }
        return id
    }

    mutating func grow() {
        let cap = table.count * 2
        table = Array(repeating: 0, count: cap)
        mask = cap - 1
        for id in 0..<starts.count {
            var slot = Int(truncatingIfNeeded: hashes[id]) & mask
            while table[slot] != 0 { slot = (slot + 1) & mask }
            table[slot] = (hashes[id] >> 32) << 32 | UInt64(id + 1)
        }
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

    /// Compares two ids by the code points of their strings (UTF-8 byte order).
    public func codePointLess(_ a: Int32, _ b: Int32) -> Bool {
        let sa = Int(starts[Int(a)]), ea = Int(ends[Int(a)])
        let sb = Int(starts[Int(b)]), eb = Int(ends[Int(b)])
        return arena[sa..<ea].lexicographicallyPrecedes(arena[sb..<eb])
    }

    /// Approximate bytes held.
    public var memoryBytes: Int { arena.capacity + starts.capacity * 8 + hashes.capacity * 8 + table.capacity * 8 }
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

extension Symbols {
    /// How many strings each interner holds.
    public var counts: (Int, Int, Int) { (entities.count, eventIds.count, names.count) }

    /// Everything interned since `counts`.
    public func delta(since counts: (Int, Int, Int)) -> (InternerDelta, InternerDelta, InternerDelta) {
        (entities.delta(from: counts.0), eventIds.delta(from: counts.1), names.delta(from: counts.2))
    }

    /// Replays a delta from another `Symbols` that started equal to this one.
    public mutating func apply(_ d: (InternerDelta, InternerDelta, InternerDelta)) {
        entities.apply(d.0)
        eventIds.apply(d.1)
        names.apply(d.2)
    }
}
