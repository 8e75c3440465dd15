import Foundation
import Testing
import TriplineTesting
import TriplineYAML
@testable import TriplineCore

/// Spec 1.3 (section 5b): `by` groups, the `aggregate` kind and negated sequence steps, on
/// hand-derived cases; the random differential tests (AllKindsDifferentialTests) mix them
/// with every other kind against the naive reference.
@Suite struct RulesV13Tests {
    static let depot = Zone(id: "dep", category: "depot", shape: .circle(lon: 0, lat: 0, radiusM: 1000))

    func rules(_ body: String) -> [Rule] {
        try! RuleFile.decode("rules:\n" + body, file: "r.yaml").get()
    }

    func run(_ body: String, _ events: [String], until: Millis? = nil) -> [[String: Any]] {
        replay(zones: [Self.depot], rules: rules(body), lines: events, until: until).alerts.map {
            try! JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any]
        }
    }

    static let h: Millis = 3_600_000

    @Test(arguments: [(7.0, "7"), (-0.0, "0"), (0.5, "0.5"), (1e-7, "1e-7"), (1.5e-7, "1.5e-7"), (0.000001, "0.000001"), (1e21, "1e+21"),
                      (1e20, "100000000000000000000"), (123.456, "123.456"), (-2.5, "-2.5"), (9007199254740992, "9007199254740992"),
                      (1.7976931348623157e308, "1.7976931348623157e+308"), (5e-324, "5e-324"), (0.1 + 0.2, "0.30000000000000004"),
                      (1234567890123456789012.0, "1.2345678901234568e+21"), (123456789012345680000.0, "123456789012345680000")] as [(Double, String)])
    func numbersAreWrittenAsECMAScriptWritesThem(value: Double, text: String) {
        #expect(JSONText.ecmaScript(value) == text)
    }

    @Test func perCounterpartCountsEachPayeeOnItsOwn() {
        let body = "  - {id: structuring, kind: frequency, purpose: p, owner: o, severity: high, match: {}, count: 3, window: 1h, event: {type: contact}, by: counterpart}\n"
        var ev: [String] = []
        // Two payments to p1, two to p2, then a third to p1: only p1 reaches 3.
        for (i, c) in ["p1", "p2", "p1", "p2", "p1"].enumerated() {
            ev.append(#"{"entity":"acct","time":\#(1000 + i * 60_000),"type":"contact","counterpart":"\#(c)","id":"x\#(i)"}"#)
        }
        let out = run(body, ev, until: 3 * Self.h)
        #expect(out.count == 2)
        #expect((out[0]["key"] as! [String: String]) == ["entity": "acct", "group": "p1"])
        #expect(out[0]["state"] as! String == "firing" && out[0]["evidence"] as! [String] == ["x0", "x2", "x4"])
        // The first p1 payment leaves the window one hour after it: the group resolves then.
        #expect(out[1]["state"] as! String == "resolved" && out[1]["time"] as! String == EventTime.format(1000 + Self.h))
    }

    @Test func groupsOfOneTimeAreInCodePointOrderAfterTheEntity() {
        let body = "  - {id: per-driver, kind: frequency, purpose: p, owner: o, severity: low, match: {}, count: 1, window: 1m, event: {type: shift}, by: {attr: driver}}\n"
        // "7", 7 and 7.0 are one group; "Z" sorts before "a" (code points); true is "true".
        let ev = [#"{"entity":"t","time":1000,"type":"shift","attrs":{"driver":"a"}}"#,
                  #"{"entity":"t","time":1000,"type":"shift","attrs":{"driver":7.0}}"#,
                  #"{"entity":"t","time":1000,"type":"shift","attrs":{"driver":"Z"}}"#,
                  #"{"entity":"t","time":1000,"type":"shift","attrs":{"driver":"7"}}"#,
                  #"{"entity":"t","time":1000,"type":"shift","attrs":{"driver":true}}"#,
                  #"{"entity":"t","time":1000,"type":"shift"}"#]
        let firing = run(body, ev).filter { $0["state"] as! String == "firing" }
        #expect(firing.map { ($0["key"] as! [String: String])["group"]! } == ["7", "Z", "a", "true"])
    }

    @Test func aDaysSumFiresAndResolvesAtTheExactWindowEdges() {
        let body = "  - {id: aml, kind: aggregate, purpose: p, owner: o, severity: high, match: {}, fn: sum, of: {attr: amount}, window: 24h, event: {type: payment}, above: 10000}\n"
        let ev = [#"{"entity":"acct","time":0,"type":"payment","attrs":{"amount":6000},"id":"a"}"#,
                  #"{"entity":"acct","time":3600000,"type":"payment","attrs":{"amount":"n/a"},"id":"b"}"#,
                  #"{"entity":"acct","time":3600000,"type":"payment","attrs":{"amount":5000.5},"id":"c"}"#]
        let out = run(body, ev, until: 30 * Self.h)
        #expect(out.count == 2)
        #expect(out[0]["state"] as! String == "firing" && out[0]["time"] as! String == EventTime.format(Self.h))
        #expect(out[0]["evidence"] as! [String] == ["a", "c"])
        #expect((out[0]["details"] as! [String: Double]) == ["value": 11000.5, "count": 2])
        // Payment a leaves at exactly 0 + 24 h.
        #expect(out[1]["state"] as! String == "resolved" && out[1]["time"] as! String == EventTime.format(24 * Self.h))
        #expect((out[1]["details"] as! [String: Double]) == ["value": 5000.5, "count": 1])
    }

    @Test func anEmptyWindowHasNoAggregateAndSatisfiesNoCondition() {
        let body = "  - {id: cold, kind: aggregate, purpose: p, owner: o, severity: low, match: {}, fn: mean, of: value, window: 30m, event: {type: reading, metric: temp_c}, below: 2}\n"
        let ev = [#"{"entity":"fridge","time":0,"type":"reading","metric":"temp_c","value":1}"#]
        let out = run(body, ev, until: 2 * Self.h)
        #expect(out.count == 2)
        #expect(out[1]["state"] as! String == "resolved" && out[1]["time"] as! String == EventTime.format(30 * 60_000))
        let d = out[1]["details"] as! [String: Any]
        #expect(d["value"] is NSNull && d["count"] as! Double == 0)
    }

    @Test func minAndMaxFollowTheWindow() {
        let body = """
          - {id: peak, kind: aggregate, purpose: p, owner: o, severity: low, match: {}, fn: max, of: value, window: 10s, event: {type: reading}, above: 8}
          - {id: trough, kind: aggregate, purpose: p, owner: o, severity: low, match: {}, fn: min, of: value, window: 10s, event: {type: reading}, below: 2}

        """
        let vals: [(Millis, Double)] = [(0, 9), (1000, 1), (2000, 5), (12_000, 5)]
        let ev = vals.map { #"{"entity":"m","time":\#($0.0),"type":"reading","metric":"x","value":\#($0.1)}"# }
        let out = run(body, ev)
        let summary = out.map { "\($0["rule"]!) \($0["state"]!) \($0["time"]!)" }
        #expect(summary == ["peak firing \(EventTime.format(0))", "trough firing \(EventTime.format(1000))",
                            "peak resolved \(EventTime.format(10_000))", "trough resolved \(EventTime.format(11_000))"])
    }

    static let unloaded = "  - {id: unloaded, kind: sequence, purpose: p, owner: o, severity: high, match: {}, steps: [{enter: {category: depot}}, {absent: {event: {type: unload}}, for: 2h}]}\n"

    @Test func theDeadlineWinsOverAForbiddenEventOfTheSameMillisecond() {
        let enter = #"{"entity":"truck","time":0,"type":"position","lon":0,"lat":0,"id":"in"}"#
        let atDeadline = run(Self.unloaded, [enter, #"{"entity":"truck","time":7200000,"type":"unload"}"#])
        #expect(atDeadline.count == 1)
        #expect(atDeadline.first?["time"] as? String == EventTime.format(2 * Self.h))
        #expect(atDeadline.first?["evidence"] as? [String] == ["in"])
        #expect((atDeadline.first?["details"] as? [String: Double]) == ["span_s": 7200])
        let before = run(Self.unloaded, [enter, #"{"entity":"truck","time":7199999,"type":"unload"}"#], until: 10 * Self.h)
        #expect(before.isEmpty)
    }

    @Test func theFirstPendingMatchFiresAndClearsTheOthers() {
        // Two entries to the depot; the first reaches its deadline and clears the second.
        let ev = [#"{"entity":"truck","time":0,"type":"position","lon":0,"lat":0,"id":"in1"}"#,
                  #"{"entity":"truck","time":60000,"type":"position","lon":1,"lat":1,"id":"out"}"#,
                  #"{"entity":"truck","time":120000,"type":"position","lon":0,"lat":0,"id":"in2"}"#]
        let out = run(Self.unloaded, ev, until: 10 * Self.h)
        #expect(out.count == 1)
        #expect(out.first?["evidence"] as? [String] == ["in1"])
        // An unload after both entries cancels both.
        let cancelled = run(Self.unloaded, ev + [#"{"entity":"truck","time":180000,"type":"unload"}"#], until: 10 * Self.h)
        #expect(cancelled.isEmpty)
        // An unload between them cancels only the first.
        let second = run(Self.unloaded, [ev[0], ev[1], #"{"entity":"truck","time":90000,"type":"unload"}"#, ev[2]], until: 10 * Self.h)
        #expect(second.map { $0["evidence"] as! [String] } == [["in2"]])
        #expect(second.first?["time"] as? String == EventTime.format(120_000 + 2 * Self.h))
    }

    @Test func aForbiddenEventBetweenStepsDropsThePartialMatch() {
        let body = "  - {id: reset-no-login, kind: sequence, purpose: p, owner: o, severity: low, match: {}, within: 10m, steps: [{event: {type: reset}}, {absent: {event: {type: login}}}, {event: {type: payment}}]}\n"
        func ev(_ types: [String]) -> [String] {
            types.enumerated().map { #"{"entity":"a","time":\#(1000 * ($0.offset + 1)),"type":"\#($0.element)","id":"\#($0.element)\#($0.offset)"}"# }
        }
        #expect(run(body, ev(["reset", "login", "payment"])).isEmpty)
        #expect(run(body, ev(["reset", "payment"])).map { $0["evidence"] as! [String] } == [["reset0", "payment1"]])
        // The first reset's chain is dropped by the login; the second reset starts a clean one.
        #expect(run(body, ev(["reset", "login", "reset", "payment"])).map { $0["evidence"] as! [String] } == [["reset2", "payment3"]])
        // The payment ends the first chain... and the login after it does not undo that.
        #expect(run(body, ev(["reset", "payment", "login"])).count == 1)
    }

    @Test func theRunningSumStaysWithinOneBillionthOfTheExactSum() {
        // Values of very different sizes entering and leaving a window: the compensated running
        // sum against an exact decimal sum of what the window holds.
        var rng = SplitMix64(seed: 42)
        var tr = AggregateEvaluator.Track()
        var t: Millis = 0
        var worst = 0.0
        for i in 0..<20_000 {
            t += Millis(rng.next() % 1000)
            let magnitude = [1e12, 1e6, 1, 1e-3][Int(rng.next() % 4)]
            let v = Double(Int64(rng.next() % 2_000_001) - 1_000_000) / 1000 * magnitude
            tr.append(.init(time: t, ref: EventRef(raw: UInt64(i)), number: v, text: -1), sum: true, min: false, max: false, distinct: false)
            _ = tr.expire(window: 30_000, now: t, sum: true, min: false, max: false, distinct: false)
            var exact = Decimal(0)
            for k in tr.head..<tr.entries.count { exact += Decimal(tr.entries[k].number) }
            let got = tr.sum + tr.compensation
            let e = NSDecimalNumber(decimal: exact).doubleValue
            let scale = tr.entries[tr.head...].map { abs($0.number) }.max()!
            worst = max(worst, abs(got - e) / max(abs(e), scale * 1e-6))
        }
        #expect(worst < 1e-9, "worst relative error \(worst)")
    }

    @Test func newKindsEncodeAndDecodeToTheSameRules() throws {
        let rules = AllKindsDifferentialTests.rules
        let back = try RuleCodec.decodeJSON(RuleEncoder.file(rules), file: "enc.json").get()
        #expect(back.count == rules.count)
        for (a, var b) in zip(rules, back) {
            b.line = a.line
            #expect(a == b, "\(a.id)")
        }
        #expect(rules.contains { $0.kind == .aggregate })
    }
}

/// Every misuse section 5b names, as a user meets it: the pointer and the message.
@Suite struct RulesV13ErrorTests {
    let header = "rules:\n  - id: r1\n    purpose: test\n    owner: me\n    severity: low\n    match: {}\n"

    func errors(_ body: String) -> [TriplineError] {
        switch RuleFile.decode(header + body, file: "rules.yaml") {
        case .success: return []
        case .failure(let e): return e.errors
        }
    }

    @Test(arguments: [
        ("    kind: threshold\n    metric: m\n    above: 5\n    by: counterpart\n", "/rules/0/by", "\"by\" groups only frequency and aggregate rules"),
        ("    kind: sequence\n    within: 1h\n    steps: [{absent: {event: {type: a}}}, {event: {type: b}}]\n", "/rules/0/steps/0", "cannot begin with an absent step"),
        ("    kind: sequence\n    steps: [{event: {type: a}}, {absent: {event: {type: b}}}]\n", "/rules/0/steps/1", "a trailing absent step needs \"for\""),
        ("    kind: aggregate\n    fn: sum\n    of: {attr: religion}\n    window: 1h\n    event: {type: payment}\n    above: 5\n", "/rules/0/of/attr", "sensitive attribute \"religion\""),
        ("    kind: frequency\n    count: 2\n    window: 1h\n    event: {type: payment}\n    by: {attr: health}\n", "/rules/0/by/attr", "sensitive attribute \"health\""),
        ("    kind: frequency\n    count: 2\n    window: 1h\n    event: {type: payment}\n    by: counterpart\n", "/rules/0/by", "the event filter selects \"payment\" events"),
        ("    kind: aggregate\n    fn: mean\n    of: counterpart\n    window: 1h\n    event: {type: contact}\n    above: 5\n", "/rules/0/of", "only fn: count_distinct"),
        ("    kind: aggregate\n    fn: median\n    of: value\n    window: 1h\n    event: {type: reading}\n    above: 5\n", "/rules/0/fn", "unknown aggregate function \"median\""),
        ("    kind: aggregate\n    fn: sum\n    of: value\n    window: 1h\n    event: {type: reading}\n", "/rules/0", "needs exactly one of \"above\" or \"below\""),
        ("    kind: aggregate\n    fn: sum\n    of: value\n    window: 1h\n    event: {type: payment}\n    above: 1\n", "/rules/0/of", "of: value reads the value of reading events"),
        ("    kind: sequence\n    within: 1h\n    steps: [{event: {type: a}}, {absent: {event: {type: b}}, for: 1h}, {event: {type: c}}]\n", "/rules/0/steps/1/for", "\"for\" belongs only on a trailing absent step"),
        ("    kind: sequence\n    steps: [{event: {type: a}}, {event: {type: b}}, {absent: {event: {type: c}}, for: 1h}]\n", "/rules/0", "missing required field \"within\""),
        ("    kind: sequence\n    within: 1h\n    steps: [{event: {type: a}}, {absent: {absent: {event: {type: c}}}, for: 1h}]\n", "/rules/0/steps/1/absent/absent", "cannot hold another absent step"),
        ("    kind: sequence\n    within: 1h\n    steps: [{event: {type: a}}, {absent: {event: {type: b}}}, {absent: {event: {type: c}}, for: 1h}]\n", "/rules/0/steps/1", "only one absent step may follow the last positive step"),
    ] as [(String, String, String)])
    func eachMisuseIsLocatedAndExplained(body: String, pointer: String, fragment: String) {
        let errs = errors(body)
        #expect(errs.contains { $0.location?.pointer == pointer && $0.message.contains(fragment) && ($0.location?.line ?? 0) > 1 },
                "\(errs.map(\.description))")
    }

    @Test func aSingleStepFollowedByAnAbsentStepNeedsNoWithin() {
        #expect(errors("    kind: sequence\n    steps: [{enter: {category: depot}}, {absent: {event: {type: unload}}, for: 2h}]\n").isEmpty)
    }
}
