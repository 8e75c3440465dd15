/// A hash map from 64-bit integer keys (interned ids, packed pairs) to values: open
/// addressing with linear probing, a multiplicative hash and backward-shift deletion.
/// Swift's `Dictionary` hashes every key with SipHash; on the per-event path of the
/// evaluators that cost more than the work itself.
struct IntMap<Value> {
    static var emptyKey: UInt64 { .max }
    var keys: [UInt64]
    var values: [Value?]
    private(set) var count = 0
    var shift: UInt64
    var mask: Int

    init(capacity: Int = 8) {
        var cap = 8
        while cap < capacity * 2 { cap <<= 1 }
        keys = Array(repeating: Self.emptyKey, count: cap)
        values = Array(repeating: nil, count: cap)
        mask = cap - 1
        shift = UInt64(64 - cap.trailingZeroBitCount)
    }

    var isEmpty: Bool { count == 0 }

    @inline(__always)
    func home(_ k: UInt64) -> Int { Int(truncatingIfNeeded: (k &* 0x9E37_79B9_7F4A_7C15) >> shift) }

    @inline(__always)
    func find(_ k: UInt64) -> Int? {
        var i = home(k)
        while true {
            let s = keys[i]
            if s == k { return i }
            if s == Self.emptyKey { return nil }
            i = (i + 1) & mask
        }
    }

    subscript(k: UInt64) -> Value? {
        get { find(k).flatMap { values[$0] } }
        set {
            if let v = newValue { insert(k, v) } else { _ = remove(k) }
        }
    }

    func contains(_ k: UInt64) -> Bool { find(k) != nil }

    mutating func insert(_ k: UInt64, _ v: Value) {
        precondition(k != Self.emptyKey)
        if let i = find(k) { values[i] = v; return }
        if (count + 1) * 2 > keys.count { grow() }
        var i = home(k)
        while keys[i] != Self.emptyKey { i = (i + 1) & mask }
        keys[i] = k
        values[i] = v
        count += 1
    }

    /// Mutates the value of `k` in place, inserting `make()` first when absent.
    @inline(__always)
    mutating func update<R>(_ k: UInt64, default make: () -> Value, _ body: (inout Value) -> R) -> R {
        var i: Int
        if let f = find(k) {
            i = f
        } else {
            if (count + 1) * 2 > keys.count { grow() }
            i = home(k)
            while keys[i] != Self.emptyKey { i = (i + 1) & mask }
            keys[i] = k
            values[i] = make()
            count += 1
        }
        return body(&values[i]!)
    }

    /// Mutates the value of `k` in place if present.
    @inline(__always)
    @discardableResult
    mutating func modify<R>(_ k: UInt64, _ body: (inout Value) -> R) -> R? {
        guard let i = find(k) else { return nil }
        return body(&values[i]!)
    }

    @discardableResult
    mutating func remove(_ k: UInt64) -> Value? {
        guard var i = find(k) else { return nil }
        let old = values[i]
        keys[i] = Self.emptyKey
        values[i] = nil
        count -= 1
        // Backward-shift: move later members of the cluster into the hole when allowed.
        var j = (i + 1) & mask
        while keys[j] != Self.emptyKey {
            let h = home(keys[j])
            let between = i <= j ? (h > i && h <= j) : (h > i || h <= j)
            if !between {
                keys[i] = keys[j]
                values[i] = values[j]
                keys[j] = Self.emptyKey
                values[j] = nil
                i = j
            }
            j = (j + 1) & mask
        }
        return old
    }

    mutating func grow() {
        let oldKeys = keys, oldValues = values
        let cap = keys.count * 2
        keys = Array(repeating: Self.emptyKey, count: cap)
        values = Array(repeating: nil, count: cap)
        mask = cap - 1
        shift = UInt64(64 - cap.trailingZeroBitCount)
        count = 0
        for (i, k) in oldKeys.enumerated() where k != Self.emptyKey { insert(k, oldValues[i]!) }
    }

    /// Bytes held by the table itself (not by what values point to).
    var memoryBytes: Int { keys.capacity * 8 + values.capacity * MemoryLayout<Value?>.stride }

    /// The entries, in no particular order.
    var entries: [(key: UInt64, value: Value)] {
        var out: [(UInt64, Value)] = []
        out.reserveCapacity(count)
        for (i, k) in keys.enumerated() where k != Self.emptyKey { out.append((k, values[i]!)) }
        return out
    }
}

@inline(__always) func key(_ a: Int32) -> UInt64 { UInt64(UInt32(bitPattern: a)) }
@inline(__always) func key(_ a: Int32, _ b: Int32) -> UInt64 { UInt64(UInt32(bitPattern: a)) << 32 | UInt64(UInt32(bitPattern: b)) }
