/// Why an alert fired or resolved, in an operator's words: the window it looked at and a
/// sentence built from the rule's parameters and the alert's numbers (spec section 4-5).
public struct AlertExplanation: Sendable, Equatable {
    /// The event-time interval the rule looked at, when it has one: (from, to].
    public var windowFrom: Millis?
    public var windowTo: Millis?
    public var sentence: String

    /// `details` holds the alert's numbers by name (as in the alert line).
    public init(rule: Rule, firing: Bool, time: Millis, keyText: String, details: [String: String], group: String? = nil) {
        func d(_ ms: Millis) -> String { DurationText.format(ms) }
        let at = EventTime.format(time)
        let n = { (k: String) in details[k] ?? "?" }
        var from: Millis?
        var s: String
        switch rule.parameters {
        case .enter:
            s = "\(keyText) entered the zone at \(at); enter rules fire on every entry"
        case .exit:
            s = "\(keyText) left the zone at \(at); exit rules fire on every exit"
        case .dwell(let min):
            from = time - min
            s = firing ? "\(keyText) stayed inside for \(n("dwell_s")) s, reaching the minimum of \(d(min)) at \(at)"
                : "\(keyText) left after \(n("dwell_s")) s inside"
        case .gathering(let c, let w):
            from = time - w
            s = firing ? "\(n("count")) matching entities were inside within \(d(w)) up to \(at), at least the \(c) the rule asks for"
                : "only \(n("count")) matching entities remained inside within \(d(w)) at \(at), fewer than \(c)"
        case .proximity(let dist, let w, _):
            from = time - w
            s = firing ? "\(keyText) were \(n("distance_m")) m apart at \(at), within \(Self.num(dist)) m, both positions at most \(d(w)) old"
                : "\(keyText) are no longer within \(Self.num(dist)) m (or a position grew older than \(d(w)))"
        case .frequency(let c, let w, let e, let by):
            from = time - w
            let per = by.map { " with \(Self.groupText($0, group))" } ?? ""
            s = firing ? "\(n("count")) \(e.type) events\(per) in the \(d(w)) up to \(at), reaching the count of \(c)"
                : "the count of \(e.type) events\(per) in the last \(d(w)) fell to \(n("count")), below \(c)"
        case .aggregate(let fn, let of, let w, let e, let bound, let by):
            from = time - w
            let per = by.map { " with \(Self.groupText($0, group))" } ?? ""
            let field: String
            switch of {
            case .value: field = "value"
            case .counterpart: field = "counterpart"
            case .attr(let a): field = a
            }
            let what: String
            switch fn {
            case .sum: what = "the sum of \(field)"
            case .mean: what = "the mean \(field)"
            case .min: what = "the smallest \(field)"
            case .max: what = "the largest \(field)"
            case .countDistinct: what = "the number of distinct \(field) values"
            }
            let (cmp, x): (String, Double) = { switch bound { case .above(let v): return ("above", v); case .below(let v): return ("below", v) } }()
            let value = n("value") == "infinite" ? "undefined (no event in the window carries \(field))" : n("value")
            s = firing ? "\(what) over the \(n("count")) \(e.type) events\(per) in the \(d(w)) up to \(at) was \(value), \(cmp) \(Self.num(x))"
                : "\(what) over the \(n("count")) \(e.type) events\(per) in the \(d(w)) up to \(at) became \(value), no longer \(cmp) \(Self.num(x))"
        case .novelty(let c, let w, let h, _):
            from = time - w
            s = firing ? "\(n("count")) counterparts new within the last \(d(h)) were contacted in the \(d(w)) up to \(at), reaching \(c)"
                : "new counterparts in the last \(d(w)) fell to \(n("count")), below \(c)"
        case .threshold(let metric, let cond):
            switch cond {
            case .above(let v):
                s = firing ? "\(metric) read \(n("value")) at \(at), above \(Self.num(v))" : "\(metric) read \(n("value")) at \(at), no longer above \(Self.num(v))"
            case .below(let v):
                s = firing ? "\(metric) read \(n("value")) at \(at), below \(Self.num(v))" : "\(metric) read \(n("value")) at \(at), no longer below \(Self.num(v))"
            case .baseline(let w, let f, _):
                from = time - w
                s = firing ? "\(metric) read \(n("value")) at \(at), more than \(Self.num(f)) x the baseline \(n("baseline")) of the previous \(d(w))"
                    : "\(metric) read \(n("value")) at \(at), back within \(Self.num(f)) x the baseline \(n("baseline"))"
            }
        case .sequence(let steps, let within):
            let positives = steps.filter { !$0.isAbsent }.count
            let absent = steps.count - positives
            let bound = within.map { " (at most \(d($0)))" } ?? ""
            if case .absent(_, let deadline?)? = steps.last {
                from = time - (within ?? 0) - deadline
                s = "\(positives == 1 ? "the first step happened" : "the \(positives) steps happened in order")\(absent > 1 ? " with none of the forbidden events between them" : "") and the forbidden event did not follow within \(d(deadline)); \(n("span_s")) s from the first step to the deadline at \(at)\(bound)"
            } else {
                from = within.map { time - $0 }
                s = "the \(positives) steps happened in order within \(n("span_s")) s\(bound)\(absent > 0 ? ", with no forbidden event between them" : ""), the last at \(at)"
            }
        case .absence(let dur, _):
            from = firing ? time - dur : nil
            s = firing ? "\(keyText) was silent for \(d(dur)) up to \(at)" : "\(keyText) was heard again at \(at) after \(n("silent_s")) s of silence"
        case .speed(let v):
            s = "\(keyText) moved at \(n("kmh")) km/h (\(n("distance_m")) m) between its last two positions, above \(Self.num(v)) km/h"
        }
        if let edit = details["zone_edit"], let v = details["zone_version"] {
            // A transition caused by a zone edit, not by a position (docs/rules.md, "Zone edits").
            let what = edit == "deleted" ? "the zone was deleted (version \(v))" : "the zone was \(edit) (version \(v))"
            if case .gathering = rule.kind {
                s += "; not a movement: \(what) at \(at), which moved the boundary across the latest positions of the entities counted"
            } else {
                s += "; not a movement: \(what) at \(at), which moved the boundary across the entity's latest position"
            }
        }
        windowFrom = from
        windowTo = from == nil ? nil : time
        sentence = s
    }

    /// From an alert's parts as its line names them: the key (entity, zone, pair) and the
    /// details (numbers, null for infinite, lists of names).
    public init(rule: Rule, firing: Bool, time: Millis, entity: String?, zone: String?, pair: (String, String)?, details: [(String, DetailValue)], group: String? = nil) {
        var keyText = entity ?? ""
        if let (a, b) = pair { keyText = "\(a) and \(b)" }
        if keyText.isEmpty, let zone { keyText = "zone " + zone }
        var numbers: [String: String] = [:]
        for (k, v) in details {
            switch v {
            case .null: numbers[k] = "infinite"
            case .number(let d):
                var b: [UInt8] = []
                JSONText.appendNumber(d, to: &b)
                numbers[k] = String(decoding: b, as: UTF8.self)
            case .strings(let ss): numbers[k] = ss.joined(separator: ", ")
            }
        }
        self.init(rule: rule, firing: firing, time: time, keyText: keyText, details: numbers, group: group)
    }

    static func groupText(_ by: GroupBy, _ group: String?) -> String {
        switch by {
        case .counterpart: return group.map { "counterpart \($0)" } ?? "one counterpart"
        case .attr(let a): return group.map { "\(a) = \($0)" } ?? "one \(a)"
        }
    }

    static func num(_ d: Double) -> String {
        d == d.rounded() && abs(d) < 1e15 ? String(Int64(d)) : String(d)
    }
}

