/// Bounded id memory (spec v1.2, `dedup_window`): an id accepted with event time s is
/// remembered while the watermark is at most s + window, and the engine keeps only those ids.
///
/// - Given ids: `Engine.idMemory` maps (entity, id) to the time they were accepted with; a
///   look-up that finds a time older than the window treats the id as forgotten, so the
///   window is exact whatever the order of removal. `IdQueue` lists them in acceptance order
///   and removes them from the map once forgotten.
/// - Assigned ids (`<entity>#<n>`) are implied by the arrival count; each entity keeps the
///   times of its arrivals inside the window (`EntityState.arrivalLog`), so that a given id
///   spelled `<entity>#<k>` is a duplicate exactly when arrival k was accepted under its
///   assigned id and is still remembered.
/// - The strings of given ids live in `Symbols.eventIds`; `compactIds()` releases those that
///   are neither remembered nor referenced by any rule's state or a buffered event or alert.
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
        sweepArrivalLogs()
    }

    @inline(__always)
    static func recordTime(_ r: Int64) -> Millis { r >= 0 ? r : -1 - r }

    /// Drops the entity's oldest arrival records that the watermark has moved past.
    @inline(__always)
    func trimArrivals(_ ei: Int) {
        let window = options.dedupWindow
        var head = Int(entities[ei].logHead)
        let count = entities[ei].arrivalLog.count
        if head == count { return }
        let w = watermark
        entities[ei].arrivalLog.withUnsafeBufferPointer { log in
            while head < count && Self.recordTime(log[head]) + window < w { head += 1 }
        }
        if head == count {
            entities[ei].arrivalLog.removeAll(keepingCapacity: count <= 16)
            head = 0
        } else if head > 16 && head * 2 > count {
            entities[ei].arrivalLog.removeFirst(head)
            head = 0
        }
        entities[ei].logHead = UInt32(head)
    }

    /// Is arrival k of the entity (k below its latest arrival) accepted under its assigned id
    /// and still remembered? Call after `trimArrivals`, before the current arrival is logged.
    func assignedRemembered(_ ei: Int, _ k: UInt32) -> Bool {
        let head = Int(entities[ei].logHead)
        let log = entities[ei].arrivalLog
        let held = log.count - head
        // The log holds arrivals (n - held) ... (n - 1), n being the current one.
        let first = Int(entities[ei].arrivals) - held
        let i = Int(k) - first
        guard i >= 0, i < held else { return false }
        let r = log[head + i]
        return r >= 0 && r + options.dedupWindow >= watermark
    }

    /// Entities that have gone silent keep their arrival records until they are next seen;
    /// this trims two of them at each watermark step (round robin), so the records of the
    /// whole estate stay within the window plus one sweep, at a cost per event that does not
    /// grow with the estate.
    func sweepArrivalLogs() {
        let n = entities.count
        if n == 0 { return }
        for _ in 0..<min(n, 2) {
            if sweepCursor >= n { sweepCursor = 0 }
            if entities[sweepCursor].ready { trimArrivals(sweepCursor) }
            sweepCursor += 1
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
