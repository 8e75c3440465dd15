/// Where a `by` group or a `count_distinct` value comes from (spec 1.3, 5b.11 and 5b.12).
enum TextSource: Hashable {
    case counterpart
    /// An attribute, by its interned key.
    case attr(Int32)
}

/// The group texts of `by` rules and the values `count_distinct` tells apart, interned in
/// one table of their own (the engine's names are shared with other stages; these stay
/// local). A string attribute or a counterpart is its text; a number is written as
/// ECMAScript's Number::toString writes it (7 and 7.0 are the same group); a bool is
/// `true` or `false`. Every lookup after a value's first is an array or integer-map read.
struct GroupTexts {
    var texts = Interner(capacity: 256)
    /// Name id (of `Symbols.names`) -> text id, or -1 when not yet seen.
    var fromName: [Int32] = []
    /// Bit pattern of a number -> text id.
    var numbers = IntMap<Int32>()
    var trueId: Int32 = -1
    var falseId: Int32 = -1

    /// The text id of `ev`'s field, or -1 when the event does not carry it (as a text: any
    /// string, number or bool).
    mutating func text(_ ev: Event, _ source: TextSource, names: () -> Interner) -> Int32 {
        switch source {
        case .counterpart:
            return ev.counterpart >= 0 ? fromName(ev.counterpart, names) : -1
        case .attr(let k):
            for a in ev.attrs where a.key == k {
                switch a.value {
                case .string(let s): return fromName(s, names)
                case .bool(let b):
                    if b {
                        if trueId < 0 { trueId = texts.intern("true") }
                        return trueId
                    }
                    if falseId < 0 { falseId = texts.intern("false") }
                    return falseId
                case .number(let d): return number(d)
                }
            }
            return -1
        }
    }

    /// The text id of a number.
    mutating func number(_ d: Double) -> Int32 {
        // -0 and 0 are one text ("0"); the map's empty key is never a pattern this can
        // produce (it is a NaN pattern, and every NaN is mapped to the one quiet NaN first).
        let bits = d == 0 ? 0 : (d.isNaN ? Double.nan.bitPattern : d.bitPattern)
        if let id = numbers[bits] { return id }
        let id = texts.intern(JSONText.ecmaScript(d))
        numbers.update(bits, default: { id }) { _ in }
        return id
    }

    mutating func fromName(_ n: Int32, _ names: () -> Interner) -> Int32 {
        let i = Int(n)
        if i >= fromName.count { fromName.append(contentsOf: repeatElement(-1, count: i + 1 - fromName.count + 64)) }
        if fromName[i] < 0 {
            let table = names()
            let r = table.bytesRange(n)
            fromName[i] = table.arena.withUnsafeBufferPointer { texts.intern(UnsafeBufferPointer(rebasing: $0[r])) }
        }
        return fromName[i]
    }

    var memoryBytes: Int { texts.memoryBytes + fromName.capacity * 4 + numbers.memoryBytes }
}

/// Where an aggregate rule's number or value comes from.
enum AggregateSource: Hashable {
    /// The value of reading events.
    case value
    case counterpart
    case attr(Int32)
}

/// `aggregate` (spec 1.3, 5b.12): per key ({entity} or {entity, group}), the matching events
/// in (t - W, t] that carry the field, and a function of their values compared with a bound.
/// Rules with the same filter, window, field and `by` share one window (as `frequency` rules
/// do); each keeps its function, bound and a firing bit. State per key:
/// - the window's entries (time, event, number or text), oldest first, for evidence, count
///   and the values that leave;
/// - a running sum with Neumaier compensation (for sum and mean), recomputed from the
///   entries after as many removals as the window holds (amortised O(1)) and reset to 0
///   when the window empties, so the error cannot build up;
/// - monotonic deques of entry positions for min and max (amortised O(1) per event);
/// - a counted map of texts for count_distinct.
struct AggregateEvaluator {
    struct Member {
        var rule: Int32
        var selector: Int32
        var fn: AggregateFunction
        var bound: Bound
    }
    struct Entry {
        var time: Millis
        var ref: EventRef
        var number: Double
        var text: Int32
    }
    /// A FIFO of entry positions with amortised O(1) ends.
    struct Deque {
        var items: [Int] = []
        var head = 0
        var isEmpty: Bool { head == items.count }
        var first: Int { items[head] }
        var last: Int { items[items.count - 1] }
        mutating func popFirst() {
            head += 1
            if head == items.count { items.removeAll(keepingCapacity: true); head = 0 } else if head > 32 && head * 2 > items.count { items.removeFirst(head); head = 0 }
        }
        mutating func popLast() { items.removeLast(); if head > items.count { head = items.count } }
        mutating func push(_ i: Int) { items.append(i) }
    }
    struct Track {
        var entries: [Entry] = []
        var head = 0
        /// Absolute position of `entries[0]` (positions keep counting across compactions).
        var base = 0
        var sum = 0.0
        var compensation = 0.0
        var removedSinceExact = 0
        var mins = Deque()
        var maxs = Deque()
        var distinct: IntMap<Int32>? = nil
        var firing: UInt64 = 0
        var pending: Millis = .min

        var count: Int { entries.count - head }
        func entry(_ absolute: Int) -> Entry { entries[absolute - base] }
        var evidence: [EventRef] { entries[head..<min(entries.count, head + 100)].map(\.ref) }

        /// Appends an entry, keeping what the group's functions need.
        mutating func append(_ e: Entry, sum: Bool, min: Bool, max: Bool, distinct: Bool) {
            let position = base + entries.count
            entries.append(e)
            if sum { add(e.number) }
            if min {
                while !mins.isEmpty && entry(mins.last).number >= e.number { mins.popLast() }
                mins.push(position)
            }
            if max {
                while !maxs.isEmpty && entry(maxs.last).number <= e.number { maxs.popLast() }
                maxs.push(position)
            }
            if distinct {
                if self.distinct == nil { self.distinct = IntMap<Int32>(capacity: 4) }
                self.distinct!.update(key(e.text), default: { 0 }) { $0 += 1 }
            }
        }

        /// Removes the entries with time + window <= now; returns how many left.
        mutating func expire(window: Millis, now: Millis, sum: Bool, min: Bool, max: Bool, distinct: Bool) -> Int {
            var removed = 0
            while head < entries.count && entries[head].time + window <= now {
                let e = entries[head]
                let position = base + head
                if sum { add(-e.number) }
                if min && !mins.isEmpty && mins.first == position { mins.popFirst() }
                if max && !maxs.isEmpty && maxs.first == position { maxs.popFirst() }
                if distinct {
                    var gone = false
                    self.distinct!.modify(key(e.text)) { c in c -= 1; gone = c == 0 }
                    if gone { _ = self.distinct!.remove(key(e.text)) }
                }
                head += 1
                removed += 1
            }
            if removed == 0 { return 0 }
            if head == entries.count {
                base += entries.count
                entries.removeAll(keepingCapacity: true)
                head = 0
                self.sum = 0
                compensation = 0
                removedSinceExact = 0
            } else {
                if head > 64 && head * 2 > entries.count {
                    entries.removeFirst(head)
                    base += head
                    head = 0
                }
                if sum {
                    removedSinceExact += removed
                    if removedSinceExact > count + 64 {
                        // Recompute the sum from what the window holds.
                        self.sum = 0
                        compensation = 0
                        for i in head..<entries.count { add(entries[i].number) }
                        removedSinceExact = 0
                    }
                }
            }
            return removed
        }

        mutating func add(_ x: Double) {
            let t = sum + x
            if abs(sum) >= abs(x) { compensation += (sum - t) + x } else { compensation += (x - t) + sum }
            sum = t
        }
    }
    struct Group {
        var filterKey: EventFilter
        var filter: CompiledFilter
        var window: Millis
        var source: AggregateSource
        /// True for sum, mean, min and max (a finite number is carried); false for
        /// count_distinct (any string, number or bool is).
        var numeric: Bool
        var by: TextSource?
        var needSum = false, needMin = false, needMax = false, needDistinct = false
        var members: [Member] = []
        var tracks = IntMap<Track>()
    }
    var groups: [Group] = []

    var isEmpty: Bool { groups.isEmpty }

    /// Adds a rule; returns its group.
    mutating func add(rule: Int32, selector: Int32, fn: AggregateFunction, source: AggregateSource, window: Millis, filter: EventFilter,
                      compiled: CompiledFilter, bound: Bound, by: TextSource?) -> Int {
        let numeric = fn != .countDistinct
        let g: Int
        if let i = groups.firstIndex(where: { $0.filterKey == filter && $0.window == window && $0.source == source && $0.numeric == numeric
                                             && $0.by == by && $0.members.count < 64 }) {
            g = i
        } else {
            g = groups.count
            groups.append(Group(filterKey: filter, filter: compiled, window: window, source: source, numeric: numeric, by: by))
        }
        switch fn {
        case .sum, .mean: groups[g].needSum = true
        case .min: groups[g].needMin = true
        case .max: groups[g].needMax = true
        case .countDistinct: groups[g].needDistinct = true
        }
        groups[g].members.append(Member(rule: rule, selector: selector, fn: fn, bound: bound))
        return g
    }

    /// The aggregate of a member's function over a track, or nil when undefined (no entry).
    static func value(_ fn: AggregateFunction, _ tr: Track) -> Double? {
        let n = tr.count
        if n == 0 { return nil }
        switch fn {
        case .sum: return tr.sum + tr.compensation
        case .mean: return (tr.sum + tr.compensation) / Double(n)
        case .min: return tr.entry(tr.mins.first).number
        case .max: return tr.entry(tr.maxs.first).number
        case .countDistinct: return Double(tr.distinct?.count ?? 0)
        }
    }

    mutating func onEvent(_ ev: Event, ref: EventRef, zones: [Int32], matching: some EntityMatching, texts: inout GroupTexts,
                          emitter: inout Emitter, timers: inout TimerQueue) {
        for g in groups.indices where groups[g].filter.matches(ev, insideZones: zones) {
            let members = groups[g].members
            let applies = matchMask(members, ev.entity, matching) { $0.selector }
            if applies == 0 { continue }
            // The field: a finite number, or a text.
            var number = 0.0, text: Int32 = -1
            switch groups[g].source {
            case .value:
                guard ev.type == Symbols.readingType, ev.value.isFinite else { continue }
                number = ev.value
                // count_distinct of reading values tells them apart by their number text.
                if !groups[g].numeric { text = texts.number(ev.value) }
            case .counterpart:
                text = texts.text(ev, .counterpart, names: { matching.symbols.names })
                if text < 0 { continue }
            case .attr(let k):
                if groups[g].numeric {
                    guard let a = ev.attrs.first(where: { $0.key == k }), case .number(let d) = a.value, d.isFinite else { continue }
                    number = d
                } else {
                    text = texts.text(ev, .attr(k), names: { matching.symbols.names })
                    if text < 0 { continue }
                }
            }
            var group: Int32 = -1
            if let by = groups[g].by {
                group = texts.text(ev, by, names: { matching.symbols.names })
                if group < 0 { continue }
            }
            let k = group < 0 ? key(ev.entity) : key(ev.entity, group)
            let window = groups[g].window
            let needSum = groups[g].needSum, needMin = groups[g].needMin, needMax = groups[g].needMax, needDistinct = groups[g].needDistinct
            let keyOut: AlertKey = group < 0 ? .entity(ev.entity) : .entityGroup(ev.entity, group)
            groups[g].tracks.update(k, default: { Track() }) { tr in
                tr.append(Entry(time: ev.time, ref: ref, number: number, text: text), sum: needSum, min: needMin, max: needMax, distinct: needDistinct)
                if tr.pending == .min {
                    tr.pending = ev.time + window
                    timers.schedule(deadline: ev.time + window, rule: members[0].rule, a: ev.entity, b: group)
                }
                Self.evaluate(&tr, members: members, applies: applies, key: keyOut, time: ev.time, emitter: &emitter)
            }
        }
    }

    /// Emits the transitions of the members in `applies` after a change of the window.
    static func evaluate(_ tr: inout Track, members: [Member], applies: UInt64, key: AlertKey, time: Millis, emitter: inout Emitter) {
        var bits = applies
        var evidence: [EventRef]? = nil
        while bits != 0 {
            let j = bits.trailingZeroBitCount
            bits &= bits - 1
            let v = value(members[j].fn, tr)
            let holds = v.map { members[j].bound.holds($0) } ?? false
            let firing = tr.firing >> UInt64(j) & 1 == 1
            if holds == firing { continue }
            let details: [(String, DetailValue)] = [("value", v.map { .number($0) } ?? .null), ("count", .number(Double(tr.count)))]
            if holds {
                tr.firing |= 1 << UInt64(j)
                if evidence == nil { evidence = tr.evidence }
                emitter.emit(rule: members[j].rule, key: key, firing: true, time: time, evidence: evidence!, details: details)
            } else {
                tr.firing &= ~(1 << UInt64(j))
                emitter.emit(rule: members[j].rule, key: key, firing: false, time: time, evidence: [], details: details)
            }
        }
    }

    mutating func fire(_ t: EngineTimer, slot g: Int, matching: some EntityMatching, emitter: inout Emitter, timers: inout TimerQueue) {
        let members = groups[g].members
        let window = groups[g].window
        let applies = matchMask(members, t.a, matching) { $0.selector }
        let needSum = groups[g].needSum, needMin = groups[g].needMin, needMax = groups[g].needMax, needDistinct = groups[g].needDistinct
        let k = t.b < 0 ? key(t.a) : key(t.a, t.b)
        let keyOut: AlertKey = t.b < 0 ? .entity(t.a) : .entityGroup(t.a, t.b)
        var drop = false
        groups[g].tracks.modify(k) { tr in
            // Every entry with time + W <= deadline leaves now.
            if tr.expire(window: window, now: t.deadline, sum: needSum, min: needMin, max: needMax, distinct: needDistinct) > 0 {
                Self.evaluate(&tr, members: members, applies: applies, key: keyOut, time: t.deadline, emitter: &emitter)
            }
            if tr.head < tr.entries.count {
                tr.pending = tr.entries[tr.head].time + window
                timers.schedule(deadline: tr.pending, rule: t.rule, a: t.a, b: t.b)
            } else {
                tr.pending = .min
                drop = tr.firing == 0
            }
        }
        if drop { _ = groups[g].tracks.remove(k) }
    }
}

extension AggregateEvaluator: RuleEvaluator {
    var stateBytes: Int {
        groups.reduce(0) {
            $0 + $1.tracks.memoryBytes + $1.tracks.entries.reduce(0) {
                $0 + $1.value.entries.capacity * MemoryLayout<Entry>.stride + ($1.value.mins.items.capacity + $1.value.maxs.items.capacity) * 8
                    + ($1.value.distinct?.memoryBytes ?? 0)
            }
        }
    }
    func forEachRef(_ body: (EventRef) -> Void) {
        for g in groups {
            for s in g.tracks.slots where s.key != IntMap<Track>.emptyKey {
                let tr = s.value
                for i in tr.head..<tr.entries.count { body(tr.entries[i].ref) }
            }
        }
    }
}
