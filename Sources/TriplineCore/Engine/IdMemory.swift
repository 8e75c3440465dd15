/// Bounded id memory (spec v1.2, `dedup_window`): an id accepted with event time s is
/// remembered while the watermark is at most s + window, and the engine keeps only those ids.
///
/// - Given ids: `Engine.idMemory` maps (entity, id) to the time they were accepted with; a
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
            while h < count && Engine.recordTime(r[h].time) + window < watermark { h += 1 }
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
    /// Removes the given ids the watermark has moved past (time + window < watermark) from
    /// the front of the queue. An id whose entry was refreshed by a later acceptance stays.
    func forgetIds() {
        let window = options.dedupWindow
        while !idQueue.isEmpty {
            let h = idQueue.head
            let t = idQueue.times[h]
            if t + window >= watermark { break }
            let k = idQueue.keys[h]
            if idMemory[k] == t { idMemory[k] = nil }
            let a = idQueue.assigned[h]
            if a != .max {
                let e = Int32(bitPattern: UInt32(truncatingIfNeeded: k >> 32))
                if givenAssignedForm[e]?[a] == t {
                    givenAssignedForm[e]![a] = nil
                    if givenAssignedForm[e]!.isEmpty { givenAssignedForm[e] = nil }
                }
            }
            idQueue.head += 1
        }
        idQueue.compactIfNeeded()
        arrivalRing.trim(window: window, watermark: watermark)
    }

    @inline(__always)
    static func recordTime(_ r: Int64) -> Millis { r >= 0 ? r : -1 - r }

    /// Records the current arrival of entity `ei`: its time, or -1 - time when it was not
    /// accepted under its assigned id (given id, late, duplicate).
    @inline(__always)
    func logArrival(_ ei: Int, _ record: Int64) {
        entities[ei].lastArrival = arrivalRing.push(record, previous: entities[ei].lastArrival)
    }

    /// Is arrival k of the entity (k below its current arrival, which is not logged yet)
    /// accepted under its assigned id and still remembered?
    func assignedRemembered(_ ei: Int, _ k: UInt32) -> Bool {
        // The latest logged arrival is number arrivals - 1; walk back to k.
        var steps = Int(entities[ei].arrivals) - 1 - Int(k)
        var g = entities[ei].lastArrival
        guard steps >= 0 else { return false }
        while true {
            guard let r = arrivalRing.record(g) else { return false }   // trimmed: forgotten
            if steps == 0 { return r.time >= 0 && r.time + options.dedupWindow >= watermark }
            g = r.previous
            steps -= 1
        }
    }

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

    /// Every given id the engine holds, once or more.
    func forEachGivenId(_ mark: (Int32) -> Void) {
        @inline(__always) func ref(_ r: EventRef) { if r.isGiven { mark(r.givenIndex) } }
        func refs(_ t: TimedRefs) { for i in t.head..<t.entries.count { ref(t.entries[i].ref) } }
        for s in idMemory.slots where s.key != IntMap<Millis>.emptyKey { mark(Int32(bitPattern: UInt32(truncatingIfNeeded: s.key))) }
        for item in pending.heap.items {
            ref(item.ref)
            if item.event.givenId >= 0 { mark(item.event.givenId) }
        }
        for e in entities where e.ready { ref(e.lastRef) }
        for a in emitter.alerts { for r in a.evidence { ref(r) } }
        for g in absence.groups { for s in g.seen.slots where s.key != IntMap<AbsenceEvaluator.Seen>.emptyKey { ref(s.value!.ref) } }
        for m in dwell.rules { for s in m.visits.slots where s.key != IntMap<DwellEvaluator.Visit>.emptyKey { ref(s.value!.ref) } }
        for m in gathering.rules {
            for c in m.crowds.slots where c.key != IntMap<GatheringEvaluator.Crowd>.emptyKey {
                for p in c.value!.members.slots where p.key != IntMap<GatheringEvaluator.Presence>.emptyKey { ref(p.value!.ref) }
            }
        }
        for g in proximity.grids { for s in g.latest.slots where s.key != IntMap<ProximityEvaluator.Latest>.emptyKey { ref(s.value!.ref) } }
        for g in frequency.groups { for s in g.tracks.slots where s.key != IntMap<FrequencyEvaluator.Track>.emptyKey { refs(s.value!.refs) } }
        for d in novelty.detectors {
            for m in d.members { for s in m.count.tracks.slots where s.key != IntMap<SlidingCount.Track>.emptyKey { refs(s.value!.refs) } }
        }
        for m in sequence.rules {
            for s in m.partials.slots where s.key != IntMap<[SequenceEvaluator.Partial?]>.emptyKey {
                for p in s.value! { if let p { for r in p.refs { ref(r) } } }
            }
        }
    }
}

extension Engine {
    /// The id memory at this moment: given ids remembered for duplicate detection, given-id
    /// strings held, and the bytes of both (the interner, the map and its queue).
    public var idMemoryStats: (remembered: Int, interned: Int, bytes: Int) {
        (idMemory.count, symbols.eventIds.liveCount,
         symbols.eventIds.memoryBytes + idMemory.memoryBytes + idQueue.memoryBytes)
    }
}
