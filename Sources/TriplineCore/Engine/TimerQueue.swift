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

/// Timers in deadline order; equal deadlines fire in the order they were set.
/// A binary min-heap on (deadline, sequence).
public struct TimerQueue: Sendable {
    var heap: [EngineTimer] = []
    var nextSequence: UInt64 = 0

    public init() {}

    public var count: Int { heap.count }
    public var isEmpty: Bool { heap.isEmpty }
    public var nextDeadline: Millis? { heap.first?.deadline }

    @inline(__always)
    static func less(_ x: EngineTimer, _ y: EngineTimer) -> Bool {
        x.deadline < y.deadline || (x.deadline == y.deadline && x.sequence < y.sequence)
    }

    public mutating func schedule(deadline: Millis, rule: Int32, a: Int32, b: Int32 = -1, generation: UInt32 = 0) {
        heap.append(EngineTimer(deadline: deadline, sequence: nextSequence, rule: rule, a: a, b: b, generation: generation))
        nextSequence += 1
        var i = heap.count - 1
        while i > 0 {
            let p = (i - 1) / 2
            if TimerQueue.less(heap[i], heap[p]) { heap.swapAt(i, p); i = p } else { break }
        }
    }

    /// Removes and returns the earliest timer if its deadline is <= `limit`.
    public mutating func pop(upTo limit: Millis) -> EngineTimer? {
        guard let top = heap.first, top.deadline <= limit else { return nil }
        let last = heap.removeLast()
        if !heap.isEmpty {
            heap[0] = last
            var i = 0
            let n = heap.count
            while true {
                let l = 2 * i + 1, r = l + 1
                var m = i
                if l < n && TimerQueue.less(heap[l], heap[m]) { m = l }
                if r < n && TimerQueue.less(heap[r], heap[m]) { m = r }
                if m == i { break }
                heap.swapAt(i, m)
                i = m
            }
        }
        return top
    }
}

/// Events waiting for the watermark, released in (time, arrival) order.
struct PendingEvents {
    struct Item {
        var event: Event
        var ref: EventRef
        var arrival: UInt64
    }
    var heap: [Item] = []

    var isEmpty: Bool { heap.isEmpty }
    var count: Int { heap.count }
    var minTime: Millis? { heap.first?.event.time }

    @inline(__always)
    static func less(_ x: Item, _ y: Item) -> Bool {
        x.event.time < y.event.time || (x.event.time == y.event.time && x.arrival < y.arrival)
    }

    mutating func push(_ item: Item) {
        heap.append(item)
        var i = heap.count - 1
        while i > 0 {
            let p = (i - 1) / 2
            if PendingEvents.less(heap[i], heap[p]) { heap.swapAt(i, p); i = p } else { break }
        }
    }

    mutating func pop(upTo limit: Millis) -> Item? {
        guard let top = heap.first, top.event.time <= limit else { return nil }
        let last = heap.removeLast()
        if !heap.isEmpty {
            heap[0] = last
            var i = 0
            let n = heap.count
            while true {
                let l = 2 * i + 1, r = l + 1
                var m = i
                if l < n && PendingEvents.less(heap[l], heap[m]) { m = l }
                if r < n && PendingEvents.less(heap[r], heap[m]) { m = r }
                if m == i { break }
                heap.swapAt(i, m)
                i = m
            }
        }
        return top
    }
}
