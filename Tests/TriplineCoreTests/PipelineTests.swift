import Foundation
import Testing
import TriplineTesting
@testable import TriplineCore

/// The pipeline every mode drives: JSON-array bodies split in place, a watermark stamped from
/// outside, a rule subset, and decoding on another thread, each against the plain path.
@Suite struct PipelineTests {
    static let rules = AllKindsDifferentialTests.rules

    /// Runs the mixed stream of `seed` through a pipeline and returns its alert lines.
    static func run(_ p: Pipeline, _ lines: [String], advanceEach: Bool = false) -> [String] {
        var out: [NamedAlert] = []
        for (i, l) in lines.enumerated() {
            var s = l
            let r = s.withUTF8 { p.decode($0, number: i + 1) }
            guard case .success(let ev) = r else { Issue.record("line \(i + 1) does not decode"); return [] }
            p.ingest(ev)
            if advanceEach { p.watermarkReached(ev.time) }
            p.drainAlerts(into: &out)
        }
        p.finish(until: 1_000_000_000)
        p.drainAlerts(into: &out)
        return out.map(\.line)
    }

    static func pipeline(_ options: PipelineOptions = PipelineOptions()) -> Pipeline {
        Pipeline(zones: MixedStreams.zones, entities: MixedStreams.entities, rules: rules, options: options)
    }

    @Test(arguments: Array(1...12) as [UInt64])
    func anOutsideWatermarkGivesTheAlertsOfTheEventsOwn(seed: UInt64) {
        // In time order with lateness 0 the events' own watermark is the time of the latest
        // event: a worker told that same watermark after each event must emit the same alerts.
        let lines = MixedStreams.events(seed: seed).map(MixedStreams.line)
        let own = Self.run(Self.pipeline(), lines)
        let outside = Self.run(Self.pipeline(PipelineOptions(watermark: .external)), lines, advanceEach: true)
        #expect(own.count > 10)
        #expect(firstDifference(outside, own) == nil)
    }

    @Test func anOutsideWatermarkHoldsEventsBackUntilItArrives() {
        let p = Self.pipeline(PipelineOptions(watermark: .external, rules: ["enter"]))
        var s = #"{"entity":"e0","time":5000,"type":"position","lon":1,"lat":1}"#
        let ev = s.withUTF8 { try! p.decode($0, number: 1).get() }
        #expect(p.ingest(ev) == .accepted(.assigned(entity: ev.entity, n: 1)))
        var out: [NamedAlert] = []
        p.drainAlerts(into: &out)
        #expect(out.isEmpty && p.watermark == .min && p.stats.applied == 0)
        p.watermarkReached(4999)
        p.drainAlerts(into: &out)
        #expect(out.isEmpty && p.stats.applied == 0)
        p.watermarkReached(5000)
        p.drainAlerts(into: &out)
        // Applied, but alerts at 5000 stay open until time moves past it (or the input ends).
        #expect(p.stats.applied == 1 && out.isEmpty)
        p.watermarkReached(5001)
        p.drainAlerts(into: &out)
        #expect(out.map(\.rule) == ["enter", "enter"] && out.allSatisfy { $0.entity == "e0" })
    }

    @Test(arguments: Array(1...8) as [UInt64])
    func aRuleSubsetEmitsExactlyItsShareOfTheFullRun(seed: UInt64) {
        let lines = MixedStreams.events(seed: seed).map(MixedStreams.line)
        let full = Self.run(Self.pipeline(), lines)
        var rng = SplitMix64(seed: seed)
        let subset = Set(Self.rules.map(\.id).filter { _ in rng.next() % 2 == 0 })
        let part = Self.run(Self.pipeline(PipelineOptions(rules: subset)), lines)
        let expected = full.filter { line in subset.contains { line.hasPrefix(#"{"rule":"\#($0)","#) } }
        #expect(part == expected)
        #expect(Self.pipeline(PipelineOptions(rules: subset)).rules.map(\.id) == Self.rules.map(\.id).filter(subset.contains))
    }

    @Test(arguments: Array(1...6) as [UInt64])
    func decodingOnAnotherThreadGivesTheSameAlerts(seed: UInt64) {
        let lines = MixedStreams.events(seed: seed, count: 500).map(MixedStreams.line)
        let direct = Self.run(Self.pipeline(), lines)
        let p = Self.pipeline()
        var decoder = p.makeBatchDecoder(file: "t")
        var out: [NamedAlert] = []
        // Batches of varying size, each sealed with the names it interned and ingested at once.
        _ = Self.batches(lines, &decoder, seed: seed) { batch in
            p.ingest(batch)
            p.drainAlerts(into: &out)
        }
        p.finish(until: 1_000_000_000)
        p.drainAlerts(into: &out)
        #expect(out.map(\.line) == direct)
    }

    /// Decodes `lines` in batches of varying size with `decoder`, sealing each and handing it
    /// to `each` before the next is decoded.
    static func batches(_ lines: [String], _ decoder: inout BatchDecoder, seed: UInt64, each: (DecodedBatch) -> Void = { _ in }) -> [DecodedBatch] {
        var out: [DecodedBatch] = []
        var i = 0
        var rng = SplitMix64(seed: seed)
        while i < lines.count {
            let n = 1 + Int(rng.next() % 60)
            let batch = DecodedBatch()
            for l in lines[i..<min(lines.count, i + n)] {
                var s = l
                batch.events.append(s.withUTF8 { try! decoder.decode($0, number: 1).get() })
            }
            decoder.seal(batch)
            each(batch)
            out.append(batch)
            i += n
        }
        return out
    }

    static func ingestAll(_ p: Pipeline, _ batches: [DecodedBatch]) -> [String] {
        var out: [NamedAlert] = []
        for b in batches {
            p.ingest(b)
            p.drainAlerts(into: &out)
        }
        p.finish(until: 1_000_000_000)
        p.drainAlerts(into: &out)
        return out.map(\.line)
    }

    @Test(arguments: Array(1...6) as [UInt64])
    func decodingBeforeThePipelineExistsAndZonesLookedUpElsewhereGiveTheSameAlerts(seed: UInt64) {
        // As `tripline replay` runs: the events are decoded from the names the pipeline will
        // start with (before its zones are loaded), and the zones of each batch's positions
        // are looked up by the pipeline's `zoneLookup` (on the reading thread).
        let lines = MixedStreams.events(seed: seed, count: 600).map(MixedStreams.line)
        let direct = Self.run(Self.pipeline(), lines)
        let initial = Pipeline.initialSymbols(entities: MixedStreams.entities, rules: Self.rules)
        var decoder = BatchDecoder(symbols: initial, file: "t")
        let batches = Self.batches(lines, &decoder, seed: seed)
        let p = Pipeline(zones: MixedStreams.zones, entities: MixedStreams.entities, rules: Self.rules, symbols: initial)
        #expect(p.symbolCounts == initial.counts)
        let lookup = try! #require(p.zoneLookup)
        for b in batches { lookup.locate(b) }
        #expect(Self.ingestAll(p, batches) == direct)
        let positions = batches.reduce(0) { $0 + $1.events.filter(\.isPosition).count }
        #expect(p.zoneLookupsGiven > positions / 2 && p.zoneLookupsGiven <= positions)
    }

    @Test func zonesLookedUpForAnotherPipelineAreNotUsedAndWrongOnesChangeTheAlerts() {
        let lines = MixedStreams.events(seed: 5, count: 600).map(MixedStreams.line)
        let direct = Self.run(Self.pipeline(), lines)
        #expect(direct.count > 10)
        // Looked up by another pipeline (same zones): ignored, the engine looks them up itself.
        var d1 = Self.pipeline().makeBatchDecoder(file: "t")
        let other = Self.batches(lines, &d1, seed: 5)
        for b in other { Self.pipeline().zoneLookup!.locate(b) }
        let p1 = Self.pipeline()
        #expect(Self.ingestAll(p1, other) == direct)
        #expect(p1.zoneLookupsGiven == 0)
        // Its own lookups, emptied: the engine takes them as they are (every position outside
        // every zone), so enter and exit alerts vanish. The lookups are really what it reads.
        let p2 = Self.pipeline()
        var d2 = p2.makeBatchDecoder(file: "t")
        let mine = Self.batches(lines, &d2, seed: 5)
        for b in mine {
            p2.zoneLookup!.locate(b)
            b.zoneIds = []
            b.zoneStarts = Array(repeating: 0, count: b.events.count + 1)
        }
        let emptied = Self.ingestAll(p2, mine)
        #expect(p2.zoneLookupsGiven > 0)
        #expect(emptied != direct)
        #expect(!emptied.contains { $0.hasPrefix(#"{"rule":"enter","#) })
        #expect(direct.contains { $0.hasPrefix(#"{"rule":"enter","#) })
    }

    @Test func namedAlertsCarryTheNamesOfTheirLines() throws {
        let lines = MixedStreams.events(seed: 3).map(MixedStreams.line)
        let p = Self.pipeline()
        for (i, l) in lines.enumerated() {
            var s = l
            p.ingest(try s.withUTF8 { try p.decode($0, number: i + 1).get() })
        }
        p.finish(until: 1_000_000_000)
        var out: [NamedAlert] = []
        p.drainAlerts(into: &out)
        #expect(out.count > 10)
        for a in out {
            let o = try #require(try JSONSerialization.jsonObject(with: Data(a.line.utf8)) as? [String: Any])
            let key = try #require(o["key"] as? [String: Any])
            #expect(o["rule"] as? String == a.rule && p.rules[a.ruleIndex].id == a.rule)
            #expect(key["entity"] as? String == a.entity && key["zone"] as? String == a.zone)
            let pair = key["pair"] as? [String]
            #expect(pair == (a.pairA.map { [$0, a.pairB!] }))
            #expect((o["state"] as? String == "firing") == a.firing)
        }
    }

    @Test func logLinesReplayAdvancesAndSkipRecords() {
        let p = Self.pipeline(PipelineOptions(rules: ["silent"]))
        func feed(_ text: String) -> (Event, IngestOutcome)? {
            var s = text
            return s.withUTF8 { p.replay(logLine: $0, number: 1) }
        }
        #expect(feed(#"{"entity":"e0","time":1000,"type":"ping"}"#)?.1 == .accepted(.assigned(entity: p.entityNumber("e0")!, n: 1)))
        #expect(feed("#erased") == nil)
        #expect(feed(String(decoding: LogRecord.advance(60_000), as: UTF8.self)) == nil)
        #expect(p.watermark == 60_000)
        var out: [NamedAlert] = []
        p.drainAlerts(into: &out)
        // e0 is a truck, silent for 5 s from 1 s: the advance fired its absence timer.
        #expect(out.map(\.rule) == ["silent"] && out[0].time == 6000)
        #expect(feed("#advance 1e300") == nil && p.watermark == 60_000)
    }
}

/// JSON-array bodies: element extents found in place, against the document parser.
@Suite struct EventTextsTests {
    @Test func elementsAreTheirOwnBytesInPlace() throws {
        let body = Array(#"  [ {"a":"],[x"}, {"b":[1,{"c":2}]} ,{"d":"\"}"} ]  "#.utf8)
        let t = try EventTexts.jsonArray(body, file: "r").get()
        #expect(t.unit == "element" && t.numbers == [0, 1, 2])
        #expect((0..<t.count).map { String(decoding: t.text($0), as: UTF8.self) } == [#"{"a":"],[x"}"#, #"{"b":[1,{"c":2}]}"#, #"{"d":"\"}"}"#])
        #expect(try EventTexts.jsonArray(Array("[]".utf8), file: "r").get().count == 0)
        #expect(try EventTexts.split(Array("{\"a\":1}\n\n{\"b\":2}\r\n".utf8), file: "r").get().numbers == [1, 3])
    }

    @Test func anElementOverSeveralLinesBecomesOneLine() throws {
        let body = Array("[\n  {\n    \"entity\": \"a\",\r\n    \"time\": 1\n  },\n  {\"x\": \"y\"}\n]\n".utf8)
        let t = try EventTexts.jsonArray(body, file: "r").get()
        #expect(String(decoding: t.text(0), as: UTF8.self) == "{     \"entity\": \"a\",      \"time\": 1   }")
        #expect(!t.text(0).contains(10) && !t.text(0).contains(13))
        #expect(String(decoding: t.text(1), as: UTF8.self) == #"{"x": "y"}"#)
    }

    @Test(arguments: [
        ("[{\"a\":1},]", 1, 10), ("[{\"a\":1}", 1, 9), ("[{\"a\":1}] x", 1, 11), ("[\n{\"a\":1} {\"b\":2}]", 2, 9),
        ("[{\"a\":\"line\nbreak\"}]", 1, 12), ("[tru]", 1, 2),
    ])
    func aBrokenArrayFailsLocated(text: String, line: Int, column: Int) {
        guard case .failure(let e) = EventTexts.jsonArray(Array(text.utf8), file: "r") else {
            Issue.record("\(text) was accepted"); return
        }
        #expect(e.location?.line == line && e.location?.column == column, "\(e)")
    }

    @Test(arguments: Array(1...200) as [UInt64])
    func splittingAgreesWithTheDocumentParser(seed: UInt64) throws {
        var rng = SplitMix64(seed: seed)
        func ws() -> String { ["", " ", "\n", "\t", "\r\n  "][Int(rng.next() % 5)] }
        func value(_ depth: Int) -> String {
            switch rng.next() % (depth > 2 ? 4 : 6) {
            case 0: return "\(Int(rng.next() % 2000) - 1000)"
            case 1: return ["true", "false", "null", "1.5e3", "-0.25"][Int(rng.next() % 5)]
            case 2: return "\"" + ["a", "],", "\\\"", "{[", "é", "\\n", "x y"][Int(rng.next() % 7)] + "\""
            case 3: return "\"s\(rng.next() % 100)\""
            case 4: return "[" + (0..<Int(rng.next() % 3)).map { _ in ws() + value(depth + 1) + ws() }.joined(separator: ",") + "]"
            default:
                return "{" + (0..<Int(rng.next() % 3)).map { k in ws() + "\"k\(k)\"" + ws() + ":" + ws() + value(depth + 1) }.joined(separator: ",") + ws() + "}"
            }
        }
        let items = (0..<Int(rng.next() % 6)).map { _ in value(0) }
        let text = ws() + "[" + items.map { ws() + $0 + ws() }.joined(separator: ",") + ws() + "]" + ws()
        let t = try EventTexts.jsonArray(Array(text.utf8), file: "r").get()
        let elements = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8), options: [.fragmentsAllowed]) as? [Any])
        #expect(t.count == elements.count)
        for i in 0..<min(t.count, elements.count) {
            let one = try JSONSerialization.jsonObject(with: Data(t.text(i)), options: [.fragmentsAllowed])
            func canonical(_ v: Any) throws -> Data { try JSONSerialization.data(withJSONObject: v, options: [.sortedKeys, .fragmentsAllowed]) }
            #expect(try canonical(one) == canonical(elements[i]), "element \(i) of \(text)")
        }
    }
}
