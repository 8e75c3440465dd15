/// A timer: when the watermark reaches `deadline`, the engine hands it back to the evaluator
/// of `rule`. `a`, `b` and `generation` are the evaluator's own (a key and a staleness check).
public struct EngineTimer: Sendable {
    public var deadline: Millis
    public var sequence: UInt64
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

extension EngineTimer: HeapOrdered {
    /// Deadline order; equal deadlines in the order they were set.
    static func heapLess(_ x: EngineTimer, _ y: EngineTimer) -> Bool {
        x.deadline < y.deadline || (x.deadline == y.deadline && x.sequence < y.sequence)
    }
}

/// Timers in deadline order; equal deadlines fire in the order they were set.
public struct TimerQueue: Sendable {
    var heap = MinHeap<EngineTimer>()
    var nextSequence: UInt64 = 0

    public init() {}

    public var count: Int { heap.count }
    public var isEmpty: Bool { heap.isEmpty }
    public var nextDeadline: Millis? { heap.min?.deadline }

    public mutating func schedule(deadline: Millis, rule: Int32, a: Int32, b: Int32 = -1, generation: UInt32 = 0) {
        heap.push(EngineTimer(deadline: deadline, sequence: nextSequence, rule: rule, a: a, b: b, generation: generation))
        nextSequence += 1
    }

    /// Removes and returns the earliest timer if its deadline is <= `limit`.
    public mutating func pop(upTo limit: Millis) -> EngineTimer? {
        guard let top = heap.min, top.deadline <= limit else { return nil }
        return heap.popMin()
    }
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
