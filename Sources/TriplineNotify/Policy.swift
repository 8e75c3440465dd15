import TriplineCore

/// One node of the routing tree, with what it inherits from its parent already filled in.
public struct Route: Sendable {
    /// Where it sits: "root", "root.0", "root.0.2" (the index among its parent's `routes`).
    public var path: String
    /// The JSON pointer of the node in the policy document.
    public var pointer: String
    public var receiver: String
    public var matchers: [Matcher]
    public var `continue`: Bool
    /// Label names whose values split alerts into groups; nil groups by every label (`...`).
    public var groupBy: [String]?
    public var groupWait: Millis
    public var groupInterval: Millis
    public var repeatInterval: Millis
    public var sendResolved: Bool
    /// Names of time intervals: no notification is sent while one of `mute` holds, or while
    /// `active` is given and none of it holds. Not inherited (as in Alertmanager).
    public var mute: [String]
    public var active: [String]
    public var children: [Route]
}

/// Hold back alerts matching `target` while an alert matching `source` fires, when both have
/// the same values of the `equal` labels.
public struct InhibitRule: Sendable {
    public var source: [Matcher]
    public var target: [Matcher]
    public var equal: [String]
}

/// A notification policy: Alertmanager's routing tree, inhibition rules and time intervals.
public struct NotificationPolicy: Sendable {
    public var root: Route
    public var inhibitRules: [InhibitRule]
    public var timeIntervals: [String: NamedTimeInterval]

    public static let defaultGroupWait: Millis = 30_000
    public static let defaultGroupInterval: Millis = 300_000
    public static let defaultRepeatInterval: Millis = 4 * 3_600_000

    /// The routes an alert with `labels` goes to, in tree order: depth first, the first
    /// matching child wins unless it has `continue: true`; a node none of whose children
    /// match takes the alert itself.
    public func routes(for labels: LabelSet) -> [Route] {
        var out: [Route] = []
        func visit(_ r: Route) -> Bool {
            guard r.matchers.matchAll(labels) else { return false }
            var matchedChild = false
            for c in r.children {
                if visit(c) {
                    matchedChild = true
                    if !c.continue { break }
                }
            }
            if !matchedChild { out.append(r) }
            return true
        }
        _ = visit(root)
        return out
    }

    /// Every route, root first, depth first.
    public var allRoutes: [Route] {
        var out: [Route] = []
        func walk(_ r: Route) {
            out.append(r)
            r.children.forEach(walk)
        }
        walk(root)
        return out
    }

    /// Receiver names the policy uses.
    public var receivers: Set<String> { Set(allRoutes.map(\.receiver)) }

    public func interval(_ name: String) -> NamedTimeInterval? { timeIntervals[name] }

    /// True when the route may notify at `t` (no mute interval holds; an active interval, if
    /// any is named, holds).
    public func mayNotify(_ r: Route, at t: Millis) -> Bool {
        if r.mute.contains(where: { timeIntervals[$0]?.contains(t) == true }) { return false }
        if !r.active.isEmpty && !r.active.contains(where: { timeIntervals[$0]?.contains(t) == true }) { return false }
        return true
    }

    /// Whether `target` is held back by a firing `source` under one of the inhibition rules.
    public func inhibits(source: LabelSet, target: LabelSet) -> Bool {
        inhibitRules.contains { ir in
            ir.source.matchAll(source) && ir.target.matchAll(target) && ir.equal.allSatisfy { (source[$0] ?? "") == (target[$0] ?? "") }
        }
    }
}

extension NotificationPolicy {
    /// Decodes a policy document, reporting every problem with its location. `receivers`,
    /// when given, are the receiver ids that exist: a route naming another one is an error.
    public static func decode(_ doc: DocNode, file: String, receivers: Set<String>? = nil) -> Result<NotificationPolicy, TriplineErrors> {
        var r = DocReader(file: file)
        guard let top = r.object(doc, "", allowed: ["route", "inhibit_rules", "time_intervals"], what: "notification policy") else {
            return .failure(TriplineErrors(r.errors))
        }
        var intervals: [String: NamedTimeInterval] = [:]
        if let (n, p) = top["time_intervals"] {
            if let items = n.elements {
                for (i, item) in items.enumerated() {
                    guard let ti = TimeIntervalCodec.decode(item, p + "/\(i)", &r) else { continue }
                    if intervals[ti.name] != nil {
                        r.fail(item, p + "/\(i)/name", "time interval \"\(ti.name)\" is defined twice; names must be unique", code: .duplicateId)
                    }
                    intervals[ti.name] = ti
                }
            } else {
                r.fail(n, p, "time_intervals must be a list of {name, time_intervals}, found \(n.typeName)")
            }
        }
        // Names declared, even by an interval with errors of its own (so a reference to it is
        // not reported as a second error).
        var declared = Set(intervals.keys)
        for item in top["time_intervals"]?.0.elements ?? [] { if let s = item["name"]?.stringValue { declared.insert(s) } }
        var root: Route?
        if let (n, p) = r.require(top, "route", parent: doc, pointer: "", what: "notification policy", hint: "the root of the routing tree, with at least a receiver") {
            root = decodeRoute(n, p, path: "root", parent: nil, intervals: declared, receivers: receivers, &r)
        }
        var inhibit: [InhibitRule] = []
        if let (n, p) = top["inhibit_rules"] {
            if let items = n.elements {
                for (i, item) in items.enumerated() {
                    let ip = p + "/\(i)"
                    guard let f = r.object(item, ip, allowed: ["source_matchers", "target_matchers", "equal"], what: "inhibit rule") else { continue }
                    let src = f["source_matchers"].flatMap { matchers($0.0, $0.1, &r) }
                    let tgt = f["target_matchers"].flatMap { matchers($0.0, $0.1, &r) }
                    if f["source_matchers"] == nil || f["target_matchers"] == nil {
                        r.fail(item, ip, "an inhibit rule needs source_matchers and target_matchers (each a non-empty list such as ['rule=\"sensor-silent\"'])", code: .missingField)
                        continue
                    }
                    var equal: [String] = []
                    if let (en, ep) = f["equal"], let names = r.stringList(en, ep, what: "equal") {
                        for (k, nm) in names.enumerated() where !AlertLabels.isValidName(nm) {
                            r.fail(en.elements?[k] ?? en, ep + (en.elements == nil ? "" : "/\(k)"), "\"\(nm)\" is not a label name")
                        }
                        equal = names
                    }
                    if let src, let tgt { inhibit.append(InhibitRule(source: src, target: tgt, equal: equal)) }
                }
            } else {
                r.fail(n, p, "inhibit_rules must be a list, found \(n.typeName)")
            }
        }
        guard r.errors.isEmpty, let root else { return .failure(TriplineErrors(r.errors)) }
        return .success(NotificationPolicy(root: root, inhibitRules: inhibit, timeIntervals: intervals))
    }

    static let routeFields = ["receiver", "matchers", "continue", "group_by", "group_wait", "group_interval", "repeat_interval",
                              "send_resolved", "mute_time_intervals", "active_time_intervals", "routes"]

    static func matchers(_ n: DocNode, _ p: String, _ r: inout DocReader) -> [Matcher]? {
        guard let items = r.stringList(n, p, what: "matchers") else { return nil }
        var out: [Matcher] = []
        var ok = true
        for (i, s) in items.enumerated() {
            switch Matcher.parse(s) {
            case .success(let m): out.append(m)
            case .failure(let e):
                r.fail(n.elements?[i] ?? n, n.elements == nil ? p : p + "/\(i)", e.description)
                ok = false
            }
        }
        return ok ? out : nil
    }

    static func decodeRoute(_ n: DocNode, _ p: String, path: String, parent: Route?, intervals: Set<String>,
                            receivers: Set<String>?, _ r: inout DocReader) -> Route? {
        guard let f = r.object(n, p, allowed: routeFields, what: parent == nil ? "root route" : "route") else { return nil }
        let before = r.errors.count
        var route = Route(path: path, pointer: p, receiver: parent?.receiver ?? "", matchers: [], continue: false,
                          groupBy: parent.map { $0.groupBy } ?? [], groupWait: parent?.groupWait ?? NotificationPolicy.defaultGroupWait,
                          groupInterval: parent?.groupInterval ?? NotificationPolicy.defaultGroupInterval,
                          repeatInterval: parent?.repeatInterval ?? NotificationPolicy.defaultRepeatInterval,
                          sendResolved: parent?.sendResolved ?? true, mute: [], active: [], children: [])
        if let (rn, rp) = f["receiver"], let s = r.string(rn, rp, what: "receiver") {
            if let receivers, !receivers.contains(s) {
                var msg = "receiver \"\(s)\" does not exist"
                if let near = DocReader.closest(s, Array(receivers)) { msg += " (did you mean \"\(near)\"?)" }
                msg += receivers.isEmpty ? "; create one first (POST /v1/webhooks)" : "; known receivers: \(receivers.sorted().joined(separator: ", "))"
                r.fail(rn, rp, msg)
            }
            route.receiver = s
        } else if parent == nil, f["receiver"] == nil {
            r.fail(n, p, "the root route needs a \"receiver\": every alert that no other route takes goes there", code: .missingField)
        }
        if let (mn, mp) = f["matchers"] {
            if parent == nil {
                r.fail(mn, mp, "the root route takes every alert and has no matchers; put matchers on routes under it")
            } else if let ms = matchers(mn, mp, &r) {
                route.matchers = ms
            }
        }
        if let (cn, cp) = f["continue"] {
            if case .bool(let b) = cn.value {
                if parent == nil && b { r.fail(cn, cp, "the root route cannot continue: it has no siblings") }
                route.continue = b
            } else {
                r.fail(cn, cp, "continue must be true or false, found \(cn.typeName)")
            }
        }
        if let (sn, sp) = f["send_resolved"] {
            if case .bool(let b) = sn.value { route.sendResolved = b } else { r.fail(sn, sp, "send_resolved must be true or false, found \(sn.typeName)") }
        }
        if let (gn, gp) = f["group_by"] {
            if let items = gn.elements, items.isEmpty {
                route.groupBy = []
            } else if let names = r.stringList(gn, gp, what: "group_by") {
                if names.contains("...") {
                    if names.count > 1 { r.fail(gn, gp, "group_by: \"...\" (every label) stands alone") }
                    route.groupBy = nil
                } else {
                    for (k, nm) in names.enumerated() where !AlertLabels.isValidName(nm) {
                        r.fail(gn.elements?[k] ?? gn, gn.elements == nil ? gp : gp + "/\(k)", "group_by: \"\(nm)\" is not a label name (built in: \(AlertLabels.builtIn.joined(separator: ", ")), or a rule label)")
                    }
                    route.groupBy = Array(Set(names)).sorted()
                }
            }
        }
        if let (dn, dp) = f["group_wait"] { route.groupWait = r.duration(dn, dp, what: "group_wait", allowZero: true) ?? route.groupWait }
        if let (dn, dp) = f["group_interval"] { route.groupInterval = r.duration(dn, dp, what: "group_interval") ?? route.groupInterval }
        if let (dn, dp) = f["repeat_interval"] { route.repeatInterval = r.duration(dn, dp, what: "repeat_interval") ?? route.repeatInterval }
        for (key, isMute) in [("mute_time_intervals", true), ("active_time_intervals", false)] {
            guard let (tn, tp) = f[key], let names = r.stringList(tn, tp, what: key) else { continue }
            for (k, nm) in names.enumerated() where !intervals.contains(nm) {
                var msg = "\(key): no time interval is named \"\(nm)\""
                if let near = DocReader.closest(nm, Array(intervals)) { msg += " (did you mean \"\(near)\"?)" }
                msg += intervals.isEmpty ? "; define it under time_intervals" : "; defined: \(intervals.sorted().joined(separator: ", "))"
                r.fail(tn.elements?[k] ?? tn, tn.elements == nil ? tp : tp + "/\(k)", msg)
            }
            if isMute { route.mute = names } else { route.active = names }
        }
        if let (cn, cp) = f["routes"] {
            if let items = cn.elements {
                for (i, item) in items.enumerated() {
                    if let c = decodeRoute(item, cp + "/\(i)", path: path + ".\(i)", parent: route, intervals: intervals, receivers: receivers, &r) {
                        route.children.append(c)
                    }
                }
            } else {
                r.fail(cn, cp, "routes must be a list of routes, found \(cn.typeName)")
            }
        }
        return r.errors.count == before ? route : nil
    }
}
