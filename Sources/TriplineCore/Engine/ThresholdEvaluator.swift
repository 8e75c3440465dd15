/// `threshold` (spec section 5.7): `above` X, `below` X, or a `baseline` — the mean of the
/// entity's readings of the metric in [t - B, t), defined with at least M of them, kept as a
/// running (compensated) sum over a sliding window. Fires on the first reading where the
/// condition holds and resolves on the first later reading where it does not. Key {entity}.
struct ThresholdEvaluator {
    struct Baseline {
        var times: [Millis] = []
        var values: [Double] = []
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
            while head < times.count && times[head] < from {
                add(-values[head])
                head += 1
            }
            if head == times.count {
                times.removeAll(keepingCapacity: true)
                values.removeAll(keepingCapacity: true)
                head = 0
                sum = 0
                compensation = 0
            } else if head > 64 && head * 2 > times.count {
                times.removeFirst(head)
                values.removeFirst(head)
                head = 0
            }
        }
    }
    enum Condition {
        case above(Double)
        case below(Double)
        case baseline(window: Millis, factor: Double, minSamples: Int)
    }
    struct Member {
        var rule: Int32
        var selector: Int32
        var metric: Int32
        var condition: Condition
        var firing = IntMap<Bool>()
        var baselines = IntMap<Baseline>()
    }
    var rules: [Member] = []

    var isEmpty: Bool { rules.isEmpty }

    mutating func onReading(_ ev: Event, ref: EventRef, engine: Engine, emitter: inout Emitter) {
        for i in rules.indices where rules[i].metric == ev.metric && engine.matches(ev.entity, rules[i].selector) {
            let v = ev.value
            var holds: Bool
            var details: [(String, DetailValue)] = [("value", .number(v))]
            switch rules[i].condition {
            case .above(let x): holds = v > x
            case .below(let x): holds = v < x
            case .baseline(let window, let factor, let minSamples):
                let (n, mean) = rules[i].baselines.update(key(ev.entity), default: { Baseline() }) { b -> (Int, Double) in
                    b.evict(before: ev.time - window)
                    // Readings of this same millisecond are not part of the baseline.
                    var sameSum = 0.0
                    var same = 0
                    var k = b.times.count - 1
                    while k >= b.head && b.times[k] == ev.time { sameSum += b.values[k]; same += 1; k -= 1 }
                    let n = b.times.count - b.head - same
                    b.times.append(ev.time)
                    b.values.append(v)
                    let mean = n > 0 ? (b.sum - sameSum) / Double(n) : 0
                    b.add(v)
                    return (n, mean)
                }
                guard n >= minSamples else { continue }   // no baseline: changes nothing
                holds = v > factor * mean
                details.append(("baseline", .number(mean)))
            }
            let isFiring = rules[i].firing.contains(key(ev.entity))
            if holds && !isFiring {
                rules[i].firing.insert(key(ev.entity), true)
                emitter.emit(rule: rules[i].rule, key: .entity(ev.entity), firing: true, time: ev.time, evidence: [ref], details: details)
            } else if !holds && isFiring {
                rules[i].firing.remove(key(ev.entity))
                emitter.emit(rule: rules[i].rule, key: .entity(ev.entity), firing: false, time: ev.time, evidence: [ref], details: details)
            }
        }
    }
}
