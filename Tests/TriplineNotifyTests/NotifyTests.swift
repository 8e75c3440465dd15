import Foundation
import Testing
import TriplineCore
import TriplineYAML
@testable import TriplineNotify

func policy(_ yaml: String, receivers: Set<String>? = nil) throws -> NotificationPolicy {
    switch YAMLDocument.parse(yaml, file: "policy.yaml") {
    case .failure(let e): throw e
    case .success(let doc):
        switch NotificationPolicy.decode(doc, file: "policy.yaml", receivers: receivers) {
        case .failure(let e): throw e
        case .success(let p): return p
        }
    }
}

func policyErrors(_ yaml: String, receivers: Set<String>? = nil) -> [String] {
    switch YAMLDocument.parse(yaml, file: "policy.yaml") {
    case .failure(let e): return e.errors.map(\.description)
    case .success(let doc):
        switch NotificationPolicy.decode(doc, file: "policy.yaml", receivers: receivers) {
        case .failure(let e): return e.errors.map(\.description)
        case .success: return []
        }
    }
}

let t0 = NotifyScenario.defaultStart

func alert(_ id: Int64, _ rule: String, entity: String? = nil, zone: String? = nil, firing: Bool = true, kind: String = "threshold",
           severity: String = "medium", extra: LabelSet = [:]) -> NotifyAlert {
    var l: LabelSet = ["rule": rule, "kind": kind, "severity": severity]
    if let entity { l["entity"] = entity }
    if let zone { l["zone"] = zone }
    l.merge(extra) { a, _ in a }
    return NotifyAlert(id: id, fingerprint: NotifyScenario.fingerprint(l), firing: firing, instant: NotifyScenario.instantKinds.contains(kind),
                       time: t0, labels: l)
}

@Suite struct MatcherTests {
    @Test func parsesAlertmanagerSyntax() throws {
        let cases: [(String, String, Matcher.Op, String)] = [
            ("severity=\"critical\"", "severity", .equal, "critical"),
            ("rule=~\"exit|speed\"", "rule", .regex, "exit|speed"),
            ("team != \"marine\"", "team", .notEqual, "marine"),
            ("zone!~depot-.*", "zone", .notRegex, "depot-.*"),
            ("site=rotterdam", "site", .equal, "rotterdam"),
            ("note=\"a \\\"quoted\\\" word\"", "note", .equal, "a \"quoted\" word"),
        ]
        for (text, name, op, value) in cases {
            let m = try Matcher.parse(text).get()
            #expect(m.name == name && m.op == op && m.value == value, "\(text)")
        }
    }

    @Test func matchesWholeValuesAndMissingLabelsAsEmpty() throws {
        let re = try Matcher.parse("rule=~\"exit|speed\"").get()
        #expect(re.matches(["rule": "exit"]))
        #expect(re.matches(["rule": "speed"]))
        #expect(!re.matches(["rule": "exit-depot"]))   // anchored: not a substring match
        #expect(!re.matches(["rule": "fast-speed"]))
        let noZone = try Matcher.parse("zone=\"\"").get()
        #expect(noZone.matches(["rule": "x"]))
        #expect(!noZone.matches(["zone": "z1"]))
        let hasZone = try Matcher.parse("zone!=\"\"").get()
        #expect(hasZone.matches(["zone": "z1"]))
        let notDepot = try Matcher.parse("zone!~\"depot-.*\"").get()
        #expect(!notDepot.matches(["zone": "depot-1"]))
    }

    @Test func refusesBadMatchersWithAReason() {
        for (text, fragment) in [("=x", "label name"), ("rule", "one of =, !=, =~, !~"), ("rule=~\"(\"", "not a valid regular expression"),
                                 ("rule=\"open", "not closed"), ("rule=\"a\" x", "unexpected text")] {
            guard case .failure(let e) = Matcher.parse(text) else {
                Issue.record("\(text) parsed")
                continue
            }
            #expect(e.description.contains(fragment), "\(text): \(e.description)")
        }
    }
}

@Suite struct PolicyTests {
    @Test func errorsNameTheLineAndPointerAndAllAreReported() {
        let errs = policyErrors("""
        route:
          receiver: ops
          group_wiat: 30s
          routes:
            - matchers: ['rule=~"("']
              receiver: pagr
            - receiver: ops
              group_interval: 0s
              mute_time_intervals: [nigths]
        inhibit_rules:
          - source_matchers: ['rule="a"']
        time_intervals:
          - name: nights
            time_intervals:
              - times: [{start_time: "22:00", end_time: "21:00"}]
                weekdays: ['friday:monday']
                location: Mars/Olympus
        """, receivers: ["ops", "pager"])
        let expected = [
            "policy.yaml:3:15 at /route/group_wiat: unknown field \"group_wiat\" in root route (did you mean \"group_wait\"?)",
            "policy.yaml:5:18 at /route/routes/0/matchers/0: \"rule=~\"(\"\": \"(\" is not a valid regular expression",
            "policy.yaml:6:17 at /route/routes/0/receiver: receiver \"pagr\" does not exist (did you mean \"pager\"?)",
            "policy.yaml:8:23 at /route/routes/1/group_interval: group_interval must be greater than zero",
            "policy.yaml:9:29 at /route/routes/1/mute_time_intervals/0: mute_time_intervals: no time interval is named \"nigths\" (did you mean \"nights\"?)",
            "policy.yaml:11:5 at /inhibit_rules/0: an inhibit rule needs source_matchers and target_matchers",
            "policy.yaml:15:49 at /time_intervals/0/time_intervals/0/times/0/end_time: end_time must be after start_time",
            "policy.yaml:16:20 at /time_intervals/0/time_intervals/0/weekdays/0: weekdays item \"friday:monday\" is not a value or a range",
            "policy.yaml:17:19 at /time_intervals/0/time_intervals/0/location: location \"Mars/Olympus\" is not an IANA time zone",
        ]
        #expect(errs.count == expected.count, "\(errs.joined(separator: "\n"))")
        for e in expected {
            #expect(errs.contains { $0.hasPrefix(e) || $0.contains(e) }, "missing: \(e)\nin:\n\(errs.joined(separator: "\n"))")
        }
    }

    @Test func rootRules() {
        #expect(policyErrors("route: {group_wait: 1s}").first?.contains("the root route needs a \"receiver\"") == true)
        #expect(policyErrors("route: {receiver: a, matchers: ['x=\"y\"']}").first?.contains("the root route takes every alert and has no matchers") == true)
        #expect(policyErrors("route: {receiver: a, continue: true}").first?.contains("cannot continue") == true)
        #expect(policyErrors("routes: []").contains { $0.contains("unknown field \"routes\"") })
    }

    @Test func childrenInheritButNotTheirIntervals() throws {
        let p = try policy("""
        time_intervals: [{name: n, time_intervals: [{weekdays: [saturday]}]}]
        route:
          receiver: a
          group_by: [zone]
          group_wait: 10s
          repeat_interval: 1h
          mute_time_intervals: [n]
          routes:
            - matchers: [team=x]
              group_interval: 1m
              routes:
                - {matchers: [site=y], receiver: b, group_by: ['...']}
        """)
        let child = p.root.children[0], grand = child.children[0]
        #expect(child.receiver == "a" && child.groupBy == ["zone"] && child.groupWait == 10_000 && child.groupInterval == 60_000 && child.repeatInterval == 3_600_000)
        #expect(child.mute.isEmpty && p.root.mute == ["n"])
        #expect(grand.receiver == "b" && grand.groupBy == nil && grand.groupInterval == 60_000 && grand.path == "root.0.0")
    }

    /// The routing tree against a literal reading of Alertmanager's documented walk, over
    /// every combination of the labels the tree tests.
    @Test func routingTreeAgreesWithAReferenceWalkOnEveryLabelCombination() throws {
        let p = try policy("""
        route:
          receiver: root
          routes:
            - matchers: ['severity=~"high|critical"']
              receiver: pager
              continue: true
              routes:
                - {matchers: [team=marine], receiver: marine-pager}
                - {matchers: ['zone=~"port-.*"'], receiver: port-pager, continue: true}
                - {matchers: ['zone!=""'], receiver: zone-pager}
            - matchers: [team=fleet]
              receiver: fleet
              routes:
                - {matchers: [kind=enter], receiver: fleet-enter, continue: true}
                - {matchers: ['kind=~"enter|exit"'], receiver: fleet-moves}
            - matchers: [team=fleet]
              receiver: fleet-again
        """)
        // Reference: Alertmanager's doc, "the alert enters the tree at the root; it is matched
        // against each child in order; if continue is false it stops after the first matching
        // child; if no child matches, the current node takes it".
        func reference(_ node: Route, _ labels: LabelSet) -> [String]? {
            for m in node.matchers where !m.matches(labels) { return nil }
            var taken: [String] = []
            var any = false
            for c in node.children {
                guard let r = reference(c, labels) else { continue }
                any = true
                taken += r
                if !c.continue { break }
            }
            return any ? taken : [node.receiver]
        }
        var checked = 0
        for sev in ["low", "high", "critical"] {
            for team in [nil, "marine", "fleet"] {
                for zone in [nil, "port-1", "depot-1"] {
                    for kind in ["enter", "exit", "threshold"] {
                        var l: LabelSet = ["severity": sev, "kind": kind, "rule": "r"]
                        l["team"] = team
                        l["zone"] = zone
                        #expect(p.routes(for: l).map(\.receiver) == reference(p.root, l)!, "\(l)")
                        checked += 1
                    }
                }
            }
        }
        #expect(checked == 81)
        // Spot checks written out by hand.
        #expect(p.routes(for: ["severity": "critical", "zone": "port-1", "kind": "x"]).map(\.receiver) == ["port-pager", "zone-pager"])
        #expect(p.routes(for: ["severity": "high", "team": "fleet", "kind": "enter"]).map(\.receiver) == ["pager", "fleet-enter", "fleet-moves"])
        #expect(p.routes(for: ["severity": "low", "team": "fleet", "kind": "threshold"]).map(\.receiver) == ["fleet"])
        #expect(p.routes(for: ["severity": "low"]).map(\.receiver) == ["root"])
    }
}

@Suite struct TimeIntervalTests {
    func range(_ yaml: String) throws -> NamedTimeInterval {
        try policy("time_intervals: [{name: t, time_intervals: [\(yaml)]}]\nroute: {receiver: a}").timeIntervals["t"]!
    }
    func at(_ s: String) -> Millis { try! EventTime.parseRFC3339(s).get() }

    @Test func localTimesFollowDaylightSavingTime() throws {
        let early = try range("{times: [{start_time: '00:00', end_time: '06:00'}], location: Europe/Amsterdam}")
        // Winter (UTC+1): 05:59 local is 04:59Z.
        #expect(early.contains(at("2026-03-02T04:59:00Z")))
        #expect(!early.contains(at("2026-03-02T05:00:00Z")))
        // 2026-03-29 is the change to UTC+2: 05:59 local is 03:59Z.
        #expect(early.contains(at("2026-03-29T03:59:00Z")))
        #expect(!early.contains(at("2026-03-29T04:00:00Z")))
        // The start is inclusive, the end exclusive; 24:00 ends the day.
        let late = try range("{times: [{start_time: '22:00', end_time: '24:00'}]}")
        #expect(late.contains(at("2026-03-02T22:00:00Z")) && late.contains(at("2026-03-02T23:59:59Z")))
        #expect(!late.contains(at("2026-03-02T21:59:59Z")) && !late.contains(at("2026-03-03T00:00:00Z")))
    }

    @Test func weekdaysDaysMonthsAndYears() throws {
        let wk = try range("{weekdays: ['monday:friday'], location: America/Chicago}")
        // 2026-03-07 is a Saturday; 03:00Z on Saturday is still Friday 21:00 in Chicago.
        #expect(wk.contains(at("2026-03-07T03:00:00Z")))
        #expect(!wk.contains(at("2026-03-07T12:00:00Z")))
        let lastDays = try range("{days_of_month: ['-2:-1']}")
        #expect(lastDays.contains(at("2026-02-27T10:00:00Z")) && lastDays.contains(at("2026-02-28T10:00:00Z")))
        #expect(!lastDays.contains(at("2026-02-26T10:00:00Z")))
        #expect(lastDays.contains(at("2026-03-30T10:00:00Z")) && !lastDays.contains(at("2026-03-29T10:00:00Z")))
        let q1 = try range("{months: ['january:march'], years: ['2026']}")
        #expect(q1.contains(at("2026-02-01T00:00:00Z")) && !q1.contains(at("2026-04-01T00:00:00Z")) && !q1.contains(at("2027-02-01T00:00:00Z")))
        let numericMonths = try range("{months: ['1:3']}")
        #expect(numericMonths.contains(at("2026-03-31T23:59:59Z")) && !numericMonths.contains(at("2026-04-01T00:00:00Z")))
    }
}

@Suite struct NotifierTests {
    /// Every example of docs/notifications.md runs, and must give exactly what the page says.
    @Test func docsExamplesRun() throws {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("docs/notifications.md")
        let text = try String(contentsOf: url, encoding: .utf8)
        var blocks: [String: (policy: String?, scenario: String?)] = [:]
        let lines = text.components(separatedBy: "\n")
        var i = 0
        while i < lines.count {
            let l = lines[i]
            if l.hasPrefix("<!-- example: "), let end = l.range(of: " -->") {
                let words = l[l.index(l.startIndex, offsetBy: 14)..<end.lowerBound].split(separator: " ")
                let name = String(words[0]), part = String(words[1])
                i += 2 // the fence
                var body: [String] = []
                while i < lines.count, !lines[i].hasPrefix("```") {
                    body.append(lines[i])
                    i += 1
                }
                if part == "policy" { blocks[name, default: (nil, nil)].policy = body.joined(separator: "\n") }
                if part == "scenario" { blocks[name, default: (nil, nil)].scenario = body.joined(separator: "\n") }
            }
            i += 1
        }
        #expect(blocks.count == 4, "examples found: \(blocks.keys.sorted())")
        for (name, b) in blocks.sorted(by: { $0.key < $1.key }) {
            let p = try policy(b.policy!)
            let s = try NotifyScenario.parse(b.scenario!, file: name).get()
            #expect(!s.expected.isEmpty)
            let diff = s.check(p)
            #expect(diff.isEmpty, "example \(name):\n\(diff.joined(separator: "\n"))")
        }
    }

    @Test func aWrongExpectationIsReportedNamingTheAlert() throws {
        let p = try policy("route: {receiver: ops, group_wait: 10s}")
        let s = try NotifyScenario.parse("""
        at 0s firing overheat entity=reefer-1
        at 10s -> ops firing: overheat[reefer-2]
        """, file: "t").get()
        let diff = s.check(p)
        #expect(diff == ["line 2: expected at 10s -> ops firing: overheat[reefer-2], but it was not sent",
                         "unexpected at 10s -> ops firing: overheat[reefer-1]"])
    }

    @Test func groupWaitIntervalAndRepeatOnAnInjectedClock() throws {
        let p = try policy("route: {receiver: ops, group_by: [zone], group_wait: 30s, group_interval: 5m, repeat_interval: 1h}")
        let n = Notifier(policy: p)
        n.add(alert(1, "over", entity: "a", zone: "z"), now: t0)
        #expect(n.advance(to: t0 + 29_999).isEmpty)
        let first = n.advance(to: t0 + 30_000)
        #expect(first.count == 1 && first[0].seq == 1 && first[0].groupLabels == ["zone": "z"] && first[0].key.hasPrefix("grp-"))
        #expect(first[0].commonLabels == ["rule": "over", "kind": "threshold", "severity": "medium", "entity": "a", "zone": "z"])
        // Nothing new: the 5-minute looks send nothing until the hour has passed.
        var sent: [Millis] = []
        var t = t0 + 30_000
        while t < t0 + 2 * 3_600_000 {
            t = n.nextDue!
            for x in n.advance(to: t) { sent.append(x.at - t0) }
        }
        #expect(sent == [3_630_000, 7_230_000])
        // One flush at group_wait, then one per group_interval: 30 s + 24 x 5 min reaches 2 h.
        #expect(n.flushes == 1 + 24)
        #expect(n.state.groups.values.first!.seq == 1 + sent.count)
    }

    @Test func keysAreStablePerGroupAndFlush() throws {
        #expect(Notifier.notificationKey(group: "root:{zone=\"z\"}", life: 1, seq: 3) == Notifier.notificationKey(group: "root:{zone=\"z\"}", life: 1, seq: 3))
        #expect(Notifier.notificationKey(group: "root:{zone=\"z\"}", life: 1, seq: 3) != Notifier.notificationKey(group: "root:{zone=\"y\"}", life: 1, seq: 3))
        #expect(Notifier.notificationKey(group: "g", life: 2, seq: 1).count == "grp-".count + 16 + 4)
        // A group that ends (its instant alerts sent) and comes back is a new life: no key
        // is ever used for two different notifications, even with group_wait 0.
        let p = try policy("route: {receiver: ops, group_wait: 0s}")
        let n = Notifier(policy: p)
        var keys: [String] = []
        for i in 0..<5 {
            n.add(alert(Int64(i + 1), "x", entity: "a", kind: "exit"), now: t0)
            keys += n.advance(to: t0).map(\.key)
        }
        #expect(keys.count == 5 && Set(keys).count == 5)
    }

    @Test func silencesAreCheckedAtFlushAndTheAlertReturnsAfter() throws {
        let p = try policy("route: {receiver: ops, group_wait: 0s, group_interval: 1m}")
        var silencedUntil = t0 + 90_000
        let n = Notifier(policy: p, isSilenced: { a, now in a.labels["entity"] == "a" && now < silencedUntil })
        n.add(alert(1, "over", entity: "a"), now: t0)
        #expect(n.advance(to: t0).isEmpty)
        #expect(n.advance(to: t0 + 60_000).isEmpty)
        let after = n.advance(to: t0 + 120_000)
        #expect(after.map(NotifyScenario.describe) == ["ops firing: over[a]"])
        silencedUntil = 0
    }

    @Test func policyChangeKeepsSurvivingGroups() throws {
        let p1 = try policy("route: {receiver: ops, group_by: [zone], group_wait: 10s, group_interval: 1m}")
        let n = Notifier(policy: p1)
        n.add(alert(1, "over", entity: "a", zone: "z"), now: t0)
        #expect(n.advance(to: t0 + 10_000).count == 1)
        // The same root route and grouping, one more child: z's group survives and is not re-sent.
        let p2 = try policy("route: {receiver: ops, group_by: [zone], group_wait: 10s, group_interval: 1m, routes: [{matchers: [zone=other], receiver: x}]}")
        n.replacePolicy(p2, now: t0 + 20_000)
        #expect(n.advance(to: t0 + 70_000).isEmpty)
        #expect(n.state.groups.values.first!.seq == 1)
        // Grouping by entity instead: a new group, which notifies after its group_wait.
        let p3 = try policy("route: {receiver: ops, group_by: [entity], group_wait: 10s}")
        n.replacePolicy(p3, now: t0 + 80_000)
        #expect(n.advance(to: t0 + 90_000).map(NotifyScenario.describe) == ["ops firing: over[a z]"])
    }
}

/// Random policies and alert streams, checked against a reference picture of what fires.
@Suite struct NotifierPropertyTests {
    struct Rng: RandomNumberGenerator {
        var s: UInt64
        mutating func next() -> UInt64 {
            s = s &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            var z = s
            z = (z ^ (z >> 33)) &* 0xff51_afd7_ed55_8ccd
            return z ^ (z >> 33)
        }
    }

    static func randomPolicy(_ g: inout Rng) throws -> NotificationPolicy {
        let groupBys = ["[]", "[zone]", "[entity]", "[zone, entity]", "['...']"]
        func timers() -> String {
            "group_wait: \(["0s", "10s", "30s"].randomElement(using: &g)!), group_interval: \(["20s", "1m"].randomElement(using: &g)!), repeat_interval: \(["2m", "10m"].randomElement(using: &g)!)"
        }
        var children: [String] = []
        for i in 0..<Int.random(in: 0...3, using: &g) {
            let m = ["'severity=~\"high|critical\"'", "zone=z1", "'zone=~\"z[02]\"'", "rule=x1", "'entity!=\"e0\"'"].randomElement(using: &g)!
            children.append("{matchers: [\(m)], receiver: r\(i), group_by: \(groupBys.randomElement(using: &g)!), continue: \(Bool.random(using: &g)), \(timers())}")
        }
        return try policy("route: {receiver: root, group_by: \(groupBys.randomElement(using: &g)!), \(timers()), routes: [\(children.joined(separator: ", "))]}")
    }

    struct Input { var at: Millis; var alert: NotifyAlert }

    /// A stream where each stateful key alternates firing and resolved, and everything that
    /// fires is resolved by the end.
    static func randomStream(_ g: inout Rng, count: Int) -> [Input] {
        var out: [Input] = []
        var firing: [String: LabelSet] = [:]
        var t = t0
        var id: Int64 = 0
        for _ in 0..<count {
            t += Millis.random(in: 0...20_000, using: &g)
            id += 1
            let rule = ["t1", "t2", "x1"].randomElement(using: &g)!
            var l: LabelSet = ["rule": rule, "entity": "e\(Int.random(in: 0..<5, using: &g))", "zone": "z\(Int.random(in: 0..<3, using: &g))",
                               "severity": ["low", "high", "critical"].randomElement(using: &g)!, "kind": rule == "x1" ? "exit" : "threshold"]
            let fp = NotifyScenario.fingerprint(l)
            if rule == "x1" {
                out.append(Input(at: t, alert: NotifyAlert(id: id, fingerprint: fp, firing: true, instant: true, time: t, labels: l)))
            } else if let prev = firing[fp] {
                firing[fp] = nil
                out.append(Input(at: t, alert: NotifyAlert(id: id, fingerprint: fp, firing: false, instant: false, time: t, labels: prev)))
            } else {
                // The severity of a key is fixed while it fires (it is the rule's).
                l["severity"] = ["t1": "high", "t2": "low"][rule]!
                firing[fp] = l
                out.append(Input(at: t, alert: NotifyAlert(id: id, fingerprint: fp, firing: true, instant: false, time: t, labels: l)))
            }
        }
        for (fp, l) in firing.sorted(by: { $0.key < $1.key }) {
            t += 1000
            id += 1
            out.append(Input(at: t, alert: NotifyAlert(id: id, fingerprint: fp, firing: false, instant: false, time: t, labels: l)))
        }
        return out
    }

    /// Drives a notifier through the stream, visiting every due time; `restart` may replace it
    /// between steps (a restart from its saved state).
    static func drive(_ p: NotificationPolicy, _ inputs: [Input], restartEvery: Int? = nil,
                      observe: (GroupNotification, Millis) -> Void = { _, _ in }, added: (Input) -> Void = { _ in },
                      afterStep: (Notifier, Millis) -> Void = { _, _ in }) throws -> [GroupNotification] {
        var n = Notifier(policy: p)
        var out: [GroupNotification] = []
        var steps = 0
        func step() throws {
            steps += 1
            if let k = restartEvery, steps % k == 0 {
                let saved = try JSONEncoder().encode(n.state)
                n = Notifier(policy: p, state: try JSONDecoder().decode(NotifierState.self, from: saved))
            }
        }
        func until(_ t: Millis) throws {
            while let d = n.nextDue, d <= t {
                for x in n.advance(to: d) {
                    observe(x, d)
                    out.append(x)
                }
                afterStep(n, d)
                try step()
            }
        }
        for i in inputs {
            try until(i.at)
            n.add(i.alert, now: i.at)
            added(i)
            afterStep(n, i.at)
            try step()
        }
        try until((inputs.last?.at ?? t0) + 86_400_000)
        return out
    }

    @Test(arguments: 0..<40) func notificationsCarryTheFiringPictureAndKeepTheirTimers(seed: Int) throws {
        var g = Rng(s: UInt64(seed) &* 7919 &+ 17)
        let p = try Self.randomPolicy(&g)
        let inputs = Self.randomStream(&g, count: 150)
        let routes = Dictionary(uniqueKeysWithValues: p.allRoutes.map { ($0.path, $0) })
        var current: [String: LabelSet] = [:]       // stateful alerts firing now
        var groupBorn: [String: Millis] = [:]        // first alert of a group's current life
        var lastSent: [String: Millis] = [:]
        var instantsSeen: [String: Int] = [:]        // "<route>|<fp>#<id>" -> times listed
        var problems: [String] = []
        let sent = try Self.drive(p, inputs, observe: { n, at in
            let r = routes[n.route]!
            // 1. Every alert listed belongs to the route and to the group.
            for a in n.firing + n.resolved {
                if !p.routes(for: a.labels).contains(where: { $0.path == r.path }) { problems.append("\(a.fingerprint) not routed to \(r.path)") }
                if Notifier.groupKey(r, a.labels).1 != n.groupLabels { problems.append("\(a.fingerprint) not in group \(n.groupLabels)") }
                if a.instant { instantsSeen["\(r.path)|\(a.fingerprint)#\(a.id)", default: 0] += 1 }
            }
            // 2. Full state: the stateful firing alerts listed are exactly those firing in the group.
            let expected = Set(current.filter { fp, l in
                p.routes(for: l).contains { $0.path == r.path } && Notifier.groupKey(r, l).0 == n.group
            }.keys)
            let listed = Set(n.firing.filter { !$0.instant }.map(\.fingerprint))
            if listed != expected { problems.append("at \(at - t0): \(n.group) lists \(listed.sorted()) but \(expected.sorted()) fire") }
            // 3. Timers: group_wait after the group's birth, group_interval between sends.
            if let prev = lastSent[n.group] {
                if at - prev < r.groupInterval { problems.append("\(n.group) sent \(at - prev) ms after its last send") }
            } else if let born = groupBorn[n.group], at - born < r.groupWait {
                problems.append("\(n.group) first sent \(at - born) ms after its first alert")
            }
            lastSent[n.group] = at
        }, added: { i in
            if !i.alert.instant { current[i.alert.fingerprint] = i.alert.firing ? i.alert.labels : nil }
        }, afterStep: { n, now in
            // A group lives from its first alert until a flush leaves it with nothing firing;
            // the timers hold within one life.
            for key in n.state.groups.keys where groupBorn[key] == nil { groupBorn[key] = now }
            for key in Array(groupBorn.keys) where n.state.groups[key] == nil {
                let r = routes[String(key[..<key.firstIndex(of: ":")!])]!
                if current.values.contains(where: { l in p.routes(for: l).contains { $0.path == r.path } && Notifier.groupKey(r, l).0 == key }) {
                    problems.append("\(key) ended at \(now - t0) while an alert of it fires")
                }
                groupBorn[key] = nil
                lastSent[key] = nil
            }
        })
        #expect(problems.isEmpty, "seed \(seed): \(problems.prefix(5).joined(separator: "\n"))")
        // 4. Each instant alert is listed exactly once on each route it reaches.
        for i in inputs where i.alert.instant {
            for r in p.routes(for: i.alert.labels) {
                #expect(instantsSeen["\(r.path)|\(i.alert.fingerprint)#\(i.alert.id)"] == 1, "seed \(seed): \(i.alert.fingerprint)#\(i.alert.id) on \(r.path)")
            }
        }
        // 5. Everything resolved in the end: each group's last notification lists no firing
        //    stateful alert, so no receiver is left believing something fires.
        var last: [String: GroupNotification] = [:]
        for n in sent { last[n.group] = n }
        for (k, n) in last { #expect(!n.firing.contains { !$0.instant }, "seed \(seed): \(k) ends with \(n.firing.map(\.fingerprint))") }
        #expect(!sent.isEmpty)
    }

    @Test(arguments: 0..<10) func aRestartFromSavedStateChangesNothing(seed: Int) throws {
        var g = Rng(s: UInt64(seed) &+ 1000)
        let p = try Self.randomPolicy(&g)
        let inputs = Self.randomStream(&g, count: 120)
        let straight = try Self.drive(p, inputs)
        let restarted = try Self.drive(p, inputs, restartEvery: 3)
        #expect(straight == restarted)
        #expect(straight.count > 0)
    }
}
