/// `threshold` (spec section 5.7): `above` X, `below` X, or a `baseline` — the mean of the
/// entity's readings of the metric in [t - B, t), defined with at least M of them, kept as a
/// running (compensated) sum over a sliding window. Fires on the first reading where the
/// condition holds and resolves on the first later reading where it does not. Key {entity}.
///
/// Rules share work: an `above`/`below` rule is firing exactly when its condition holds for
/// the entity's latest reading of the metric, so all of them keep one latest value per
/// (entity, metric) (a table per metric, keyed by entity: an array by entity id when most
/// entities report the metric, see `EntityTable`), and a reading visits only the rules whose level lies between the
/// previous value and the new one (levels sorted, two binary searches) — thousands of level
/// rules on one metric cost what the few that change state cost. `baseline` rules with the
/// same metric and window share one running window per entity; each rule keeps a firing bit.
struct ThresholdEvaluator {
    struct Baseline {
        /// One reading of the window: its time and value.
        struct Reading {
            var time: Millis
            var value: Double
        }
        /// The readings in time order from `head` (one array, not one of times and one of
        /// values: one allocation per window, and 8 bytes less in each table slot).
        var readings: [Reading] = []
        var head = 0
        var sum = 0.0
        var compensation = 0.0

        mutating func add(_ v: Double) {
            let y = v - compensation
            let t = sum + y
            compensation = (t - sum) - y
            sum = t
        }

        /// Drops readings with time < `from`.
        mutating func evict(before from: Millis) {
            while head < readings.count && readings[head].time < from {
                add(-readings[head].value)
                head += 1
            }
            if head == readings.count {
                readings.removeAll(keepingCapacity: true)
                head = 0
                sum = 0
                compensation = 0
            } else if head > 64 && head * 2 > readings.count {
                readings.removeFirst(head)
                head = 0
            }
        }

        /// Adds a reading at `time` after evicting those before `time - window`; returns how
        /// many readings the baseline of `time` has and their mean (readings of this same
        /// millisecond are not part of it).
        mutating func record(_ v: Double, at time: Millis, window: Millis) -> (n: Int, mean: Double) {
            evict(before: time - window)
            var sameSum = 0.0
            var same = 0
            var k = readings.count - 1
            while k >= head && readings[k].time == time { sameSum += readings[k].value; same += 1; k -= 1 }
            let n = readings.count - head - same
            readings.append(Reading(time: time, value: v))
            let mean = n > 0 ? (sum - sameSum) / Double(n) : 0
            add(v)
            return (n, mean)
        }
    }

    /// A rule with a fixed level.
    struct Level {
        var rule: Int32
        var selector: Int32
        var level: Double
    }
    /// The `above` and `below` rules of one metric, each sorted by level.
    struct LevelGroup {
        var metric: Int32
        var above: [Level] = []
        var below: [Level] = []
        /// The latest reading of the metric per entity.
        var latest = EntityTable<LatestReading>()
    }
    /// A reading as an `EntityTable` holds it: one NaN bit pattern marks an absent entity, and
    /// a reading with that pattern (none passes the decoder, which takes finite values only) is
    /// kept as the ordinary NaN.
    struct LatestReading: EntityTableValue {
        static let vacantBits: UInt64 = 0x7FF8_7A11_0000_0001
        var value: Double
        init(_ v: Double) { value = v.bitPattern == Self.vacantBits ? .nan : v }
        private init(vacantBits: UInt64) { value = Double(bitPattern: vacantBits) }
        static var vacant: Self { Self(vacantBits: vacantBits) }
        var isVacant: Bool { value.bitPattern == Self.vacantBits }
    }

    struct BaselineMember {
        var rule: Int32
        var selector: Int32
        var factor: Double
        var minSamples: Int
    }
    struct BaselineState {
        var window = Baseline()
        /// One bit per member of the group: firing.
        var firing: UInt64 = 0
    }
    /// `baseline` rules of one metric and window (at most 64; more make another group).
    struct BaselineGroup {
        var metric: Int32
        var window: Millis
        var members: [BaselineMember] = []
        var states = IntMap<BaselineState>()
    }

    var levels: [LevelGroup] = []
    var baselines: [BaselineGroup] = []

    var isEmpty: Bool { levels.isEmpty && baselines.isEmpty }

    mutating func add(rule: Int32, selector: Int32, metric: Int32, condition: ThresholdCondition) {
        switch condition {
        case .above(let x), .below(let x):
            let g = levels.firstIndex { $0.metric == metric } ?? levels.count
            if g == levels.count { levels.append(LevelGroup(metric: metric)) }
            let l = Level(rule: rule, selector: selector, level: x)
            if case .above = condition { levels[g].above.append(l) } else { levels[g].below.append(l) }
            levels[g].above.sort { $0.level < $1.level }
            levels[g].below.sort { $0.level < $1.level }
        case .baseline(let w, let f, let m):
            let g: Int
            if let i = baselines.firstIndex(where: { $0.metric == metric && $0.window == w && $0.members.count < 64 }) {
                g = i
            } else {
                g = baselines.count
                baselines.append(BaselineGroup(metric: metric, window: w))
            }
            baselines[g].members.append(BaselineMember(rule: rule, selector: selector, factor: f, minSamples: m))
        }
    }

    /// First index in `a` (sorted by level) whose level is >= x (`strict`: > x).
    @inline(__always)
    static func lowerBound(_ a: [Level], _ x: Double, strict: Bool) -> Int {
        var lo = 0, hi = a.count
        while lo < hi {
            let m = (lo + hi) >> 1
            if a[m].level < x || (strict && a[m].level == x) { lo = m + 1 } else { hi = m }
        }
        return lo
    }

    /// Emits the transitions of the level rules `a` (sorted by level) when the entity's reading
    /// goes from `p` to `v`. `above` X holds when v > X, so it changes for X in [min, max);
    /// `below` X holds when v < X, so it changes for X in (min, max].
    static func emitChanges(_ a: [Level], from p: Double, to v: Double, above: Bool, ev: Event, ref: EventRef, matching: some EntityMatching, emitter: inout Emitter) {
        if a.isEmpty || p == v { return }
        let lo = lowerBound(a, Swift.min(p, v), strict: !above), hi = lowerBound(a, Swift.max(p, v), strict: !above)
        if lo >= hi { return }
        let details = AlertDetails.number(.value, v)
        for j in lo..<hi where matching.matches(ev.entity, a[j].selector) {
            emitter.emit(rule: a[j].rule, key: .entity(ev.entity), firing: above ? v > a[j].level : v < a[j].level, time: ev.time, evidence: .one(ref), details: details)
        }
    }

    mutating func onReading(_ ev: Event, ref: EventRef, matching: some EntityMatching, emitter: inout Emitter) {
        let v = ev.value
        for g in levels.indices where levels[g].metric == ev.metric {
            let previous = levels[g].latest.exchange(ev.entity, LatestReading(v))?.value
            // With no previous reading nothing was firing: as if it had been -inf for `above`
            // and +inf for `below`.
            Self.emitChanges(levels[g].above, from: previous ?? -.infinity, to: v, above: true, ev: ev, ref: ref, matching: matching, emitter: &emitter)
            Self.emitChanges(levels[g].below, from: previous ?? .infinity, to: v, above: false, ev: ev, ref: ref, matching: matching, emitter: &emitter)
        }
        for g in baselines.indices where baselines[g].metric == ev.metric {
            var members: UInt64 = 0
            for (j, m) in baselines[g].members.enumerated() where matching.matches(ev.entity, m.selector) { members |= 1 << UInt64(j) }
            if members == 0 { continue }
            let window = baselines[g].window
            let group = baselines[g].members
            baselines[g].states.update(key(ev.entity), default: { BaselineState() }) { st in
                let (n, mean) = st.window.record(v, at: ev.time, window: window)
                var bits = members
                while bits != 0 {
                    let j = bits.trailingZeroBitCount
                    bits &= bits - 1
                    let m = group[j]
                    guard n >= m.minSamples else { continue }   // no baseline: changes nothing
                    let holds = v > m.factor * mean
                    let bit: UInt64 = 1 << UInt64(j)
                    if holds != (st.firing & bit != 0) {
                        st.firing ^= bit
                        emitter.emit(rule: m.rule, key: .entity(ev.entity), firing: holds, time: ev.time, evidence: .one(ref),
                                     details: .numbers(.value, v, .baseline, mean))
                    }
                }
            }
        }
    }
}
