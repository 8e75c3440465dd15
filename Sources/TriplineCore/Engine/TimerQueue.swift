/// A timer: when the watermark reaches `deadline`, the engine hands it back to the evaluator
/// of `rule`. `a`, `b` and `generation` are the evaluator's own (a key and a staleness check).
/// 24 bytes: timers with equal deadlines keep the order they were set in by their place in the
/// queue, not by a stored sequence number (see `TimerQueue`).
public struct EngineTimer: Sendable {
    public var deadline: Millis
    public var rule: Int32
    public var a: Int32
    public var b: Int32
    public var generation: UInt32
}

/// A binary min-heap ordered by the element's own `heapLess`.
struct MinHeap<Element: HeapOrdered> {
    var items: [Element] = []

    var isEmpty: Bool { items.isEmpty }
    var count: Int { items.count }
    var min: Element? { items.first }

    mutating func push(_ e: Element) {
        items.append(e)
        var i = items.count - 1
        while i > 0 {
            let p = (i - 1) / 2
            if Element.heapLess(items[i], items[p]) { items.swapAt(i, p); i = p } else { break }
        }
    }

    /// Removes and returns the smallest element.
    mutating func popMin() -> Element? {
        guard let top = items.first else { return nil }
        let last = items.removeLast()
        if !items.isEmpty {
            items[0] = last
            var i = 0
            let n = items.count
            while true {
                let l = 2 * i + 1, r = l + 1
                var m = i
                if l < n && Element.heapLess(items[l], items[m]) { m = l }
                if r < n && Element.heapLess(items[r], items[m]) { m = r }
                if m == i { break }
                items.swapAt(i, m)
                i = m
            }
        }
        return top
    }
}

/// An element of a `MinHeap`.
protocol HeapOrdered {
    static func heapLess(_ x: Self, _ y: Self) -> Bool
}

/// A timer in the early heap, with the order it was set in (the heap does not keep it).
struct EarlyTimer: HeapOrdered {
    var timer: EngineTimer
    var sequence: UInt64
    /// Deadline order; equal deadlines in the order they were set.
    static func heapLess(_ x: EarlyTimer, _ y: EarlyTimer) -> Bool {
        x.timer.deadline < y.timer.deadline || (x.timer.deadline == y.timer.deadline && x.sequence < y.sequence)
    }
}

/// Timers in deadline order; equal deadlines fire in the order they were set.
///
/// A calendar queue: timers are appended to the bucket of their deadline (1.024 s of event
/// time each) and a bucket is sorted once, when the watermark reaches it. Only the bucket ids
/// are kept in a heap, so a push is an append and a pop reads the next element of a sorted
/// array, instead of sifting through a heap of millions of timers (one cache miss per level).
/// Timers pushed into the bucket being consumed (or an earlier one) go to a small heap that
/// pops merge with the sorted bucket, so the order is exactly (deadline, insertion).
///
/// No sequence number is stored per timer (24 bytes, not 32). A bucket's timers are appended
/// in the order they were set and sorted stably by deadline (a counting sort on the deadline's
/// 10 bits within the bucket; an insertion sort for small buckets). The early heap's timers
/// carry their sequence number. A bucket is taken only when the early heap is empty, so every
/// timer in the heap was set after every timer of the current bucket: on equal deadlines the
/// bucket's comes first.
public struct TimerQueue: Sendable {
    static let shift: Millis = 10

    /// The bucket being consumed, sorted; `cursor` is its next timer.
    var current: [EngineTimer] = []
    var cursor = 0
    /// Id of the bucket in `current` (.min before the first is taken).
    var currentBucket: Millis = .min
    /// Timers pushed at or before `currentBucket` after it was taken.
    var early = MinHeap<EarlyTimer>()
    /// The counting sort's input copy and counts, reused from bucket to bucket.
    var sortScratch: [EngineTimer] = []
    var sortCounts = [Int32](repeating: 0, count: 1 << TimerQueue.shift)
    /// Later buckets: id -> slot in `pool`; the ids in a heap.
    var slots: [Millis: Int] = [:]
    var bucketIds = MinHeap<Millis>()
    var pool: [[EngineTimer]] = []
    var freeSlots: [Int] = []
    var nextSequence: UInt64 = 0
    public private(set) var count = 0
    /// No pending timer is due before this (.max: none pending); lets the engine skip `pop`
    /// on the many events that come before the next deadline.
    public private(set) var lowerBound: Millis = .max
    /// The last buckets appended to and their slots (direct-mapped by bucket id), so that a
    /// schedule into a bucket seen recently skips the dictionary.
    var recentBucket = [Millis](repeating: .min, count: 8)
    var recentSlot = [Int](repeating: 0, count: 8)

    public init() {}

    public var isEmpty: Bool { count == 0 }

    /// The earliest deadline pending.
    public var nextDeadline: Millis? {
        var best: Millis? = nil
        if cursor < current.count { best = current[cursor].deadline }
        if let e = early.min?.timer, best.map({ e.deadline < $0 }) ?? true { best = e.deadline }
        if best == nil, let b = bucketIds.min, let slot = slots[b] { best = pool[slot].lazy.map(\.deadline).min() }
        return best
    }

    public mutating func schedule(deadline: Millis, rule: Int32, a: Int32, b: Int32 = -1, generation: UInt32 = 0) {
        let t = EngineTimer(deadline: deadline, rule: rule, a: a, b: b, generation: generation)
        count += 1
        if deadline < lowerBound { lowerBound = deadline }
        let bucket = deadline >> Self.shift
        if bucket <= currentBucket {
            early.push(EarlyTimer(timer: t, sequence: nextSequence))
            nextSequence += 1
            return
        }
        let r = Int(truncatingIfNeeded: bucket) & 7
        if recentBucket[r] == bucket {
            pool[recentSlot[r]].append(t)
        } else if let slot = slots[bucket] {
            pool[slot].append(t)
            recentBucket[r] = bucket
            recentSlot[r] = slot
        } else {
            let slot: Int
            if let f = freeSlots.popLast() {
                slot = f
            } else {
                slot = pool.count
                pool.append([])
            }
            pool[slot].append(t)
            slots[bucket] = slot
            bucketIds.push(bucket)
            recentBucket[r] = bucket
            recentSlot[r] = slot
        }
    }

    /// Sets `lowerBound` to the earliest pending deadline, or the start of the earliest
    /// pending bucket.
    mutating func resetLowerBound() {
        var b = Millis.max
        if cursor < current.count { b = current[cursor].deadline }
        if let e = early.min?.timer, e.deadline < b { b = e.deadline }
        if let id = bucketIds.min, id << Self.shift < b { b = id << Self.shift }
        lowerBound = b
    }

    /// Removes and returns the earliest timer if its deadline is <= `limit`.
    public mutating func pop(upTo limit: Millis) -> EngineTimer? {
        while true {
            let hasCurrent = cursor < current.count
            // On equal deadlines the current bucket's timer was set first (see the type's notes).
            if let e = early.min?.timer, !hasCurrent || e.deadline < current[cursor].deadline {
                guard e.deadline <= limit else { resetLowerBound(); return nil }
                count -= 1
                return early.popMin()!.timer
            }
            if hasCurrent {
                let t = current[cursor]
                guard t.deadline <= limit else { resetLowerBound(); return nil }
                cursor += 1
                count -= 1
                return t
            }
            // The current bucket and the early heap are empty: take the next bucket if due.
            guard let b = bucketIds.min, b <= limit >> Self.shift else { resetLowerBound(); return nil }
            _ = bucketIds.popMin()
            let slot = slots.removeValue(forKey: b)!
            if recentBucket[Int(truncatingIfNeeded: b) & 7] == b { recentBucket[Int(truncatingIfNeeded: b) & 7] = .min }
            current.removeAll(keepingCapacity: true)
            swap(&current, &pool[slot])
            freeSlots.append(slot)
            sortBucket()
            cursor = 0
            currentBucket = b
        }
    }
}

extension TimerQueue {
    /// Sorts `current` (one bucket's timers, in the order they were set) stably by deadline.
    mutating func sortBucket() {
        let n = current.count
        if n < 2 { return }
        let mask = Millis(1 << Self.shift - 1)
        if n <= 32 {
            // Insertion sort, stable: a timer moves only past later deadlines.
            current.withUnsafeMutableBufferPointer { a in
                for i in 1..<n {
                    let x = a[i]
                    var j = i
                    while j > 0 && a[j - 1].deadline > x.deadline { a[j] = a[j - 1]; j -= 1 }
                    a[j] = x
                }
            }
            return
        }
        // Counting sort on the deadline's offset within the bucket (all of a bucket's
        // deadlines share the bits above it), stable.
        sortScratch.removeAll(keepingCapacity: true)
        sortScratch.append(contentsOf: current)
        sortCounts.withUnsafeMutableBufferPointer { c in
            for i in c.indices { c[i] = 0 }
            sortScratch.withUnsafeBufferPointer { a in
                for t in a { c[Int(t.deadline & mask)] += 1 }
                var sum: Int32 = 0
                for i in c.indices { let k = c[i]; c[i] = sum; sum += k }
                current.withUnsafeMutableBufferPointer { out in
                    for t in a {
                        let k = Int(t.deadline & mask)
                        out[Int(c[k])] = t
                        c[k] += 1
                    }
                }
            }
        }
    }
}

extension Millis: HeapOrdered {
    static func heapLess(_ x: Millis, _ y: Millis) -> Bool { x < y }
}

/// Events waiting for the watermark, released in (time, arrival) order.
struct PendingEvents {
    struct Item: HeapOrdered {
        var event: Event
        var ref: EventRef
        var arrival: UInt64
        static func heapLess(_ x: Item, _ y: Item) -> Bool {
            x.event.time < y.event.time || (x.event.time == y.event.time && x.arrival < y.arrival)
        }
    }
    var heap = MinHeap<Item>()

    var isEmpty: Bool { heap.isEmpty }

    mutating func push(_ item: Item) { heap.push(item) }

    mutating func pop(upTo limit: Millis) -> Item? {
        guard let top = heap.min, top.event.time <= limit else { return nil }
        return heap.popMin()
    }
}

extension MinHeap: Sendable where Element: Sendable {}
