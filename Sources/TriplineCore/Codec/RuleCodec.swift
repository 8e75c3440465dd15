/// Decodes and validates a rule file `{rules: [...]}` (spec section 5 and 6) from a parsed
/// document, reporting every problem of the file at once with its location.
public enum RuleCodec {
    static let common = ["id", "kind", "purpose", "owner", "severity", "match", "cooldown", "expires", "labels", "annotations"]

    static func parameterFields(_ kind: RuleKind) -> [String] {
        switch kind {
        case .enter, .exit: return ["zones"]
        case .dwell: return ["zones", "min"]
        case .gathering: return ["zones", "min_count", "window"]
        case .proximity: return ["distance_m", "within", "other"]
        case .frequency: return ["count", "window", "event", "by"]
        case .novelty: return ["count", "window", "lookback", "counterpart"]
        case .threshold: return ["metric", "above", "below", "baseline"]
        case .sequence: return ["steps", "within"]
        case .absence: return ["for", "event"]
        case .speed: return ["max_kmh"]
        case .aggregate: return ["fn", "of", "window", "event", "above", "below", "by"]
        }
    }

    /// Decodes a JSON rule file.
    public static func decodeJSON(_ text: String, file: String, sensitive: SensitiveTags = SensitiveTags()) -> Result<[Rule], TriplineErrors> {
        switch JSONDocumentParser.parse(text, file: file) {
        case .failure(let e): return .failure(TriplineErrors([e]))
        case .success(let doc): return decode(doc, file: file, sensitive: sensitive)
        }
    }

    /// Decodes a rule file from its document tree.
    public static func decode(_ doc: DocNode, file: String, sensitive: SensitiveTags = SensitiveTags()) -> Result<[Rule], TriplineErrors> {
        var r = DocReader(file: file)
        guard let top = r.object(doc, "", allowed: ["rules"], what: "rule file") else { return .failure(TriplineErrors(r.errors)) }
        guard let (list, lp) = r.require(top, "rules", parent: doc, pointer: "", what: "rule file", hint: "write {rules: [...]}") else {
            return .failure(TriplineErrors(r.errors))
        }
        guard let items = list.elements else {
            r.fail(list, lp, "\"rules\" must be a list of rules, found \(list.typeName)")
            return .failure(TriplineErrors(r.errors))
        }
        var rules: [Rule] = []
        var seen: [String: Int] = [:]
        for (i, item) in items.enumerated() {
            let p = lp + "/\(i)"
            if let rule = decodeRule(item, p, &r, sensitive) {
                if let prev = seen[rule.id] {
                    r.fail(item, p + "/id", "duplicate rule id \"\(rule.id)\" (also at \(lp)/\(prev)); rule ids must be unique", code: .duplicateId)
                } else {
                    seen[rule.id] = i
                    rules.append(rule)
                }
            }
        }
        return r.errors.isEmpty ? .success(rules) : .failure(TriplineErrors(r.errors))
    }

    /// Decodes one rule object; returns nil (with errors recorded) when invalid.
    public static func decodeRule(_ node: DocNode, _ p: String, _ r: inout DocReader, _ sensitive: SensitiveTags) -> Rule? {
        guard let members = node.members else {
            r.fail(node, p, "a rule must be an object, found \(node.typeName)")
            return nil
        }
        let before = r.errors.count
        // The kind decides which fields are allowed.
        var kind: RuleKind?
        if let kn = node["kind"] {
            if let ks = r.string(kn, p + "/kind", what: "kind") {
                kind = RuleKind(rawValue: ks)
                if kind == nil {
                    var msg = "unknown rule kind \"\(ks)\"; use one of \(RuleKind.allCases.map(\.rawValue).joined(separator: ", "))"
                    if let near = DocReader.closest(ks, RuleKind.allCases.map(\.rawValue)) { msg = "unknown rule kind \"\(ks)\" (did you mean \"\(near)\"?); use one of \(RuleKind.allCases.map(\.rawValue).joined(separator: ", "))" }
                    r.fail(kn, p + "/kind", msg)
                }
            }
        } else {
            r.fail(node, p, "rule is missing required field \"kind\"", code: .missingField)
        }
        let ruleName = node["id"]?.stringValue.map { "rule \"\($0)\"" } ?? "rule"
        var allowed = common
        if let kind { allowed += parameterFields(kind) } else { allowed += RuleKind.allCases.flatMap(parameterFields) }
        if kind?.takesJitter ?? true { allowed += jitterFields }
        if let kind, !kind.takesZones, members.contains(where: { $0.key == "zones" }) {
            let zn = node["zones"]!
            r.fail(zn, p + "/zones", "\(ruleName): only enter, exit, dwell and gathering take a rule-level \"zones\" selector; a \(kind.rawValue) rule may filter positions by zones inside its \"event\" filter where it has one")
        }
        var tolerated = kind.map { $0.takesZones } == false ? ["zones"] : []
        if let kind, !kind.takesJitter {
            for k in jitterFields {
                guard let jn = node[k] else { continue }
                r.fail(jn, p + "/" + k, "\(ruleName): \"\(k)\" steadies zone membership and applies only to enter, exit, dwell, gathering and sequence rules, not \(kind.rawValue)")
                tolerated.append(k)
            }
        }
        if let kind, kind != .frequency, kind != .aggregate, let bn = node["by"] {
            r.fail(bn, p + "/by", "\(ruleName): \"by\" groups only frequency and aggregate rules; a \(kind.rawValue) rule keeps its state per \(kind == .gathering ? "zone" : kind == .proximity ? "pair" : "entity"). Remove \"by\", or write the rule as a frequency or aggregate rule")
            tolerated.append("by")
        }
        guard let f = r.object(node, p, allowed: allowed + tolerated, what: ruleName) else { return nil }

        func req(_ key: String, hint: String = "") -> (DocNode, String)? {
            r.require(f, key, parent: node, pointer: p, what: ruleName, hint: hint)
        }
        var id: String?, purpose: String?, owner: String?, severity: Severity?, match: Selector?
        if let (n, fp) = req("id") { id = r.string(n, fp, what: "id") }
        if let (n, fp) = req("purpose", hint: "say why the rule exists (spec section 6)") { purpose = r.string(n, fp, what: "purpose") }
        if let (n, fp) = req("owner", hint: "name the team or person accountable for it") { owner = r.string(n, fp, what: "owner") }
        if let (n, fp) = req("severity", hint: "one of info, low, medium, high, critical") {
            if let s = r.string(n, fp, what: "severity") {
                severity = Severity(rawValue: s)
                if severity == nil { r.fail(n, fp, "severity \"\(s)\" is not one of info, low, medium, high, critical") }
            }
        }
        if let (n, fp) = req("match", hint: "an entity selector; write match: {} to match every entity") {
            match = r.selector(n, fp, classKey: "kind", what: "match selector", sensitive: sensitive)
        }
        var cooldown: Millis = 0
        if let (n, fp) = f["cooldown"] { cooldown = r.duration(n, fp, what: "cooldown", allowZero: true) ?? 0 }
        var expires: Millis?
        if let (n, fp) = f["expires"] {
            if let s = r.string(n, fp, what: "expires") {
                switch EventTime.parseRFC3339(s) {
                case .success(let t): expires = t
                case .failure(.malformed(let why)): r.fail(n, fp, "expires must be an RFC 3339 time such as 2027-06-30T00:00:00Z: \(why)")
                }
            }
        }
        var zones: Selector?
        if let kind, kind.takesZones, let (n, fp) = f["zones"] {
            zones = r.selector(n, fp, classKey: "category", what: "zones selector", sensitive: sensitive)
        }
        var params: RuleParameters?
        if let kind {
            params = parameters(kind, f, node, p, ruleName, &r, sensitive)
        }
        var jitter: ZoneJitter?
        if let kind, kind.takesJitter { jitter = Self.jitter(f, ruleName, &r) }
        if let jitter, case .sequence(let steps, _)? = params {
            func zoneStep(_ s: SequenceStep) -> Bool {
                switch s {
                case .enter, .exit: return true
                case .event: return false
                case .absent(let inner, _): return zoneStep(inner)
                }
            }
            if !steps.contains(where: zoneStep) {
                let k = f["enter_after"] != nil ? "enter_after" : "exit_margin_m"
                r.fail(f[k]!.0, f[k]!.1, "\(ruleName): \"\(k)\" steadies the zone membership of enter and exit steps, and this sequence has none; remove it")
            }
        }
        var labels: [String: String] = [:]
        if let (n, fp) = f["labels"] { labels = AlertLabels.decodeRuleLabels(n, fp, &r, sensitive) ?? [:] }
        var annotations: [String: String] = [:]
        if let (n, fp) = f["annotations"] { annotations = AlertLabels.decodeAnnotations(n, fp, &r) ?? [:] }
        guard r.errors.count == before, let id, let purpose, let owner, let severity, let match, let params else { return nil }
        return Rule(id: id, purpose: purpose, owner: owner, severity: severity, match: match, zones: zones,
                    cooldown: cooldown, expires: expires, parameters: params, labels: labels, annotations: annotations, line: node.line,
                    jitter: jitter)
    }

    static let jitterFields = ["enter_after", "exit_margin_m"]
    /// The largest `enter_after` count and `exit_margin_m`.
    static let maxEnterFixes = 1000
    static let maxExitMarginM = 100_000.0

    /// `enter_after` (a whole number of fixes or a duration) and `exit_margin_m` (metres);
    /// nil when neither is given.
    static func jitter(_ f: [String: (DocNode, String)], _ name: String, _ r: inout DocReader) -> ZoneJitter? {
        guard f["enter_after"] != nil || f["exit_margin_m"] != nil else { return nil }
        var j = ZoneJitter()
        if let (n, fp) = f["enter_after"] {
            if n.stringValue != nil {
                if let d = r.duration(n, fp, what: "enter_after") { j.enterAfter = .duration(d) }
            } else if n.numberValue != nil {
                if let k = r.integer(n, fp, what: "enter_after (consecutive inside positions)", min: 1) {
                    if k > maxEnterFixes {
                        r.fail(n, fp, "\(name): enter_after is at most \(maxEnterFixes) positions, found \(k); for longer, give a duration such as \"10m\"")
                    } else {
                        j.enterAfter = .fixes(k)
                    }
                }
            } else {
                r.fail(n, fp, "\(name): enter_after is a whole number of consecutive inside positions (such as 3) or a duration (such as \"30s\"), found \(n.typeName)")
            }
        }
        if let (n, fp) = f["exit_margin_m"], let m = r.number(n, fp, what: "exit_margin_m") {
            if m < 0 || m > maxExitMarginM {
                r.fail(n, fp, "\(name): exit_margin_m is metres from 0 to \(Int(maxExitMarginM)), found \(m)")
            } else {
                j.exitMarginM = m
            }
        }
        // `enter_after: 1` with no margin is spec 1.2's membership: no steadying to run.
        return j.isDefault ? nil : j
    }

    static func parameters(_ kind: RuleKind, _ f: [String: (DocNode, String)], _ node: DocNode, _ p: String, _ name: String,
                           _ r: inout DocReader, _ sensitive: SensitiveTags) -> RuleParameters? {
        func req(_ key: String, hint: String = "") -> (DocNode, String)? {
            r.require(f, key, parent: node, pointer: p, what: name, hint: hint)
        }
        switch kind {
        case .enter: return .enter
        case .exit: return .exit
        case .dwell:
            guard let (n, fp) = req("min", hint: "how long a visit must last, e.g. 6h") else { return nil }
            guard let m = r.duration(n, fp, what: "min") else { return nil }
            return .dwell(min: m)
        case .gathering:
            let c = req("min_count", hint: "how many entities make a gathering (>= 2)").flatMap { r.integer($0.0, $0.1, what: "min_count", min: 2) }
            let w = req("window", hint: "e.g. 30m").flatMap { r.duration($0.0, $0.1, what: "window") }
            guard let c, let w else { return nil }
            return .gathering(minCount: c, window: w)
        case .proximity:
            var d: Double?
            if let (n, fp) = req("distance_m", hint: "metres, e.g. 50") {
                d = r.number(n, fp, what: "distance_m")
                if let dv = d, dv <= 0 { r.fail(n, fp, "distance_m must be greater than 0, found \(dv)"); d = nil }
            }
            let w = req("within", hint: "how fresh both positions must be, e.g. 5m").flatMap { r.duration($0.0, $0.1, what: "within") }
            var other: Selector?
            var ok = true
            if let (n, fp) = f["other"] {
                other = r.selector(n, fp, classKey: "kind", what: "other selector", sensitive: sensitive)
                ok = other != nil
            }
            guard let d, let w, ok else { return nil }
            return .proximity(distanceM: d, within: w, other: other)
        case .frequency:
            let c = req("count", hint: "how many events (>= 1)").flatMap { r.integer($0.0, $0.1, what: "count", min: 1) }
            let w = req("window", hint: "e.g. 1h").flatMap { r.duration($0.0, $0.1, what: "window") }
            let e = req("event", hint: "which events count, e.g. {type: payment}").flatMap { eventFilter($0.0, $0.1, &r, sensitive) }
            var by: GroupBy?
            var ok = true
            if let (bn, bp) = f["by"] {
                by = groupBy(bn, bp, eventType: e?.type, &r, sensitive)
                ok = by != nil
            }
            guard let c, let w, let e, ok else { return nil }
            return .frequency(count: c, window: w, event: e, by: by)
        case .novelty:
            let c = req("count", hint: "how many new counterparts (>= 1)").flatMap { r.integer($0.0, $0.1, what: "count", min: 1) }
            let w = req("window", hint: "e.g. 1h").flatMap { r.duration($0.0, $0.1, what: "window") }
            let h = req("lookback", hint: "how far back a counterpart counts as known, e.g. 30d").flatMap { r.duration($0.0, $0.1, what: "lookback") }
            var cf: CounterpartFilter?
            var ok = true
            if let (n, fp) = f["counterpart"] {
                if let cfields = r.object(n, fp, allowed: ["prefix", "not_prefix"], what: "counterpart filter") {
                    var flt = CounterpartFilter()
                    if let (pn, pp) = cfields["prefix"] { flt.prefix = r.stringList(pn, pp, what: "prefix"); ok = ok && flt.prefix != nil }
                    if let (pn, pp) = cfields["not_prefix"] { flt.notPrefix = r.stringList(pn, pp, what: "not_prefix"); ok = ok && flt.notPrefix != nil }
                    cf = flt
                } else { ok = false }
            }
            guard let c, let w, let h, ok else { return nil }
            return .novelty(count: c, window: w, lookback: h, counterpart: cf)
        case .threshold:
            let metric = req("metric", hint: "the reading's metric, e.g. water_l").flatMap { r.string($0.0, $0.1, what: "metric") }
            let given = ["above", "below", "baseline"].filter { f[$0] != nil }
            if given.count != 1 {
                r.fail(node, p, given.isEmpty
                       ? "\(name) needs exactly one of \"above\", \"below\" or \"baseline\""
                       : "\(name) has \(given.joined(separator: " and ")); give exactly one of \"above\", \"below\" or \"baseline\"")
                return nil
            }
            var cond: ThresholdCondition?
            if let (n, fp) = f["above"] { cond = r.number(n, fp, what: "above").map { .above($0) } }
            if let (n, fp) = f["below"] { cond = r.number(n, fp, what: "below").map { .below($0) } }
            if let (n, fp) = f["baseline"] {
                if let b = r.object(n, fp, allowed: ["window", "factor", "min_samples"], what: "baseline") {
                    let w = r.require(b, "window", parent: n, pointer: fp, what: "baseline", hint: "e.g. 28d").flatMap { r.duration($0.0, $0.1, what: "baseline window") }
                    var factor: Double?
                    if let (fn, ffp) = r.require(b, "factor", parent: n, pointer: fp, what: "baseline", hint: "e.g. 3") {
                        factor = r.number(fn, ffp, what: "factor")
                        if let fv = factor, fv <= 0 {
                            r.fail(fn, ffp, "factor must be greater than 0, found \(fv): a reading above \(fv) x baseline would always or never fire")
                            factor = nil
                        }
                    }
                    let ms = r.require(b, "min_samples", parent: n, pointer: fp, what: "baseline", hint: "how many readings define a baseline (>= 1)").flatMap { r.integer($0.0, $0.1, what: "min_samples", min: 1) }
                    if let w, let factor, let ms { cond = .baseline(window: w, factor: factor, minSamples: ms) }
                }
            }
            guard let metric, let cond else { return nil }
            return .threshold(metric: metric, condition: cond)
        case .sequence:
            return sequence(f, node, p, name, &r, sensitive)
        case .absence:
            let d = req("for", hint: "how long a silence must last, e.g. 10m").flatMap { r.duration($0.0, $0.1, what: "for") }
            var e: EventFilter?
            var ok = true
            if let (n, fp) = f["event"] { e = eventFilter(n, fp, &r, sensitive); ok = e != nil }
            guard let d, ok else { return nil }
            return .absence(duration: d, event: e)
        case .speed:
            guard let (n, fp) = req("max_kmh", hint: "the speed limit in km/h") else { return nil }
            guard let v = r.number(n, fp, what: "max_kmh") else { return nil }
            if v < 0 { r.fail(n, fp, "max_kmh must not be negative, found \(v)"); return nil }
            return .speed(maxKmh: v)
        case .aggregate:
            return aggregate(f, node, p, name, &r, sensitive)
        }
    }

    /// `by: counterpart` or `by: {attr: NAME}` (spec 1.3, 5b.11).
    static func groupBy(_ n: DocNode, _ p: String, eventType: String?, _ r: inout DocReader, _ sensitive: SensitiveTags) -> GroupBy? {
        if let s = n.stringValue {
            guard s == "counterpart" else {
                r.fail(n, p, "by must be counterpart or {attr: NAME}, found \"\(s)\"\(s == "entity" ? "; state is always per entity, so leave \"by\" out to count per entity" : "")")
                return nil
            }
            if let t = eventType, t != "contact" {
                r.fail(n, p, "by: counterpart groups contact events by their counterpart, but the event filter selects \"\(t)\" events, which have none; use event: {type: contact}, or group by an attribute with by: {attr: NAME}")
                return nil
            }
            return .counterpart
        }
        return attrField(n, p, what: "by", &r, sensitive).map { .attr($0) }
    }

    /// `{attr: NAME}`, refusing a sensitive NAME (spec section 6).
    static func attrField(_ n: DocNode, _ p: String, what: String, _ r: inout DocReader, _ sensitive: SensitiveTags) -> String? {
        guard n.members != nil else {
            r.fail(n, p, "\(what) must be \(what == "by" ? "counterpart" : "value, counterpart") or {attr: NAME}, found \(n.typeName)")
            return nil
        }
        guard let a = r.object(n, p, allowed: ["attr"], what: "\(what) field") else { return nil }
        guard let (an, ap) = r.require(a, "attr", parent: n, pointer: p, what: "\(what) field", hint: "name the event attribute, e.g. {attr: amount}") else { return nil }
        guard let name = r.string(an, ap, what: "attr") else { return nil }
        if sensitive.isSensitive(name) {
            r.fail(an, ap, "\(what) names the sensitive attribute \"\(name)\": rules may not group or aggregate by it (spec section 6); choose an attribute about the thing or account, not the person", code: .sensitiveTag)
            return nil
        }
        return name
    }

    /// The `aggregate` kind (spec 1.3, 5b.12).
    static func aggregate(_ f: [String: (DocNode, String)], _ node: DocNode, _ p: String, _ name: String,
                          _ r: inout DocReader, _ sensitive: SensitiveTags) -> RuleParameters? {
        func req(_ key: String, hint: String = "") -> (DocNode, String)? {
            r.require(f, key, parent: node, pointer: p, what: name, hint: hint)
        }
        let fns = AggregateFunction.allCases.map(\.rawValue)
        var fn: AggregateFunction?
        if let (n, fp) = req("fn", hint: "one of \(fns.joined(separator: ", "))"), let s = r.string(n, fp, what: "fn") {
            fn = AggregateFunction(rawValue: s)
            if fn == nil {
                var msg = "unknown aggregate function \"\(s)\""
                if let near = DocReader.closest(s, fns) { msg += " (did you mean \"\(near)\"?)" }
                r.fail(n, fp, msg + "; use one of \(fns.joined(separator: ", "))")
            }
        }
        let w = req("window", hint: "e.g. 24h").flatMap { r.duration($0.0, $0.1, what: "window") }
        let e = req("event", hint: "which events count, e.g. {type: payment}").flatMap { eventFilter($0.0, $0.1, &r, sensitive) }
        var of: AggregateField?
        if let (n, fp) = req("of", hint: "value (of readings), counterpart (of contacts, for count_distinct) or {attr: NAME}") {
            if let s = n.stringValue {
                switch s {
                case "value":
                    if let t = e?.type, t != "reading" {
                        r.fail(n, fp, "of: value reads the value of reading events, but the event filter selects \"\(t)\" events; use event: {type: reading, metric: ...}, or aggregate an attribute with of: {attr: NAME}")
                    } else { of = .value }
                case "counterpart":
                    if let fn, fn != .countDistinct {
                        r.fail(n, fp, "of: counterpart is a name, not a number: only fn: count_distinct can aggregate it, not \(fn.rawValue)")
                    } else if let t = e?.type, t != "contact" {
                        r.fail(n, fp, "of: counterpart reads the counterpart of contact events, but the event filter selects \"\(t)\" events; use event: {type: contact}")
                    } else { of = .counterpart }
                default:
                    r.fail(n, fp, "of must be value, counterpart or {attr: NAME}, found \"\(s)\"")
                }
            } else if let a = attrField(n, fp, what: "of", &r, sensitive) {
                of = .attr(a)
            }
        }
        let given = ["above", "below"].filter { f[$0] != nil }
        var bound: Bound?
        if given.count != 1 {
            r.fail(node, p, given.isEmpty ? "\(name) needs exactly one of \"above\" or \"below\": the value the aggregate is compared with"
                                         : "\(name) has both \"above\" and \"below\"; give exactly one (write two rules for a band)")
        } else if let (n, fp) = f["above"] {
            bound = r.number(n, fp, what: "above").map { .above($0) }
        } else if let (n, fp) = f["below"] {
            bound = r.number(n, fp, what: "below").map { .below($0) }
        }
        var by: GroupBy?
        var ok = true
        if let (bn, bp) = f["by"] {
            by = groupBy(bn, bp, eventType: e?.type, &r, sensitive)
            ok = by != nil
        }
        guard let fn, let of, let w, let e, let bound, ok else { return nil }
        return .aggregate(fn: fn, of: of, window: w, event: e, bound: bound, by: by)
    }

    /// The `sequence` kind with negated steps (spec sections 5.8 and 5b.13).
    static func sequence(_ f: [String: (DocNode, String)], _ node: DocNode, _ p: String, _ name: String,
                         _ r: inout DocReader, _ sensitive: SensitiveTags) -> RuleParameters? {
        var w: Millis?
        if let (n, fp) = f["within"] { w = r.duration(n, fp, what: "within") }
        guard let (sn, sp) = r.require(f, "steps", parent: node, pointer: p, what: name, hint: "a list of at least 2 steps") else { return nil }
        guard let list = sn.elements else { r.fail(sn, sp, "steps must be a list, found \(sn.typeName)"); return nil }
        if list.count < 2 {
            r.fail(sn, sp, "a sequence needs at least 2 steps, found \(list.count); use a frequency or enter rule for a single event")
            return nil
        }
        let stepShapes = "{enter: zone selector}, {exit: zone selector}, {event: filter} or {absent: step}"
        func positive(_ key: String, _ node: DocNode, _ kp: String) -> SequenceStep? {
            switch key {
            case "enter":
                return r.selector(node, kp, classKey: "category", what: "step zone selector", sensitive: sensitive).map { .enter($0) }
            case "exit":
                return r.selector(node, kp, classKey: "category", what: "step zone selector", sensitive: sensitive).map { .exit($0) }
            case "event":
                return eventFilter(node, kp, &r, sensitive).map { .event($0) }
            default:
                var msg = "unknown step \"\(key)\"; a step is \(stepShapes)"
                if let near = DocReader.closest(key, ["enter", "exit", "event", "absent"]) { msg = "unknown step \"\(key)\" (did you mean \"\(near)\"?); a step is \(stepShapes)" }
                r.fail(node, kp, msg, code: .unknownField)
                return nil
            }
        }
        let lastPositive = list.lastIndex { $0.members?.contains { $0.key == "absent" } != true } ?? -1
        var steps: [SequenceStep] = []
        var ok = true
        for (i, s) in list.enumerated() {
            let stp = sp + "/\(i)"
            guard let m = s.members, !m.isEmpty else {
                r.fail(s, stp, "a step must be an object, one of \(stepShapes); found \(s.typeName)")
                ok = false
                continue
            }
            if m.contains(where: { $0.key == "absent" }) {
                guard let fields = r.object(s, stp, allowed: ["absent", "for"], what: "absent step") else { ok = false; continue }
                let (an, ap) = fields["absent"]!
                if i == 0 {
                    r.fail(s, stp, "a sequence cannot begin with an absent step: nothing before it says from when the event must be missing. Put the step it must follow first, e.g. [{enter: ...}, {absent: ...}], or use an absence rule for plain silence")
                    ok = false
                    continue
                }
                var deadline: Millis?
                if let (fn, fp) = fields["for"] {
                    if i != list.count - 1 {
                        r.fail(fn, fp, "\"for\" belongs only on a trailing absent step (the deadline after the last positive step); between positive steps the neighbouring steps bound the gap. Remove it, or move this step to the end")
                        ok = false
                    } else { deadline = r.duration(fn, fp, what: "for") }
                    if deadline == nil { ok = false }
                } else if i == list.count - 1 {
                    r.fail(s, stp, "a trailing absent step needs \"for\": how long after the last positive step the event must stay missing, e.g. {absent: {event: {type: unload}}, for: 2h}", code: .missingField)
                    ok = false
                }
                if i > lastPositive && i != list.count - 1 {
                    r.fail(s, stp, "only one absent step may follow the last positive step (it carries the deadline); list what must not happen in one step per rule, or put a positive step between them")
                    ok = false
                    continue
                }
                guard let im = an.members, im.count == 1 else {
                    r.fail(an, ap, "absent takes one step, {enter: ...}, {exit: ...} or {event: ...}\(an.members?.contains { $0.key == "absent" } == true ? "" : "")")
                    ok = false
                    continue
                }
                if im[0].key == "absent" {
                    r.fail(im[0].node, ap + "/absent", "an absent step cannot hold another absent step; name the event that must not happen, e.g. {absent: {event: {type: unload}}}")
                    ok = false
                    continue
                }
                if let inner = positive(im[0].key, im[0].node, ap + "/" + pointerToken(im[0].key)) {
                    if ok { steps.append(.absent(inner, for: deadline)) }
                } else { ok = false }
                continue
            }
            guard m.count == 1 else {
                r.fail(s, stp, "a step must have exactly one of \(stepShapes); found \(m.map { "\"\($0.key)\"" }.joined(separator: ", "))")
                ok = false
                continue
            }
            let key = m[0].key
            if key == "for" {
                r.fail(s, stp, "\"for\" belongs on a trailing absent step, with \"absent\" beside it")
                ok = false
                continue
            }
            if let st = positive(key, m[0].node, stp + "/" + pointerToken(key)) { steps.append(st) } else { ok = false }
        }
        guard ok else { return nil }
        let positives = steps.filter { !$0.isAbsent }.count
        if positives >= 2 && w == nil && f["within"] == nil {
            r.fail(node, p, "\(name) is missing required field \"within\": the longest time from first to last positive step, e.g. 30m (it may be left out only when a single positive step is followed by an absent step)", code: .missingField)
            return nil
        }
        if f["within"] != nil && w == nil { return nil }
        return .sequence(steps: steps, within: w)
    }

    static func eventFilter(_ n: DocNode, _ p: String, _ r: inout DocReader, _ sensitive: SensitiveTags) -> EventFilter? {
        guard let f = r.object(n, p, allowed: ["type", "metric", "attrs", "zones"], what: "event filter") else { return nil }
        let before = r.errors.count
        guard let (tn, tp) = r.require(f, "type", parent: n, pointer: p, what: "event filter", hint: "e.g. {type: payment}") else { return nil }
        guard let type = r.string(tn, tp, what: "event type") else { return nil }
        var filter = EventFilter(type: type)
        if let (mn, mp) = f["metric"] {
            filter.metric = r.string(mn, mp, what: "metric")
            if type != "reading" { r.fail(mn, mp, "\"metric\" applies only to events of type reading, not \"\(type)\"") }
        }
        if let (an, ap) = f["attrs"] {
            if let members = an.members {
                for m in members {
                    let mp = ap + "/" + pointerToken(m.key)
                    if sensitive.isSensitive(m.key) {
                        r.fail(m.node, mp, "event filter names the sensitive attribute \"\(m.key)\": rules may not filter on it (spec section 6)", code: .sensitiveTag)
                        continue
                    }
                    switch m.node.value {
                    case .string(let s): filter.attrs[m.key] = .string(s)
                    case .number(let d, _): filter.attrs[m.key] = .number(d)
                    case .bool(let b): filter.attrs[m.key] = .bool(b)
                    default: r.fail(m.node, mp, "attribute values must be strings, numbers or booleans, found \(m.node.typeName)")
                    }
                }
            } else {
                r.fail(an, ap, "attrs must be an object, found \(an.typeName)")
            }
        }
        if let (zn, zp) = f["zones"] {
            if type != "position" { r.fail(zn, zp, "\"zones\" in an event filter applies only to position events, not \"\(type)\"") }
            filter.zones = r.selector(zn, zp, classKey: "category", what: "zones selector", sensitive: sensitive)
        }
        return r.errors.count == before ? filter : nil
    }
}
