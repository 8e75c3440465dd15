/// `novelty` (spec section 5.6): a contact is new when the entity had no earlier contact
/// with that counterpart in [t - H, t]; new contacts are counted like `frequency`.
///
/// Rules with the same lookback and counterpart filter agree on which contacts are new, so
/// they share one detector (last contact per (entity, counterpart), and each entity's
/// contacts in order to prune past the lookback); each rule keeps its own sliding count.
struct NoveltyEvaluator {
    struct Member {
        var rule: Int32
        var selector: Int32
        var count: SlidingCount
    }
    /// An entity's contacts in processing order, from `head` on.
    struct History {
        var times: [Millis] = []
        var counterparts: [Int32] = []
        var head = 0
    }
    struct Detector {
        var lookback: Millis
        var prefix: [[UInt8]]?
        var notPrefix: [[UInt8]]?
        /// Last contact time per entity << 32 | counterpart.
        var lastContact = IntMap<Millis>()
        var history = IntMap<History>()
        /// Counterpart name id -> accepted by the prefix filters (cached).
        var accepted = IntMap<Bool>()
        /// At most 64.
        var members: [Member] = []
    }
    var detectors: [Detector] = []
    var stale: [(Millis, Int32)] = []

    var isEmpty: Bool { detectors.isEmpty }

    /// Adds a rule; returns its slot (detector << 16 | member).
    mutating func add(rule: Int32, selector: Int32, count: Int, window: Millis, lookback: Millis, prefix: [String]?, notPrefix: [String]?) -> Int {
        let p = prefix?.map { Array($0.utf8) }, np = notPrefix?.map { Array($0.utf8) }
        let d: Int
        if let i = detectors.firstIndex(where: { $0.lookback == lookback && $0.prefix == p && $0.notPrefix == np && $0.members.count < 64 }) {
            d = i
        } else {
            d = detectors.count
            detectors.append(Detector(lookback: lookback, prefix: p, notPrefix: np))
        }
        detectors[d].members.append(Member(rule: rule, selector: selector, count: SlidingCount(window: window, threshold: count)))
        return d << 16 | (detectors[d].members.count - 1)
    }

    mutating func onContact(_ ev: Event, ref: EventRef, matching: some EntityMatching, emitter: inout Emitter, timers: inout TimerQueue) {
        let c = ev.counterpart
        for d in detectors.indices {
            var applies: UInt64 = 0
            for (j, m) in detectors[d].members.enumerated() where matching.matches(ev.entity, m.selector) { applies |= 1 << UInt64(j) }
            if applies == 0 || !accepts(d, c, matching) { continue }
            let h = detectors[d].lookback
            // Prune this entity's contacts older than the lookback, then record this one.
            stale.removeAll(keepingCapacity: true)
            detectors[d].history.update(key(ev.entity), default: { History() }) { hist in
                while hist.head < hist.times.count && hist.times[hist.head] < ev.time - h {
                    stale.append((hist.times[hist.head], hist.counterparts[hist.head]))
                    hist.head += 1
                }
                if hist.head == hist.times.count {
                    hist.times.removeAll(keepingCapacity: true)
                    hist.counterparts.removeAll(keepingCapacity: true)
                    hist.head = 0
                } else if hist.head > 32 && hist.head * 2 > hist.times.count {
                    hist.times.removeFirst(hist.head)
                    hist.counterparts.removeFirst(hist.head)
                    hist.head = 0
                }
                hist.times.append(ev.time)
                hist.counterparts.append(c)
            }
            for (t, cp) in stale where detectors[d].lastContact[key(ev.entity, cp)] == t { detectors[d].lastContact.remove(key(ev.entity, cp)) }
            let previous = detectors[d].lastContact.exchange(key(ev.entity, c), ev.time)
            if let last = previous, last >= ev.time - h { continue }   // not new
            var bits = applies
            while bits != 0 {
                let j = bits.trailingZeroBitCount
                bits &= bits - 1
                let rule = detectors[d].members[j].rule
                if let (evidence, n) = detectors[d].members[j].count.add(entity: ev.entity, time: ev.time, ref: ref, rule: rule, timers: &timers) {
                    emitter.emit(rule: rule, key: .entity(ev.entity), firing: true, time: ev.time, evidence: AlertEvidence(evidence), details: .number(.count, Double(n)))
                }
            }
        }
    }

    /// Is counterpart `c` one detector `d` counts? The names are read only on a cache miss
    /// (reading `matching.symbols` copies them: every array retained and released).
    mutating func accepts(_ d: Int, _ c: Int32, _ matching: some EntityMatching) -> Bool {
        if detectors[d].prefix == nil && detectors[d].notPrefix == nil { return true }
        if let a = detectors[d].accepted[key(c)] { return a }
        var bytes: [UInt8] = []
        matching.symbols.names.appendBytes(c, to: &bytes)
        var ok = true
        if let p = detectors[d].prefix, !p.contains(where: { bytes.starts(with: $0) }) { ok = false }
        if let p = detectors[d].notPrefix, p.contains(where: { bytes.starts(with: $0) }) { ok = false }
        detectors[d].accepted.insert(key(c), ok)
        return ok
    }

    mutating func fire(_ t: EngineTimer, slot: Int, matching: some EntityMatching, emitter: inout Emitter, timers: inout TimerQueue) {
        let d = slot >> 16, j = slot & 0xFFFF
        if let c = detectors[d].members[j].count.expire(entity: t.a, at: t.deadline, rule: t.rule, timers: &timers) {
            emitter.emit(rule: t.rule, key: .entity(t.a), firing: false, time: t.deadline, evidence: .none, details: .number(.count, Double(c)))
        }
    }
}
