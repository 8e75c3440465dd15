/// The time core (spec sections 2 and 3): duplicate detection with the dedup window, the
/// event-time watermark, the buffer of events waiting for it, timers in deadline order and
/// rule expiry. A value type with no engine, no evaluators and no clock: events and times go
/// in, decisions and due work come out, and the engine acts on them.
///
/// An arriving event is `offer`ed: it is a duplicate, late, to be applied now, or buffered.
/// Then the engine asks for due work in order: for each event to apply (`offer`'s
/// `.applyNow`, then `nextReady()`), first the timers due by its time, then the event; last
/// the timers due by the watermark. Due timers come from `reach(t)` (which records the rule
/// expiries reached) followed by `nextTimer(upTo: t)` until nil. Evaluators set timers with
/// `timers.schedule`.
struct TimeCore {
    /// What became of an offered event.
    enum Offer: Equatable {
        /// Its id was already accepted for that entity: not applied.
        case duplicate(EventRef)
        /// Its time is before the watermark: not applied.
        case late(EventRef)
        /// Apply it now (after the timers due by its time), before any buffered event.
        case applyNow(EventRef)
        /// Buffered until the watermark reaches it (`nextReady`).
        case buffered(EventRef)
    }

    /// Per entity: how many of its events arrived, and where its latest arrival is in
    /// `arrivalRing` (-1: none).
    /// (`last` first: 12 bytes, so that a 4-byte field can follow it in the entity record.)
    struct Arrivals {
        var last: Int64 = -1
        var count: UInt32 = 0
    }

    let allowedLateness: Millis
    /// How long an accepted id is remembered: while the watermark is at most its time + this.
    let window: Millis
    /// The watermark moves only by `moveWatermark` (stamped upstream), never by events.
    let external: Bool

    private(set) var maxTime: Millis = .min
    private(set) var watermark: Millis = .min
    var pending = PendingEvents()
    var arrivalSequence: UInt64 = 0
    var timers = TimerQueue()
    /// Rule expiries not reached yet, latest first.
    var expiryQueue: [(Millis, Int32)]
    /// Rules whose expiry the watermark has reached, in the order it happened.
    private(set) var expired: [(rule: Int32, at: Millis)] = []

    /// Per-entity records for `offer(_:assignedForm:)` only (the engine keeps its own).
    var arrivals: [Arrivals] = []
    /// Accepted given ids inside the window: entity << 32 | id index -> the event time they
    /// were accepted with. An entry whose time + window is below the watermark is forgotten
    /// (absent at once, removed when `idQueue` reaches it).
    var idMemory = IntMap<Millis>()
    /// The accepted given ids in acceptance order, for removing them once forgotten.
    var idQueue = IdQueue()
    /// Per entity, the n of accepted given ids spelled like assigned ones (`<entity>#<n>`),
    /// with the time they were accepted with.
    var givenAssignedForm: [Int32: [UInt32: Millis]] = [:]
    /// Every arrival inside the window, of all entities, in arrival order.
    var arrivalRing = ArrivalRing()

    private(set) var arrived = 0
    private(set) var duplicates = 0
    private(set) var late = 0
    private(set) var timersFired = 0

    init(allowedLateness: Millis, window: Millis, external: Bool, expiries: [(Millis, Int32)]) {
        self.allowedLateness = allowedLateness
        self.window = window
        self.external = external
        self.expiryQueue = expiries.sorted { $0.0 > $1.0 }
    }

    @inline(__always)
    static func key(_ entity: Int32, _ id: Int32) -> UInt64 {
        UInt64(UInt32(bitPattern: entity)) << 32 | UInt64(UInt32(bitPattern: id))
    }

    /// An event arrives (spec sections 2 and 3), for a caller that keeps no per-entity
    /// records of its own (tests, tools): the time core keeps the entity's `Arrivals`.
    mutating func offer(_ ev: Event, assignedForm: (Int32, Int32) -> UInt32?) -> Offer {
        let ei = Int(ev.entity)
        if ei >= arrivals.count { arrivals.append(contentsOf: repeatElement(Arrivals(), count: max(ei + 1, arrivals.count + arrivals.count / 2, 1024) - arrivals.count)) }
        var a = arrivals[ei]
        defer { arrivals[ei] = a }
        return offer(ev, arrivals: &a, assignedForm: assignedForm)
    }

    /// An event arrives (spec sections 2 and 3). `arrivals` is the entity's record, which the
    /// engine keeps in its per-entity state (one cache line per event instead of two).
    /// `assignedForm` tells, for a given id, the n when it is spelled `<entity>#<n>` (the form
    /// of assigned ids), else nil.
    @inline(__always)
    mutating func offer(_ ev: Event, arrivals a: inout Arrivals, assignedForm: (Int32, Int32) -> UInt32?) -> Offer {
        arrived += 1
        let e = ev.entity
        a.count += 1
        let n = a.count
        let ref: EventRef
        var duplicate = false
        var assigned: UInt32? = nil
        if ev.givenId >= 0 {
            ref = .given(ev.givenId)
            if let s = idMemory[Self.key(e, ev.givenId)], s + window >= watermark {
                duplicate = true
            } else if let k = assignedForm(ev.givenId, e) {
                assigned = k
                // Collides with an earlier arrival accepted under its assigned id, still remembered?
                if k < n && assignedRemembered(a, k) { duplicate = true }
            }
        } else {
            ref = .assigned(entity: e, n: n)
            if !givenAssignedForm.isEmpty, let s = givenAssignedForm[e]?[n], s + window >= watermark { duplicate = true }
        }
        if duplicate {
            duplicates += 1
            logArrival(&a, -1 - ev.time)
            return .duplicate(ref)
        }
        if ev.time < watermark {
            late += 1
            logArrival(&a, -1 - ev.time)
            return .late(ref)
        }
        if ev.givenId >= 0 {
            logArrival(&a, -1 - ev.time)
            let k = Self.key(e, ev.givenId)
            idMemory[k] = ev.time
            idQueue.push(key: k, time: ev.time, assignedForm: assigned ?? .max)
            if let a = assigned { givenAssignedForm[e, default: [:]][a] = ev.time }
        } else {
            logArrival(&a, ev.time)
        }
        return accept(ev, ref)
    }

    /// An event an upstream time core already accepted (a cluster worker's input): no duplicate
    /// or lateness decision here, and `ref` is the one upstream gave it. With the watermark
    /// stamped upstream it is applied now or buffered exactly as `offer` would.
    @inline(__always)
    mutating func offerAccepted(_ ev: Event, ref: EventRef) -> Offer {
        arrived += 1
        return accept(ev, ref)
    }

    /// An accepted event: the largest time and the watermark move, and it is applied now or
    /// buffered (spec section 3).
    @inline(__always)
    private mutating func accept(_ ev: Event, _ ref: EventRef) -> Offer {
        if ev.time > maxTime { maxTime = ev.time }
        let newWatermark = external ? watermark : maxTime &- allowedLateness
        let outcome: Offer
        if pending.isEmpty && ev.time <= newWatermark {
            outcome = .applyNow(ref)
        } else {
            pending.push(.init(event: ev, ref: ref, arrival: arrivalSequence))
            arrivalSequence += 1
            outcome = .buffered(ref)
        }
        if newWatermark > watermark { moveWatermark(to: newWatermark) }
        return outcome
    }

    /// The next buffered event the watermark (or `limit`, when lower) has reached, in time
    /// order and arrival order among equal times.
    @inline(__always)
    mutating func nextReady(upTo limit: Millis = .max) -> PendingEvents.Item? {
        pending.pop(upTo: Swift.min(limit, watermark))
    }

    /// The buffered events up to `limit`, whatever the watermark (an advance or the end).
    @inline(__always)
    mutating func nextBuffered(upTo limit: Millis) -> PendingEvents.Item? {
        pending.pop(upTo: limit)
    }

    /// Moves the watermark forward to `t` (never back) and forgets the ids it moved past.
    mutating func moveWatermark(to t: Millis) {
        guard t > watermark else { return }
        watermark = t
        forgetIds()
    }

    /// Records the rule expiries reached by time `t`; call before taking the timers due by `t`.
    @inline(__always)
    mutating func reach(_ t: Millis) {
        while let last = expiryQueue.last, last.0 <= t {
            expiryQueue.removeLast()
            expired.append((last.1, last.0))
        }
    }

    /// The next timer due by `t`, in deadline order (equal deadlines in the order set).
    @inline(__always)
    mutating func nextTimer(upTo t: Millis) -> EngineTimer? {
        guard timers.lowerBound <= t, let timer = timers.pop(upTo: t) else { return nil }
        timersFired += 1
        return timer
    }

    /// Ends the input: the watermark moves to the largest time seen.
    mutating func finishInput() {
        if maxTime > watermark { moveWatermark(to: maxTime) }
    }

    // MARK: - Ids

    /// Removes the given ids the watermark has moved past (time + window < watermark) from
    /// the front of the queue. An id whose entry was refreshed by a later acceptance stays.
    mutating func forgetIds() {
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
    mutating func logArrival(_ a: inout Arrivals, _ record: Int64) {
        a.last = arrivalRing.push(record, previous: a.last)
    }

    /// Is arrival k of the entity (k below its current arrival, which is not logged yet)
    /// accepted under its assigned id and still remembered?
    func assignedRemembered(_ a: Arrivals, _ k: UInt32) -> Bool {
        // The latest logged arrival is number count - 1; walk back to k.
        var steps = Int(a.count) - 1 - Int(k)
        var g = a.last
        guard steps >= 0 else { return false }
        while true {
            guard let r = arrivalRing.record(g) else { return false }   // trimmed: forgotten
            if steps == 0 { return r.time >= 0 && r.time + window >= watermark }
            g = r.previous
            steps -= 1
        }
    }

    /// Every given id the time core holds (remembered, or in a buffered event).
    func forEachGivenId(_ mark: (Int32) -> Void) {
        for s in idMemory.slots where s.key != IntMap<Millis>.emptyKey { mark(Int32(bitPattern: UInt32(truncatingIfNeeded: s.key))) }
        for item in pending.heap.items {
            if item.ref.isGiven { mark(item.ref.givenIndex) }
            if item.event.givenId >= 0 { mark(item.event.givenId) }
        }
    }
}
