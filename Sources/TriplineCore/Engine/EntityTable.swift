import CTriplineSupport

/// A value an `EntityTable` can hold. `vacant` (which `isVacant` tells) marks an absent
/// entity in the array form, so it is never stored as a value.
protocol EntityTableValue: IntMapValue {
    var isVacant: Bool { get }
}

/// Values keyed by entity id (the engine's interned ids: dense, from 0, never released), with
/// no removal.
///
/// It starts as an `IntMap`: a slot is an 8-byte key and the value, in a table 2/5 to 4/5
/// full. When the table is full (it would double) and an array indexed by id, up to the
/// largest id seen, would take at most 3/4 of the doubled table, it turns into that array
/// instead, and stays one (ids only grow). The 1/4 left is room for ids still to come: the
/// doubled table could take 3/5 more entries, the array pays for every new id. So a table
/// that holds well over half of the entities costs the value's stride per entity id (20
/// bytes for a proximity record, 8 for a reading, against 40 to 80 and 20 to 40 bytes per
/// held entity in the hash table's 32- and 16-byte slots), and
/// one that holds a few of many entities stays a hash table. The array grows by an eighth at a
/// time, not by Swift's doubling. Look-ups in the array form read one element: no hashing, no
/// probe.
struct EntityTable<Value: EntityTableValue> {
    private(set) var sparse = IntMap<Value>()
    /// The array form: element `id` is the value of entity `id`, `vacant` when absent.
    private(set) var dense: [Value] = []
    private(set) var isDense = false
    private var denseCount = 0
    /// The largest id inserted, plus 1 (the array form's length when it is taken).
    private var idLimit = 0
    /// Where `dense`'s elements are, for `prefetch` only (as `IntMap.prefetchBase`).
    private var denseBase: UInt = 0

    var count: Int { isDense ? denseCount : sparse.count }

    @inline(__always)
    subscript(id: Int32) -> Value? {
        if isDense {
            let i = Int(id)
            guard i < dense.count else { return nil }
            let v = dense[i]
            return v.isVacant ? nil : v
        }
        return sparse[key(id)]
    }

    @inline(__always)
    func contains(_ id: Int32) -> Bool { self[id] != nil }

    /// Stores `v` (never `vacant`) for entity `id`.
    @inline(__always)
    mutating func insert(_ id: Int32, _ v: Value) { _ = exchange(id, v) }

    /// Stores `v` (never `vacant`) for entity `id` and returns the value it replaces (nil
    /// when the entity was absent).
    @inline(__always)
    mutating func exchange(_ id: Int32, _ v: Value) -> Value? {
        precondition(id >= 0 && !v.isVacant, "an entity table takes ids from 0 and values that are not vacant")
        let i = Int(id)
        if !isDense {
            if !takesArray(i) {
                idLimit = Swift.max(idLimit, i + 1)
                return sparse.exchange(key(id), v)
            }
            becomeDense()
        }
        if i >= dense.count { extend(to: i + 1) }
        let old = dense[i]
        dense[i] = v
        if old.isVacant {
            denseCount += 1
            return nil
        }
        return old
    }

    /// In the hash form: does storing id `i` turn the table into the array? Only when the
    /// table is full (the id is new, so it would double), and the array up to the largest id
    /// would take at most 3/4 of the doubled table.
    @inline(__always)
    private func takesArray(_ i: Int) -> Bool {
        sparse.isFull && (i + 1 > idLimit || !sparse.contains(UInt64(i)))
            && Swift.max(idLimit, i + 1) * MemoryLayout<Value>.stride * 4 <= 2 * sparse.memoryBytes * 3
    }

    /// Mutates the value of entity `id` in place if present (`body` must not make it vacant).
    @inline(__always)
    @discardableResult
    mutating func modify<R>(_ id: Int32, _ body: (inout Value) -> R) -> R? {
        if isDense {
            let i = Int(id)
            guard i < dense.count, !dense[i].isVacant else { return nil }
            return body(&dense[i])
        }
        return sparse.modify(key(id), body)
    }

    /// Starts loading the place of entity `id` (a hint; never dereferenced here).
    @inline(__always)
    func prefetch(_ id: Int32) {
        if isDense {
            tripline_prefetch(UnsafeRawPointer(bitPattern: denseBase &+ UInt(bitPattern: Int(id) &* MemoryLayout<Value>.stride)))
        } else {
            sparse.prefetch(key(id))
        }
    }

    /// Bytes held by the table itself (not by what values point to).
    var memoryBytes: Int { isDense ? dense.capacity * MemoryLayout<Value>.stride : sparse.memoryBytes }

    private mutating func becomeDense() {
        var d: [Value] = []
        d.reserveCapacity(idLimit)
        d.append(contentsOf: repeatElement(Value.vacant, count: idLimit))
        for s in sparse.slots where s.key != IntMap<Value>.emptyKey { d[Int(s.key)] = s.value }
        denseCount = sparse.count
        sparse = IntMap()
        dense = d
        isDense = true
        noteDenseBase()
    }

    /// Makes ids below `n` addressable, growing the array by at least an eighth.
    private mutating func extend(to n: Int) {
        if n > dense.capacity {
            dense.reserveCapacity(Swift.max(n, dense.count + dense.count / 8 + 16))
        }
        dense.append(contentsOf: repeatElement(Value.vacant, count: n - dense.count))
        noteDenseBase()
    }

    private mutating func noteDenseBase() {
        denseBase = dense.withUnsafeBufferPointer { UInt(bitPattern: $0.baseAddress) }
    }
}
