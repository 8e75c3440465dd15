/// `frequency` (spec section 5.5) and `novelty` (5.6) share this sliding count: per entity,
/// the counted events in (t - W, t]; fires when the count reaches K from below and
/// resolves when it falls below K (at the expiry that drops it). Key {entity}.
struct SlidingCount {
    var window: Millis
    var threshold: Int
    var events: [Int32: TimedRefs] = [:]
    var firing: Set<Int32> = []
    /// Entities with an expiry timer pending, and its deadline.
    var pending: [Int32: Millis] = [:]

    /// Counts one event; returns true when the count just reached the threshold.
    mutating func add(entity: Int32, time: Millis, ref: EventRef, rule: Int32, timers: inout TimerQueue) -> Bool {
        events[entity, default: TimedRefs()].append(time, ref)
        if pending[entity] == nil {
            pending[entity] = time + window
            timers.schedule(deadline: time + window, rule: rule, a: entity)
        }
        let c = events[entity]!.count
        if c >= threshold && !firing.contains(entity) {
            firing.insert(entity)
            return true
        }
        return false
    }

    /// Expires events at a timer; returns the count after it when it fell below the threshold.
    mutating func expire(entity: Int32, at deadline: Millis, rule: Int32, timers: inout TimerQueue) -> Int? {
        guard var w = events[entity] else { pending[entity] = nil; return nil }
        w.expire(window: window, now: deadline)
        let c = w.count
        if let oldest = w.oldestTime {
            events[entity] = w
            pending[entity] = oldest + window
            timers.schedule(deadline: oldest + window, rule: rule, a: entity)
        } else {
            events[entity] = nil
            pending[entity] = nil
        }
        if c < threshold && firing.contains(entity) {
            firing.remove(entity)
            return c
        }
        return nil
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
    var slot: [Int32: Int] = [:]

    var isEmpty: Bool { rules.isEmpty }

    mutating func onEvent(_ ev: Event, ref: EventRef, zones: [Int32], engine: Engine, emitter: inout Emitter, timers: inout TimerQueue) {
        for i in rules.indices where rules[i].filter.matches(ev, insideZones: zones) && engine.matches(ev.entity, rules[i].selector) {
            if rules[i].count.add(entity: ev.entity, time: ev.time, ref: ref, rule: rules[i].rule, timers: &timers) {
                let w = rules[i].count.events[ev.entity]!
                emitter.emit(rule: rules[i].rule, key: .entity(ev.entity), firing: true, time: ev.time, evidence: w.evidence,
                             details: [("count", .number(Double(w.count)))])
            }
        }
    }

    mutating func fire(_ t: EngineTimer, emitter: inout Emitter, timers: inout TimerQueue) {
        guard let i = slot[t.rule] else { return }
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
        var lastContact: [UInt64: Millis] = [:]
        /// Per entity, contacts in processing order, to prune `lastContact` past the lookback.
        var history: [Int32: [(Millis, Int32)]] = [:]
        var count: SlidingCount
        /// Counterpart name id -> accepted by the prefix filters (cached).
        var accepted: [Int32: Bool] = [:]
    }
    var rules: [Member] = []
    var slot: [Int32: Int] = [:]

    var isEmpty: Bool { rules.isEmpty }

    mutating func onContact(_ ev: Event, ref: EventRef, engine: Engine, emitter: inout Emitter, timers: inout TimerQueue) {
        for i in rules.indices where engine.matches(ev.entity, rules[i].selector) {
            let c = ev.counterpart
            if !accepts(i, c, engine.symbols) { continue }
            let key = UInt64(UInt32(bitPattern: ev.entity)) << 32 | UInt64(UInt32(bitPattern: c))
            let h = rules[i].lookback
            // Prune this entity's contacts older than the lookback.
            if var hist = rules[i].history[ev.entity] {
                var drop = 0
                while drop < hist.count && hist[drop].0 < ev.time - h {
                    let k = UInt64(UInt32(bitPattern: ev.entity)) << 32 | UInt64(UInt32(bitPattern: hist[drop].1))
                    if rules[i].lastContact[k] == hist[drop].0 { rules[i].lastContact[k] = nil }
                    drop += 1
                }
                if drop > 0 { hist.removeFirst(drop) }
                rules[i].history[ev.entity] = hist
            }
            let isNew: Bool
            if let last = rules[i].lastContact[key] { isNew = last < ev.time - h } else { isNew = true }
            rules[i].lastContact[key] = ev.time
            rules[i].history[ev.entity, default: []].append((ev.time, c))
            guard isNew else { continue }
            if rules[i].count.add(entity: ev.entity, time: ev.time, ref: ref, rule: rules[i].rule, timers: &timers) {
                let w = rules[i].count.events[ev.entity]!
                emitter.emit(rule: rules[i].rule, key: .entity(ev.entity), firing: true, time: ev.time, evidence: w.evidence,
                             details: [("count", .number(Double(w.count)))])
            }
        }
    }

    mutating func accepts(_ i: Int, _ c: Int32, _ symbols: Symbols) -> Bool {
        if rules[i].prefix == nil && rules[i].notPrefix == nil { return true }
        if let a = rules[i].accepted[c] { return a }
        var bytes: [UInt8] = []
        symbols.names.appendBytes(c, to: &bytes)
        var ok = true
        if let p = rules[i].prefix, !p.contains(where: { bytes.starts(with: $0) }) { ok = false }
        if let p = rules[i].notPrefix, p.contains(where: { bytes.starts(with: $0) }) { ok = false }
        rules[i].accepted[c] = ok
        return ok
    }

    mutating func fire(_ t: EngineTimer, emitter: inout Emitter, timers: inout TimerQueue) {
        guard let i = slot[t.rule] else { return }
        if let c = rules[i].count.expire(entity: t.a, at: t.deadline, rule: t.rule, timers: &timers) {
            emitter.emit(rule: t.rule, key: .entity(t.a), firing: false, time: t.deadline, evidence: [], details: [("count", .number(Double(c)))])
        }
    }
}
