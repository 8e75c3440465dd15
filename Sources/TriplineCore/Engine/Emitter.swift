/// Turns evaluator transitions into emitted alerts: applies `expires` and `cooldown`
/// (spec section 4) without ever changing what the evaluators compute, and groups alerts
/// by time so that each time's alerts can be put in canonical order.
struct Emitter {
    struct CooldownKey: Hashable {
        var rule: Int32
        var key: AlertKey
    }
    struct CooldownState {
        var lastFiring: Millis
        var suppressedOpen: Bool
    }

    var cooldown: [Millis]
    var expires: [Millis]
    var cooldownState: [CooldownKey: CooldownState] = [:]
    /// Alerts emitted and not yet taken: those before `groupStart` have a complete time
    /// group; from `groupStart` on, the alerts of the current time (`groupTime`). One array,
    /// so an alert is not copied from a group array to a completed one.
    var alerts: [Alert] = []
    var groupStart = 0
    var groupTime: Millis = .min
    var sequence: UInt64 = 0
    var emittedPerRule: [Int]
    var suppressedByCooldown = 0
    var suppressedByExpiry = 0

    /// For each evaluated rule, the rules that share its definition (itself first).
    var fanout: [[Int32]]

    init(rules: [Rule], fanout: [[Int32]]? = nil) {
        cooldown = rules.map(\.cooldown)
        expires = rules.map { $0.expires ?? .max }
        emittedPerRule = Array(repeating: 0, count: rules.count)
        self.fanout = fanout ?? rules.indices.map { [Int32($0)] }
    }

    /// Emits a transition of the evaluated `rule` for `key` at `time`, for every rule that
    /// shares its definition.
    mutating func emit(rule: Int32, key: AlertKey, firing: Bool, time: Millis, evidence: [EventRef], details: [(String, DetailValue)]) {
        emit(rule: rule, key: key, firing: firing, time: time, evidence: AlertEvidence(evidence), details: AlertDetails(details))
    }

    /// As above, with the evidence and details in their inline forms (no allocation).
    mutating func emit(rule: Int32, key: AlertKey, firing: Bool, time: Millis, evidence: AlertEvidence, details: AlertDetails) {
        let members = fanout[Int(rule)]
        if members.count == 1 {
            emitOne(rule: rule, key: key, firing: firing, time: time, evidence: evidence, details: details)
        } else {
            for m in members { emitOne(rule: m, key: key, firing: firing, time: time, evidence: evidence, details: details) }
        }
    }

    mutating func emitOne(rule: Int32, key: AlertKey, firing: Bool, time: Millis, evidence: AlertEvidence, details: AlertDetails) {
        let r = Int(rule)
        if time >= expires[r] {
            suppressedByExpiry += 1
            return
        }
        if cooldown[r] > 0 {
            let ck = CooldownKey(rule: rule, key: key)
            if firing {
                if let st = cooldownState[ck], time < st.lastFiring + cooldown[r] {
                    cooldownState[ck]!.suppressedOpen = true
                    suppressedByCooldown += 1
                    return
                }
                cooldownState[ck] = CooldownState(lastFiring: time, suppressedOpen: false)
            } else if let st = cooldownState[ck], st.suppressedOpen {
                cooldownState[ck]!.suppressedOpen = false
                suppressedByCooldown += 1
                return
            }
        }
        if time != groupTime {
            groupStart = alerts.count
            groupTime = time
        }
        emittedPerRule[r] += 1
        alerts.append(Alert(rule: rule, key: key, firing: firing, time: time, evidence: evidence.prefix(100),
                           details: details, sequence: sequence))
        sequence += 1
    }

    /// Closes the current group when time has moved past it.
    mutating func advance(to time: Millis) {
        if time > groupTime { groupStart = alerts.count }
    }

    mutating func closeAll() {
        groupStart = alerts.count
    }

    /// Moves the alerts of complete time groups into `out` (appended, in emission order).
    mutating func takeCompleted(into out: inout [Alert]) {
        guard groupStart > 0 else { return }
        if out.isEmpty {
            // Hand over the whole array and move the incomplete group (one time, usually a
            // few alerts) back: no alert of the complete groups is copied.
            swap(&out, &alerts)
            if groupStart < out.count {
                alerts.append(contentsOf: out[groupStart...])
                out.removeSubrange(groupStart...)
            }
        } else {
            out.append(contentsOf: alerts[..<groupStart])
            alerts.removeSubrange(..<groupStart)
        }
        groupStart = 0
    }
}
