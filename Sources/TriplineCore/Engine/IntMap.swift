import CTriplineSupport

/// A hash map from 64-bit integer keys (interned ids, packed pairs) to values: open
/// addressing with linear probing, a multiplicative hash and backward-shift deletion.
/// Swift's `Dictionary` hashes every key with SipHash; on the per-event path of the
/// evaluators that cost more than the work itself. A key and its value share one slot, so a
/// lookup in a large table costs one cache miss, not two.
///
/// An empty slot is told by its key (`emptyKey`) and holds `Value.vacant`, so a slot is a key
/// and a value with no optional's tag byte: for 8-byte values (times, levels) a slot is 16
/// bytes, not 24.
struct IntMap<Value: IntMapValue> {
    static var emptyKey: UInt64 { .max }
    struct Slot {
        var key: UInt64
        /// `Value.vacant` when `key` is `emptyKey`.
        var value: Value
    }
    /// (Reassigned only in `init` and `grow`, which note the new `prefetchBase`.)
    private(set) var slots: [Slot]
    private(set) var count = 0
    var shift: UInt64
    var mask: Int
    /// Where `slots`' elements were when it was last allocated, for `prefetch` only. Reading
    /// it needs no retain of the array (taking the array's buffer pointer does, twice per
    /// prefetch on the per-event path). It may be stale after a copy-on-write of this map
    /// (a copied map points at the other copy's slots): a prefetch is a hint that never
    /// faults, so a stale or dangling address costs at most a useless load. It is never
    /// dereferenced.
    private(set) var prefetchBase: UInt = 0

    init(capacity: Int = 8) {
        var cap = 8
        while cap * 4 < capacity * 5 { cap <<= 1 }
        slots = Array(repeating: Slot(key: Self.emptyKey, value: .vacant), count: cap)
        mask = cap - 1
        shift = UInt64(64 - cap.trailingZeroBitCount)
        notePrefetchBase()
    }

    private mutating func notePrefetchBase() {
        prefetchBase = slots.withUnsafeBufferPointer { UInt(bitPattern: $0.baseAddress) }
    }

    var isEmpty: Bool { count == 0 }

    /// One more entry would take the table past 4/5 full. (Linear probing with this hash
    /// stays short up to there: at 4/5 a successful look-up reads 3 slots on average, all
    /// in one or two cache lines; half full, the limit before, left tables 3/8 full on
    /// average and cost a third more memory.)
    @inline(__always)
    var isFull: Bool { (count + 1) * 5 > slots.count * 4 }

    @inline(__always)
    func home(_ k: UInt64) -> Int { Int(truncatingIfNeeded: (k &* 0x9E37_79B9_7F4A_7C15) >> shift) }

    @inline(__always)
    func find(_ k: UInt64) -> Int? {
        var i = home(k)
        while true {
            let s = slots[i].key
            if s == k { return i }
            if s == Self.emptyKey { return nil }
            i = (i + 1) & mask
        }
    }

    subscript(k: UInt64) -> Value? {
        get { find(k).map { slots[$0].value } }
        set {
            if let v = newValue { insert(k, v) } else { _ = remove(k) }
        }
    }

    func contains(_ k: UInt64) -> Bool { find(k) != nil }

    /// Starts loading the slot where `k` would be found (a hint, for events a few ahead).
    @inline(__always)
    func prefetch(_ k: UInt64) {
        tripline_prefetch(UnsafeRawPointer(bitPattern: prefetchBase &+ UInt(bitPattern: home(k) &* MemoryLayout<Slot>.stride)))
    }

    /// The slot `k` goes to (it is absent and the table has room).
    @inline(__always)
    func freeSlot(_ k: UInt64) -> Int {
        var i = home(k)
        while slots[i].key != Self.emptyKey { i = (i + 1) & mask }
        return i
    }

    mutating func insert(_ k: UInt64, _ v: Value) {
        precondition(k != Self.emptyKey)
        if let i = find(k) { slots[i].value = v; return }
        if isFull { grow() }
        let i = freeSlot(k)
        slots[i] = Slot(key: k, value: v)
        count += 1
    }

    /// Stores `v` for `k` and returns the value it replaces (nil when `k` was absent).
    @inline(__always)
    mutating func exchange(_ k: UInt64, _ v: Value) -> Value? {
        if let i = find(k) {
            let old = slots[i].value
            slots[i].value = v
            return old
        }
        if isFull { grow() }
        slots[freeSlot(k)] = Slot(key: k, value: v)
        count += 1
        return nil
    }

    /// Mutates the value of `k` in place, inserting `make()` first when absent.
    @inline(__always)
    mutating func update<R>(_ k: UInt64, default make: () -> Value, _ body: (inout Value) -> R) -> R {
        var i: Int
        if let f = find(k) {
            i = f
        } else {
            if isFull { grow() }
            i = freeSlot(k)
            slots[i] = Slot(key: k, value: make())
            count += 1
        }
        return body(&slots[i].value)
    }

    /// Mutates the value of `k` in place if present.
    @inline(__always)
    @discardableResult
    mutating func modify<R>(_ k: UInt64, _ body: (inout Value) -> R) -> R? {
        guard let i = find(k) else { return nil }
        return body(&slots[i].value)
    }

    @discardableResult
    mutating func remove(_ k: UInt64) -> Value? {
        guard let i = find(k) else { return nil }
        let old = slots[i].value
        slots[i] = Slot(key: Self.emptyKey, value: .vacant)
        count -= 1
        backwardShift(hole: i, mask: mask, isOccupied: { slots[$0].key != Self.emptyKey }, home: { home(slots[$0].key) },
                      move: { slots.swapAt($0, $1) })
        return old
    }

    mutating func grow() {
        let old = slots
        let cap = slots.count * 2
        slots = Array(repeating: Slot(key: Self.emptyKey, value: .vacant), count: cap)
        mask = cap - 1
        shift = UInt64(64 - cap.trailingZeroBitCount)
        for s in old where s.key != Self.emptyKey { slots[freeSlot(s.key)] = s }
        notePrefetchBase()
    }

    /// Bytes held by the table itself (not by what values point to).
    var memoryBytes: Int { slots.capacity * MemoryLayout<Slot>.stride }

    /// The entries, in no particular order.
    var entries: [(key: UInt64, value: Value)] {
        var out: [(UInt64, Value)] = []
        out.reserveCapacity(count)
        for s in slots where s.key != Self.emptyKey { out.append((s.key, s.value)) }
        return out
    }
}

/// Backward-shift deletion for linear probing (`IntMap`, `HeadTable`): once slot `hole` is
/// emptied, each later member of its cluster moves into the hole when its home slot allows, so
/// that every key is still found before an empty slot.
@inline(__always)
func backwardShift(hole: Int, mask: Int, isOccupied: (Int) -> Bool, home: (Int) -> Int, move: (_ from: Int, _ to: Int) -> Void) {
    var i = hole
    var j = (i + 1) & mask
    while isOccupied(j) {
        let h = home(j)
        let between = i <= j ? (h > i && h <= j) : (h > i || h <= j)
        if !between {
            move(j, i)
            i = j
        }
        j = (j + 1) & mask
    }
}

@inline(__always) func key(_ a: Int32) -> UInt64 { UInt64(UInt32(bitPattern: a)) }
@inline(__always) func key(_ a: Int32, _ b: Int32) -> UInt64 { UInt64(UInt32(bitPattern: a)) << 32 | UInt64(UInt32(bitPattern: b)) }

/// A value an `IntMap` can hold: `vacant` is what its empty slots hold (never read as an
/// entry; it should own no storage, so that empty slots cost no allocation).
protocol IntMapValue {
    static var vacant: Self { get }
}

extension Int: IntMapValue { static var vacant: Int { 0 } }
extension Int32: IntMapValue { static var vacant: Int32 { 0 } }
extension Int64: IntMapValue { static var vacant: Int64 { 0 } }
extension Double: IntMapValue { static var vacant: Double { 0 } }
extension Bool: IntMapValue { static var vacant: Bool { false } }
extension Array: IntMapValue { static var vacant: [Element] { [] } }
