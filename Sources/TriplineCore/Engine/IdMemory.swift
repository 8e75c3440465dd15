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
/// The arrivals of all entities inside the dedup window, in arrival order: per arrival, its
/// event time, whether it was accepted under its assigned id, and the ring position of the
/// same entity's previous arrival. Arrivals are dropped from the front once their time +
/// window is below the watermark; one behind a later-timed one waits for it (at most the
/// allowed lateness), which a look-up's exact time check makes harmless.
///
/// A record is 8 bytes (it was 16): arrivals live in chunks of at most `chunkSize`, each with
/// a base time, and a record keeps its time as a 32-bit offset from its chunk's base (an
/// arrival more than 24 days from the base starts a new chunk) and the previous arrival as a
/// 31-bit distance back, with the flag "not accepted under its assigned id" in the top bit.
/// A distance that does not fit (more than 2^31 - 2 arrivals in between) is kept in `far`.
/// Whole chunks are released as the front moves, so memory follows the window's arrivals
/// (one array with a moving front held up to twice them, and its capacity up to twice that).
struct ArrivalRing {
    struct Record {
        /// Event time minus the chunk's `baseTime`.
        var offset: Int32
        /// Bit 31: not accepted under its assigned id. Bits 0-30: ring position minus the
        /// previous arrival's (0: none; `farLink`: see `far`).
        var link: UInt32
    }
    struct Chunk {
        /// Ring position of `records[0]`.
        var first: Int64
        var baseTime: Int64
        var records: [Record]
    }
    let chunkSize: Int
    /// Distances from here up go to `far` (2^31 - 1; smaller only in tests).
    let farLink: UInt32
    private(set) var chunks: [Chunk] = []
    /// Ring position of the first arrival still held, and of the next one.
    private(set) var head: Int64 = 0
    private(set) var end: Int64 = 0
    /// The time of the arrival at `head` (when one is held): `trim` has nothing to drop while
    /// it plus the window reaches the watermark, which is almost every call (one per move of
    /// the watermark).
    private(set) var headTime: Int64 = 0
    /// Previous-arrival positions too far back for a record's 31 bits, by ring position.
    private(set) var far: [Int64: Int64] = [:]

    init(chunkSize: Int = 4096, farLink: UInt32 = 0x7FFF_FFFF) {
        precondition(chunkSize > 0 && farLink > 0 && farLink <= 0x7FFF_FFFF)
        self.chunkSize = chunkSize
        self.farLink = farLink
    }

    var memoryBytes: Int {
        chunks.capacity * MemoryLayout<Chunk>.stride
            + chunks.reduce(0) { $0 + $1.records.capacity * MemoryLayout<Record>.stride }
            + far.capacity * 16
    }

    /// Logs the next arrival: `time` (or -1 - time when it was not accepted under its
    /// assigned id) and the ring position of the same entity's previous arrival (-1: none).
    /// Returns its ring position.
    @inline(__always)
    mutating func push(_ time: Int64, previous: Int64) -> Int64 {
        let g = end
        let t = TimeCore.recordTime(time)
        var link: UInt32 = 0
        if previous >= 0 {
            let d = g - previous
            if d < Int64(farLink) { link = UInt32(d) } else { link = farLink; far[g] = previous }
        }
        if time < 0 { link |= 0x8000_0000 }
        let last = chunks.count - 1
        if last >= 0, chunks[last].records.count < chunkSize, let off = Int32(exactly: t - chunks[last].baseTime) {
            chunks[last].records.append(Record(offset: off, link: link))
        } else {
            var records: [Record] = []
            records.reserveCapacity(chunkSize)
            records.append(Record(offset: 0, link: link))
            chunks.append(Chunk(first: g, baseTime: t, records: records))
        }
        if g == head { headTime = t }
        end = g + 1
        return g
    }

    /// The arrival at ring position g, if still held: its time (or -1 - time when not accepted
    /// under its assigned id) and the ring position of the entity's previous arrival (-1: none).
    func record(_ g: Int64) -> (time: Int64, previous: Int64)? {
        guard g >= head, g < end else { return nil }
        // The last chunk whose first position is at most g.
        var lo = 0, hi = chunks.count - 1
        while lo < hi {
            let mid = (lo + hi + 1) / 2
            if chunks[mid].first <= g { lo = mid } else { hi = mid - 1 }
        }
        let c = chunks[lo]
        let r = c.records[Int(g - c.first)]
        let t = c.baseTime + Int64(r.offset)
        let d = r.link & 0x7FFF_FFFF
        let previous: Int64 = d == 0 ? -1 : (d == farLink ? far[g]! : g - Int64(d))
        return (r.link & 0x8000_0000 == 0 ? t : -1 - t, previous)
    }

    /// Drops arrivals from the front while their time + window is below the watermark.
    mutating func trim(window: Millis, watermark: Millis) {
        guard head < end, headTime + window < watermark else { return }
        var h = head
        var nextTime: Int64 = 0
        var dropChunks = 0
        scan: for c in chunks.indices {
            let chunk = chunks[c]
            let stop = chunk.first + Int64(chunk.records.count)
            if h >= stop { dropChunks = c + 1; continue }
            let base = chunk.baseTime
            let moved: Int64 = chunk.records.withUnsafeBufferPointer { r in
                var i = Int(h - chunk.first)
                while i < r.count && base + Int64(r[i].offset) + window < watermark { i += 1 }
                if i < r.count { nextTime = base + Int64(r[i].offset) }
                return chunk.first + Int64(i)
            }
            h = moved
            if h < stop { break scan }
            dropChunks = c + 1
        }
        guard h != head else { return }
        head = h
        headTime = nextTime
        if !far.isEmpty { far = far.filter { $0.key >= h } }
        if dropChunks == chunks.count {
            // All gone: the last chunk stays, emptied, for the next arrivals (no allocation
            // each time a short window empties the ring).
            var last = chunks.removeLast()
            chunks.removeAll(keepingCapacity: true)
            last.records.removeAll(keepingCapacity: true)
            last.first = h
            chunks.append(last)
        } else if dropChunks > 0 {
            chunks.removeFirst(dropChunks)
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
        // Nothing taken from the queue, so nothing to release (this runs at every move of the
        // watermark, and emptying three already empty arrays each time showed in profiles).
        if head == 0 { return }
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
        for (i, e) in entities.enumerated() where e.ready { ref(e.lastRef(Int32(i))) }
        for a in emitter.alerts { for i in 0..<a.evidenceRefs.count { ref(a.evidenceRefs[i]) } }
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
