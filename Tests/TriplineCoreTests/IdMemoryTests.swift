import Testing
@testable import TriplineCore
import TriplineYAML
import TriplineTesting

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
        try collectingIdsAfterEveryEvent(seed: seed, rules: rules)
    }

    /// The same with proximity rules alone: no speed and no zone rule, so only the proximity
    /// grid needs the latest positions, which it reads from the engine's entity records
    /// (their events must be held through collections, or a pair's evidence would name
    /// another id).
    @Test(arguments: Array(1...12) as [UInt64])
    func collectingIdsKeepsTheProximityGridsEvidence(seed: UInt64) throws {
        let rules = try RuleFile.decode(MixedStreams.rulesYAML, file: "rules.yaml").get().filter {
            if case .proximity = $0.parameters { return true }
            return false
        }
        #expect(rules.count == 3)
        try collectingIdsAfterEveryEvent(seed: seed, rules: rules)
    }

    func collectingIdsAfterEveryEvent(seed: UInt64, rules: [Rule]) throws {
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

/// The arrival ring's 8-byte records (time offsets from a chunk base, distances back) against
/// a plain list of every arrival with the same front rule: every look-up agrees, including
/// times far apart (new chunks), distances past the record's bits (the `far` table) and a
/// ring emptied and refilled. It holds no more than the window's arrivals plus one chunk.
@Suite struct ArrivalRingTests {
    @Test(arguments: Array(1...24) as [UInt64])
    func agreesWithEveryArrivalKeptInAList(seed: UInt64) {
        var rng = SplitMix64(seed: seed)
        let chunkSize = Int(rng.next() % 7) + 1
        let farLink = UInt32(rng.next() % 6) + 2
        var ring = ArrivalRing(chunkSize: chunkSize, farLink: farLink)
        var all: [(time: Int64, previous: Int64)] = []
        var head = 0
        var last = [Int64](repeating: -1, count: 5)
        var watermark: Millis = 0
        var clock: Millis = 40 * 86_400_000
        let window: Millis = Millis(rng.next() % 3) * 500
        var farUsed = false
        for step in 0..<3_000 {
            if rng.next() % 5 == 0 {
                // The front moves as the watermark does.
                watermark = clock - Millis(rng.next() % 2_000)
                while head < all.count && TimeCore.recordTime(all[head].time) + window < watermark { head += 1 }
                ring.trim(window: window, watermark: watermark)
            } else {
                // Mostly small steps; now and then a jump of weeks either way (a new chunk).
                switch rng.next() % 50 {
                case 0: clock += 30 * 86_400_000
                case 1: clock = max(0, clock - 30 * 86_400_000)
                default: clock += Millis(rng.next() % 300)
                }
                let t = clock - Millis(rng.next() % 200)
                let e = Int(rng.next() % 5)
                let encoded = rng.next() % 4 == 0 ? -1 - t : t
                let g = ring.push(encoded, previous: last[e])
                #expect(g == Int64(all.count))
                if last[e] >= 0 && g - last[e] >= Int64(farLink) { farUsed = true }
                all.append((encoded, last[e]))
                last[e] = g
            }
            #expect(ring.head == Int64(head) && ring.end == Int64(all.count), "step \(step)")
            let held = ring.chunks.reduce(0) { $0 + $1.records.count }
            #expect(held <= all.count - head + chunkSize - 1, "step \(step): \(held) records held for \(all.count - head)")
            #expect(ring.far.keys.allSatisfy { $0 >= Int64(head) && $0 < Int64(all.count) })
            if step % 50 == 0 || step > 2_950 {
                for g in max(0, head - 3)..<all.count + 2 {
                    let got = ring.record(Int64(g))
                    if g < head || g >= all.count {
                        #expect(got == nil, "step \(step), position \(g)")
                    } else {
                        #expect(got?.time == all[g].time && got?.previous == all[g].previous, "step \(step), position \(g)")
                    }
                }
            }
        }
        #expect(farUsed)
    }
}
