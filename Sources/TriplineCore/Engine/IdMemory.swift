/// Bounded id memory (spec v1.2, `dedup_window`): an id accepted with event time s is
/// remembered while the watermark is at most s + window, and the engine keeps only those ids.
///
/// - Given ids: `TimeCore.idMemory` maps (entity, id) to the time they were accepted with; a
///   look-up that finds a time older than the window treats the id as forgotten, so the
///   window is exact whatever the order of removal. `IdQueue` lists them in acceptance order
///   and removes them from the map once forgotten.
/// - Assigned ids (`<entity>#<n>`) are implied by the arrival count; the times of the
///   arrivals inside the window are kept in one ring in arrival order (`ArrivalRing`, each
///   record linked to the same entity's previous one), so that a given id spelled
///   `<entity>#<k>` is a duplicate exactly when arrival k was accepted under its assigned id
///   and is still remembered. One sequential append per event; the rare look-up walks the
///   entity's links back from its latest arrival.
/// - The strings of given ids live in `Symbols.eventIds`; `compactIds()` releases those that
///   are neither remembered nor referenced by any rule's state or a buffered event or alert.
/// The arrivals of all entities inside the dedup window, in arrival order: per record, the
/// event time (or -1 - time when not accepted under its assigned id) and the ring position of
/// the same entity's previous arrival. Records are dropped from the front once their time +
/// window is below the watermark; a record behind a later-timed one waits for it (at most the
/// allowed lateness), which a look-up's exact time check makes harmless.
struct ArrivalRing {
    struct Record {
        var time: Int64
        var previous: Int64
    }
    var records: [Record] = []
    /// Ring position of records[0].
    var base: Int64 = 0
    var head = 0

    var memoryBytes: Int { records.capacity * MemoryLayout<Record>.stride }

    @inline(__always)
    mutating func push(_ time: Int64, previous: Int64) -> Int64 {
        records.append(Record(time: time, previous: previous))
        return base + Int64(records.count - 1)
    }

    /// The record at ring position g, if still held.
    func record(_ g: Int64) -> Record? {
        guard g >= 0 else { return nil }
        let i = g - base
        guard i >= Int64(head), i < Int64(records.count) else { return nil }
        return records[Int(i)]
    }

    mutating func trim(window: Millis, watermark: Millis) {
        let count = records.count
        if head == count { return }
        var h = head
        records.withUnsafeBufferPointer { r in
            while h < count && TimeCore.recordTime(r[h].time) + window < watermark { h += 1 }
        }
        head = h
        if head == count {
            base += Int64(count)
            records.removeAll(keepingCapacity: count <= 65_536)
            head = 0
        } else if head > 65_536 && head * 2 > count {
            records.removeFirst(head)
            base += Int64(head)
            head = 0
        }
    }
}

struct IdQueue {
    var keys: [UInt64] = []
    var times: [Millis] = []
    /// The n of an id spelled `<entity>#<n>`, or UInt32.max.
    var assigned: [UInt32] = []
    var head = 0

    var isEmpty: Bool { head == keys.count }
    var memoryBytes: Int { keys.capacity * 8 + times.capacity * 8 + assigned.capacity * 4 }

    mutating func push(key: UInt64, time: Millis, assignedForm: UInt32) {
        keys.append(key)
        times.append(time)
        assigned.append(assignedForm)
    }

    mutating func compactIfNeeded() {
        if head == keys.count {
            keys.removeAll(keepingCapacity: keys.capacity <= 4096)
            times.removeAll(keepingCapacity: times.capacity <= 4096)
            assigned.removeAll(keepingCapacity: assigned.capacity <= 4096)
            head = 0
        } else if head > 4096 && head * 2 > keys.count {
            keys.removeFirst(head)
            times.removeFirst(head)
            assigned.removeFirst(head)
            head = 0
        }
    }
}

extension Engine {
    /// Releases the strings of given event ids that nothing holds any more: not remembered
    /// for duplicate detection, not referenced by a rule's state, a buffered event or an alert
    /// not yet drained. Call between batches (never while events whose ids were interned are
    /// waiting to be ingested). Does nothing until the interner has grown to twice what was
    /// live after the last collection (at least 65,536 ids), so its cost is amortised.
    /// Returns how many ids were released.
    @discardableResult
    public func compactIds(force: Bool = false) -> Int {
        let ids = symbols.eventIds
        guard force || ids.liveCount > max(65_536, 2 * liveIdsAfterCollection) else { return 0 }
        var live = [Bool](repeating: false, count: ids.count)
        forEachGivenId { live[Int($0)] = true }
        let before = symbols.eventIds.liveCount
        symbols.eventIds.retain(live)
        liveIdsAfterCollection = symbols.eventIds.liveCount
        return before - liveIdsAfterCollection
    }

    /// Every given id the engine holds, once or more: remembered or buffered (the time core),
    /// an entity's latest position, an alert not yet drained, or a rule's state.
    func forEachGivenId(_ mark: (Int32) -> Void) {
        @inline(__always) func ref(_ r: EventRef) { if r.isGiven { mark(r.givenIndex) } }
        time.forEachGivenId(mark)
        for e in entities where e.ready { ref(e.lastRef) }
        for a in emitter.alerts { for r in a.evidence { ref(r) } }
        kinds.absence.forEachRef(ref)
        kinds.dwell.forEachRef(ref)
        kinds.gathering.forEachRef(ref)
        kinds.proximity.forEachRef(ref)
        kinds.frequency.forEachRef(ref)
        kinds.aggregate.forEachRef(ref)
        kinds.novelty.forEachRef(ref)
        kinds.sequence.forEachRef(ref)
    }
}

extension Engine {
    /// The id memory at this moment: given ids remembered for duplicate detection, given-id
    /// strings held, and the bytes of both (the interner, the map and its queue).
    public var idMemoryStats: (remembered: Int, interned: Int, bytes: Int) {
        (time.idMemory.count, symbols.eventIds.liveCount,
         symbols.eventIds.memoryBytes + time.idMemory.memoryBytes + time.idQueue.memoryBytes)
    }
}
