import Testing
@testable import TriplineCore
import TriplineYAML

/// Spec v1.2's bounded id memory (`dedup_window`): an id accepted with event time s is
/// remembered while the watermark is at most s + window.
@Suite struct IdMemoryTests {
    let zones = [square("a", "depot", 0, 0, 10, 10)]
    let rules = [Rule(id: "in", purpose: "p", owner: "o", parameters: .enter)]

    func run(_ lines: [String], window: Millis) -> [IngestOutcome] {
        let engine = Engine(zones: zones, entities: [], rules: rules, options: EngineOptions(dedupWindow: window))
        var dec = EventDecoder(file: "test")
        return lines.enumerated().map { i, l in
            var s = l
            guard case .success(let ev) = s.withUTF8({ dec.decode($0, line: i + 1, symbols: &engine.symbols) }) else { fatalError(l) }
            let o = engine.ingest(ev)
            engine.compactIds(force: true)
            return o
        }
    }

    static func kind(_ o: IngestOutcome) -> String {
        switch o {
        case .accepted: return "accepted"
        case .duplicate: return "duplicate"
        case .late: return "late"
        }
    }

    /// For each window: a re-send inside it is a duplicate, the copy after it is late, and the
    /// id reused with a later time after it is applied again.
    @Test(arguments: [0, 1000, 86_400_000] as [Millis])
    func aResendInsideTheWindowIsADuplicateAndACopyAfterItIsLate(window: Millis) {
        let s: Millis = 1_000_000
        let outcomes = run([
            pos("t", s, 20, 20, id: "x"),
            pos("t", s, 20, 20, id: "x"),                  // watermark s: inside any window
            pos("u", s + window, 1, 1),                    // watermark s + W: still remembered
            pos("t", s, 20, 20, id: "x"),                  // duplicate (checked before lateness)
            pos("t", s + window, 20, 20, id: "x"),         // reused, later time, still inside: duplicate
            pos("u", s + window + 1, 1, 1),                // watermark past s + W: forgotten
            pos("t", s, 20, 20, id: "x"),                  // the copy: late
            pos("t", s + window + 1, 20, 20, id: "x"),     // reused with a later time: applied
            pos("t", s + window + 1, 20, 20, id: "x"),     // and now remembered again
        ], window: window)
        #expect(outcomes.map(Self.kind) == ["accepted", "duplicate", "accepted", "duplicate", "duplicate", "accepted", "late", "accepted", "duplicate"],
                "window \(window)")
    }

    /// Assigned ids follow the same window: a given id spelled like an earlier arrival's
    /// assigned id collides only while that arrival is remembered, and an arrival whose number
    /// a given id took is a duplicate only while that given id is remembered.
    @Test(arguments: [0, 1000, 86_400_000] as [Millis])
    func assignedIdsAreRememberedForTheWindowToo(window: Millis) {
        let s: Millis = 1_000_000
        var outcomes = run([
            pos("t", s, 20, 20),                           // t#1
            pos("t", s, 20, 20, id: "t#1"),                // collides with t#1
            pos("u", s + window + 1, 1, 1),                // t#1 forgotten
            pos("t", s + window + 1, 20, 20, id: "t#1"),   // no longer collides
        ], window: window)
        #expect(outcomes.map(Self.kind) == ["accepted", "duplicate", "accepted", "accepted"], "window \(window)")
        outcomes = run([
            pos("t", s, 20, 20, id: "t#3"),                // arrival 1, takes the name of arrival 3
            pos("t", s, 20, 20),                           // t#2
            pos("t", s, 20, 20),                           // t#3: duplicate of the given id
            pos("u", s + window + 1, 1, 1),
            pos("t", s + window + 1, 20, 20),              // t#4
        ], window: window)
        #expect(outcomes.map(Self.kind) == ["accepted", "accepted", "duplicate", "accepted", "accepted"], "window \(window)")
        outcomes = run([
            pos("t", s, 20, 20, id: "t#3"),
            pos("u", s + window + 1, 1, 1),                // the given t#3 is forgotten
            pos("t", s + window + 1, 20, 20),              // t#2
            pos("t", s + window + 1, 20, 20),              // t#3: no longer a duplicate
        ], window: window)
        #expect(outcomes.map(Self.kind) == ["accepted", "accepted", "accepted", "accepted"], "window \(window)")
    }

    /// Releasing the strings of ids nobody holds must never change an alert: the every-kind
    /// streams with a given id on every event, collected after every single event, give the
    /// naive reference's alerts (whose evidence names those ids). An id still held by some
    /// rule's state that were released would print as another id, or crash.
    @Test(arguments: Array(1...20) as [UInt64])
    func collectingIdsAfterEveryEventChangesNoAlert(seed: UInt64) throws {
        let rules = try RuleFile.decode(MixedStreams.rulesYAML, file: "rules.yaml").get()
        var events = MixedStreams.events(seed: seed)
        for i in events.indices { events[i].id = "g\(seed)-\(i)" }
        let until = events.last!.time + 20_000
        var naive = NaiveEngine(zones: MixedStreams.zones, entities: MixedStreams.entities, rules: rules)
        naive.run(events, until: until)
        let expected = naive.lines()
        // A short window, so that ids leave it during the stream and their strings are reused.
        let engine = Engine(zones: MixedStreams.zones, entities: MixedStreams.entities, rules: rules,
                            options: EngineOptions(dedupWindow: 2000))
        var dec = EventDecoder(file: "test")
        var alerts: [Alert] = []
        var released = 0
        var out: [UInt8] = []
        let enc = AlertEncoder()
        for (i, ev) in events.enumerated() {
            var s = String(MixedStreams.line(ev).dropLast()) + ",\"id\":\"\(ev.id)\"}"
            guard case .success(let e) = s.withUTF8({ dec.decode($0, line: i + 1, symbols: &engine.symbols) }) else { fatalError(s) }
            engine.ingest(e)
            engine.drainAlerts(into: &alerts)
            for a in alerts { enc.append(a, engine: engine, to: &out) }
            alerts.removeAll()
            released += engine.compactIds(force: true)
        }
        engine.finish(until: until)
        engine.drainAlerts(into: &alerts)
        for a in alerts { enc.append(a, engine: engine, to: &out) }
        let got = String(decoding: out, as: UTF8.self).split(separator: "\n").map(String.init)
        if let d = firstDifference(got, expected) { Issue.record(Comment(rawValue: d)) }
        #expect(expected.count > 30)
        #expect(released > events.count / 2, "ids must actually be released during the stream")
    }

    /// Ids outside the window are not kept: 200,000 unique ids over 200 s of event time with
    /// a 1 s window leave about one second of ids, not all of them.
    @Test func idMemoryHoldsOnlyTheWindow() {
        let engine = Engine(zones: zones, entities: [], rules: rules, options: EngineOptions(dedupWindow: 1000))
        var dec = EventDecoder(file: "test")
        for i in 0..<200_000 {
            var s = pos("e\(i % 100)", Millis(i), 20, 20, id: "id-\(i)")
            guard case .success(let ev) = s.withUTF8({ dec.decode($0, line: i + 1, symbols: &engine.symbols) }) else { fatalError(s) }
            engine.ingest(ev)
            if i % 4096 == 0 { engine.compactIds() }
        }
        engine.compactIds(force: true)
        #expect(engine.time.idMemory.count <= 1001)
        #expect(engine.symbols.eventIds.liveCount <= 1001 + 100)
        #expect(engine.symbols.eventIds.count <= 2 * 65_536 + 4096 + 1001)
        // And an id of the last second is still a duplicate.
        var s = pos("e99", 199_999, 20, 20, id: "id-199999")
        guard case .success(let ev) = s.withUTF8({ dec.decode($0, line: 1, symbols: &engine.symbols) }) else { fatalError() }
        #expect(Self.kind(engine.ingest(ev)) == "duplicate")
    }
}
