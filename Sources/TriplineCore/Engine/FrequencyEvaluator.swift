/// The sliding count shared by `frequency` (spec section 5.5) and `novelty` (5.6): per
/// entity, the counted events in (t - W, t]; fires when the count reaches K from below and
/// resolves when it falls below K (at the expiry that drops it). Key {entity}.
struct SlidingCount {
    struct Track {
        var refs = TimedRefs()
        var firing = false
        /// Deadline of the expiry timer pending (at the oldest event), or .min.
        var pending: Millis = .min
    }
    var window: Millis
    var threshold: Int
    var tracks = IntMap<Track>()

    init(window: Millis, threshold: Int) {
        self.window = window
        self.threshold = threshold
    }

    /// Counts one event; returns the evidence and count when the count just reached K.
    mutating func add(entity: Int32, time: Millis, ref: EventRef, rule: Int32, timers: inout TimerQueue) -> (evidence: [EventRef], count: Int)? {
        let window = self.window, threshold = self.threshold
        return tracks.update(key(entity), default: { Track() }) { tr in
            tr.refs.append(time, ref)
            if tr.pending == .min {
                tr.pending = time + window
                timers.schedule(deadline: time + window, rule: rule, a: entity)
            }
            if tr.refs.count >= threshold && !tr.firing {
                tr.firing = true
                return (tr.refs.evidence, tr.refs.count)
            }
            return nil
        }
    }

    /// Expires events at a timer; returns the count after it when it fell below K.
    mutating func expire(entity: Int32, at deadline: Millis, rule: Int32, timers: inout TimerQueue) -> Int? {
        let window = self.window, threshold = self.threshold
        var drop = false
        let result: Int?? = tracks.modify(key(entity)) { tr -> Int? in
            tr.refs.expire(window: window, now: deadline)
            let c = tr.refs.count
            var fell: Int? = nil
            if c < threshold && tr.firing {
                tr.firing = false
                fell = c
            }
            if let oldest = tr.refs.oldestTime {
                tr.pending = oldest + window
                timers.schedule(deadline: oldest + window, rule: rule, a: entity)
            } else {
                tr.pending = .min
                drop = true
            }
            return fell
        }
        if drop { tracks.remove(key(entity)) }
        return result ?? nil
    }
}

struct FrequencyEvaluator {
    struct Member {
        var rule: Int32
        var selector: Int32
        var filter: CompiledFilter
        var count: SlidingCount
    }
    var rules: [Member] = []

    var isEmpty: Bool { rules.isEmpty }

    mutating func onEvent(_ ev: Event, ref: EventRef, zones: [Int32], engine: Engine, emitter: inout Emitter, timers: inout TimerQueue) {
        for i in rules.indices where rules[i].filter.matches(ev, insideZones: zones) && engine.matches(ev.entity, rules[i].selector) {
            if let (evidence, c) = rules[i].count.add(entity: ev.entity, time: ev.time, ref: ref, rule: rules[i].rule, timers: &timers) {
                emitter.emit(rule: rules[i].rule, key: .entity(ev.entity), firing: true, time: ev.time, evidence: evidence,
                             details: [("count", .number(Double(c)))])
            }
        }
    }

    mutating func fire(_ t: EngineTimer, slot i: Int, emitter: inout Emitter, timers: inout TimerQueue) {
        if let c = rules[i].count.expire(entity: t.a, at: t.deadline, rule: t.rule, timers: &timers) {
            emitter.emit(rule: t.rule, key: .entity(t.a), firing: false, time: t.deadline, evidence: [], details: [("count", .number(Double(c)))])
        }
    }
}

/// `novelty` (spec section 5.6): a contact is new when the entity had no earlier contact
/// with that counterpart in [t - H, t]; new contacts are counted like `frequency`.
struct NoveltyEvaluator {
    struct Member {
        var rule: Int32
        var selector: Int32
        var lookback: Millis
        var prefix: [[UInt8]]?
        var notPrefix: [[UInt8]]?
        /// Last contact time per entity << 32 | counterpart.
        var lastContact = IntMap<Millis>()
        /// Per entity, contacts in processing order, to prune `lastContact` past the lookback.
        var history = IntMap<[(Millis, Int32)]>()
        var count: SlidingCount
        /// Counterpart name id -> accepted by the prefix filters (cached).
        var accepted = IntMap<Bool>()
    }
    var rules: [Member] = []

    var isEmpty: Bool { rules.isEmpty }

    mutating func onContact(_ ev: Event, ref: EventRef, engine: Engine, emitter: inout Emitter, timers: inout TimerQueue) {
        for i in rules.indices where engine.matches(ev.entity, rules[i].selector) {
            let c = ev.counterpart
            if !accepts(i, c, engine.symbols) { continue }
            let h = rules[i].lookback
            // Prune this entity's contacts older than the lookback, then record this one.
            var stale: [(Millis, Int32)] = []
            rules[i].history.update(key(ev.entity), default: { [] }) { hist in
                var drop = 0
                while drop < hist.count && hist[drop].0 < ev.time - h { drop += 1 }
                if drop > 0 {
                    stale = Array(hist[0..<drop])
                    hist.removeFirst(drop)
                }
                hist.append((ev.time, c))
            }
            for (t, cp) in stale where rules[i].lastContact[key(ev.entity, cp)] == t { rules[i].lastContact.remove(key(ev.entity, cp)) }
            let k = key(ev.entity, c)
            let isNew: Bool
            if let last = rules[i].lastContact[k] { isNew = last < ev.time - h } else { isNew = true }
            rules[i].lastContact.insert(k, ev.time)
            guard isNew else { continue }
            if let (evidence, n) = rules[i].count.add(entity: ev.entity, time: ev.time, ref: ref, rule: rules[i].rule, timers: &timers) {
                emitter.emit(rule: rules[i].rule, key: .entity(ev.entity), firing: true, time: ev.time, evidence: evidence,
                             details: [("count", .number(Double(n)))])
            }
        }
    }

    mutating func accepts(_ i: Int, _ c: Int32, _ symbols: Symbols) -> Bool {
        if rules[i].prefix == nil && rules[i].notPrefix == nil { return true }
        if let a = rules[i].accepted[key(c)] { return a }
        var bytes: [UInt8] = []
        symbols.names.appendBytes(c, to: &bytes)
        var ok = true
        if let p = rules[i].prefix, !p.contains(where: { bytes.starts(with: $0) }) { ok = false }
        if let p = rules[i].notPrefix, p.contains(where: { bytes.starts(with: $0) }) { ok = false }
        rules[i].accepted.insert(key(c), ok)
        return ok
    }

    mutating func fire(_ t: EngineTimer, slot i: Int, emitter: inout Emitter, timers: inout TimerQueue) {
        if let c = rules[i].count.expire(entity: t.a, at: t.deadline, rule: t.rule, timers: &timers) {
            emitter.emit(rule: t.rule, key: .entity(t.a), firing: false, time: t.deadline, evidence: [], details: [("count", .number(Double(c)))])
        }
    }
}
