import Foundation
import Testing
import TriplineTesting
@testable import TriplineCore

/// The cluster's split of the engine (gateway time core, partition workers, the cross-entity
/// stage, the canonical merge) against one process over the same arrival order: random mixed
/// streams of every rule kind, out of order, with given ids, duplicates re-sent, ids spelled
/// like assigned ones, late events, several lateness and dedup settings, partitions delivered
/// in random interleavings.
@Suite struct ClusterSplitTests {
    static let rules = AllKindsDifferentialTests.rules

    /// A stream as arrivals: the mixed stream over 12 entities, shuffled locally, some events
    /// with ids of their own (a few spelled `<entity>#<n>`), copies re-sent, a few far too old.
    static func arrivals(seed: UInt64, count: Int) -> [String] {
        var rng = SplitMix64(seed: seed &* 7919 &+ 11)
        var evs = MixedStreams.events(seed: seed, count: count)
        for i in evs.indices { evs[i].entity = "e\(rng.next() % 12)" }
        var lines: [(Millis, String)] = []
        for (i, ev) in evs.enumerated() {
            var line = MixedStreams.line(ev)
            switch rng.next() % 10 {
            case 0, 1, 2: line = "{\"id\":\"g\(i % 97)\"," + line.dropFirst()   // reused ids: memory and its window decide
            case 3: line = "{\"id\":\"\(ev.entity)#\(1 + rng.next() % 20)\"," + line.dropFirst()
            default: break
            }
            // Out of order by up to 3 s.
            lines.append((ev.time + Millis(rng.next() % 7) * 500 - 1500, line))
        }
        lines.sort { $0.0 < $1.0 }
        var out = lines.map(\.1)
        // Copies re-sent later, and a few events from long ago (late under any setting here).
        for _ in 0..<(count / 15) {
            let i = Int(rng.next() % UInt64(out.count))
            // Half right after the original (a duplicate), half later (late, or a duplicate
            // while the watermark has not passed it).
            let j = min(out.count, i + 1 + (rng.next() % 2 == 0 ? 0 : Int(rng.next() % 40)))
            out.insert(out[i], at: j)
        }
        for k in 0..<(count / 60) {
            out.insert("{\"entity\":\"e\(k % 12)\",\"time\":1000,\"type\":\"a\"}", at: Int(rng.next() % UInt64(out.count)))
        }
        return out
    }

    struct Outcome: Equatable {
        var alerts: [String]
        var duplicates: Int
        var late: Int
    }

    static func single(_ lines: [String], options: PipelineOptions, until: Millis) -> Outcome {
        let p = Pipeline(zones: MixedStreams.zones, entities: MixedStreams.entities, rules: rules, options: options)
        var out: [NamedAlert] = []
        var late = 0, dups = 0
        for (i, l) in lines.enumerated() {
            var s = l
            let ev = try! s.withUTF8 { try p.decode($0, number: i + 1).get() }
            switch p.ingest(ev) {
            case .late: late += 1
            case .duplicate: dups += 1
            case .accepted: break
            }
            p.drainAlerts(into: &out)
        }
        p.advance(until: until)
        p.drainAlerts(into: &out)
        return Outcome(alerts: out.map(\.line), duplicates: dups, late: late)
    }

    /// `direct`: the cross-entity stage reads the gateway's own stream of its records
    /// (`crossStream`, as `replay --partitions` does in one process) instead of merging the
    /// partitions' records.
    static func cluster(_ lines: [String], options: PipelineOptions, partitions: Int, until: Millis, seed: UInt64, direct: Bool = false) throws -> Outcome {
        var rng = SplitMix64(seed: seed ^ 0xC1A5)
        let split = ClusterRules.split(rules)
        let gateway = ClusterGateway(partitions: partitions, entities: MixedStreams.entities, options: options, crossStream: direct)
        let workers = (0..<partitions).map { _ in
            ClusterStage(zones: MixedStreams.zones, entities: MixedStreams.entities, rules: rules, only: split.entity, options: options)
        }
        let merger = ClusterMerger(stage: ClusterStage(zones: MixedStreams.zones, entities: MixedStreams.entities, rules: rules,
                                                       only: split.cross, options: options, positionsOnly: true))
        var alerts = Array(repeating: [NamedAlert](), count: partitions + 1)
        var late = 0, dups = 0
        // Records not yet delivered to the cross stage, per partition (delivered in pieces, in
        // a random interleaving of partitions, each partition in its own order).
        var crossQueue = Array(repeating: [ClusterRecord](), count: partitions)
        func deliver(all: Bool) throws {
            let taken = gateway.take()
            for p in 0..<partitions {
                try workers[p].consume(taken[p])
                workers[p].pipeline.drainAlerts(into: &alerts[p])
                if !direct { try ClusterRecords.forEach(in: taken[p]) { crossQueue[p].append($0) } }
            }
            if direct { try merger.stage.consume(gateway.takeCross()) }
            while crossQueue.contains(where: { !$0.isEmpty }) {
                let p = Int(rng.next() % UInt64(partitions))
                let n = min(crossQueue[p].count, all ? crossQueue[p].count : Int(rng.next() % 4))
                if n == 0 && !all { if rng.next() % 3 == 0 { break } else { continue } }
                for r in crossQueue[p].prefix(n) { try merger.push(r) }
                crossQueue[p].removeFirst(n)
            }
            merger.stage.pipeline.drainAlerts(into: &alerts[partitions])
        }
        var i = 0
        while i < lines.count {
            let n = 1 + Int(rng.next() % 25)
            let chunk = lines[i..<min(lines.count, i + n)]
            let texts = EventTexts(lines: chunk.map { Array($0.utf8) }, numbers: Array(1...chunk.count), unit: "line", file: "t")
            let r = try gateway.offer(texts).get()
            late += r.late.count
            dups += r.duplicates
            if rng.next() % 4 == 0 { gateway.markWatermark() }
            if rng.next() % 3 == 0 { try deliver(all: false) }
            i += n
        }
        gateway.advance(until: until)
        try deliver(all: true)
        #expect(direct ? gateway.pendingCross.isEmpty : merger.waiting == 0 && merger.applied == gateway.accepted)
        return Outcome(alerts: ClusterAlerts.merge(alerts).map(\.line), duplicates: dups, late: late)
    }

    @Test(arguments: Array(1...24) as [UInt64])
    func theSplitEngineGivesTheAlertsOfOneProcess(seed: UInt64) throws {
        let lines = Self.arrivals(seed: seed, count: 400)
        let lateness: Millis = [0, 1000, 2500][Int(seed % 3)]
        let window: Millis = [0, 3000, 86_400_000][Int(seed / 3 % 3)]
        let options = PipelineOptions(allowedLateness: lateness, dedupWindow: window)
        let partitions = [1, 3, 4, 7][Int(seed % 4)]
        let one = Self.single(lines, options: options, until: 1_000_000_000)
        let split = try Self.cluster(lines, options: options, partitions: partitions, until: 1_000_000_000, seed: seed)
        #expect(one.alerts.count > 20)
        #expect(one.late > 0 && one.duplicates > 0)
        #expect(split.late == one.late && split.duplicates == one.duplicates)
        #expect(firstDifference(split.alerts, one.alerts) == nil, "seed \(seed), lateness \(lateness), window \(window), \(partitions) partitions")
        // The cross-entity stage fed by the gateway's own stream (one process) gives them too.
        let direct = try Self.cluster(lines, options: options, partitions: partitions, until: 1_000_000_000, seed: seed, direct: true)
        #expect(direct.late == one.late && direct.duplicates == one.duplicates)
        #expect(firstDifference(direct.alerts, one.alerts) == nil, "direct cross stream: seed \(seed), lateness \(lateness), window \(window), \(partitions) partitions")
    }

    /// Alerts handed out as stages complete (the cluster's alert reader, `replay --partitions`)
    /// are, put together, the canonical merge of all of them, and none is handed out before
    /// every stage has completed its time.
    @Test(arguments: Array(1...20) as [UInt64])
    func alertsHandedOutAsStagesCompleteAreTheMergeOfAll(seed: UInt64) {
        var rng = SplitMix64(seed: seed &* 31 &+ 5)
        let stages = 1 + Int(rng.next() % 5)
        // Each stage's alerts in canonical order; keys belong to one stage, times and rules collide.
        var perStage: [[NamedAlert]] = []
        for s in 0..<stages {
            var mine: [NamedAlert] = []
            for k in 0..<Int(rng.next() % 60) {
                let rule = "r\(rng.next() % 4)"
                let entity = "s\(s)-e\(rng.next() % 6)"
                mine.append(NamedAlert(ruleIndex: 0, rule: rule, severity: .low, firing: rng.next() % 2 == 0, time: Millis(rng.next() % 40),
                                       entity: entity, zone: nil, pairA: nil, pairB: nil, line: "\(s)/\(k)", group: nil))
            }
            perStage.append(ClusterAlerts.merge([mine]))
        }
        let all = ClusterAlerts.merge(perStage).map(\.line)
        var merge = StageAlertMerge(stages: stages)
        var next = Array(repeating: 0, count: stages)
        var out: [String] = []
        while next.enumerated().contains(where: { $0.element <= perStage[$0.offset].count }) {
            let s = Int(rng.next() % UInt64(stages))
            guard next[s] <= perStage[s].count else { continue }
            let end = min(perStage[s].count, next[s] + Int(rng.next() % 8))
            merge.add(perStage[s][next[s]..<end], stage: s)
            // Complete up to just before its next alert, or for ever once all are given
            // (`next` past the end marks that).
            if end < perStage[s].count {
                merge.completed(s, through: perStage[s][end].time - 1)
                next[s] = end
            } else {
                merge.completed(s, through: .max)
                next[s] = perStage[s].count + 1
            }
            let through = merge.completeThrough
            let ready = merge.takeReady()
            #expect(ready.allSatisfy { $0.time <= through })
            out += ready.map(\.line)
        }
        #expect(merge.completeThrough == .max)
        #expect(out == all, "seed \(seed), \(stages) stages")
    }

    @Test func recordsSurviveTheirByteForm() throws {
        let text = Array(#"{"entity":"e1","time":5,"type":"a"}"#.utf8)
        let records: [ClusterRecord] = [
            .event(accepted: 1, watermark: .min, assigned: 3, text: text[...]),
            .watermark(-5, after: 1), .advance(253_402_300_799_999, after: 1),
            .event(accepted: UInt64(Int64.max), watermark: 0, assigned: 0, text: text[...]),
            .watermark(7, after: 2, step: 3), .advance(9, after: 2, step: 4),
            .dropped(after: 2, step: 5, text: text[...]), .void(17),
            .catalog(after: 2, step: 6, watermark: -1, version: "5B1960BA-ADC9-42A7-9502-795EA7B7276B"),
        ]
        var bytes: [UInt8] = []
        for r in records { ClusterRecords.append(r, to: &bytes) }
        var back: [ClusterRecord] = []
        try ClusterRecords.forEach(in: bytes) { back.append($0) }
        #expect(back.count == records.count)
        for (a, b) in zip(back, records) {
            switch (a, b) {
            case (.event(let a1, let w1, let n1, let t1), .event(let a2, let w2, let n2, let t2)):
                #expect(a1 == a2 && w1 == w2 && n1 == n2 && Array(t1) == Array(t2))
            case (.dropped(let a1, let s1, let t1), .dropped(let a2, let s2, let t2)):
                #expect(a1 == a2 && s1 == s2 && Array(t1) == Array(t2))
            default: #expect(a == b)
            }
        }
        #expect(throws: ClusterRecords.Malformed.self) { try ClusterRecords.forEach(in: Array("e 1 2\n".utf8)) { _ in } }
        #expect(throws: ClusterRecords.Malformed.self) { try ClusterRecords.forEach(in: Array("x 1\n".utf8)) { _ in } }
        // Records written before steps existed (no trailing step) read as step 0.
        var old: [ClusterRecord] = []
        try ClusterRecords.forEach(in: Array("w 3 10\na 3 12\n".utf8)) { old.append($0) }
        #expect(old == [.watermark(10, after: 3, step: 0), .advance(12, after: 3, step: 0)])
        #expect(throws: ClusterRecords.Malformed.self) { try ClusterRecords.forEach(in: Array("c 1 2 3\n".utf8)) { _ in } }
        #expect(throws: ClusterRecords.Malformed.self) { try ClusterRecords.forEach(in: Array("d 1 -2 {}\n".utf8)) { _ in } }
    }

    @Test func partitionsAreStableAndSpread() {
        let p = Partitioner(count: 24)
        // FNV-1a 64 ("truck-17" hashes to 0x09228def3a6c4547, "vessel-3" to 0xfc5e710e3fb9eb03,
        // computed independently) is fixed: the same partition in every process and release.
        #expect(p.partition(of: "truck-17") == 15 && p.partition(of: "vessel-3") == 11)
        var counts = Array(repeating: 0, count: 24)
        for i in 0..<24_000 { counts[p.partition(of: "entity-\(i)")] += 1 }
        #expect(counts.min()! > 800 && counts.max()! < 1200)
    }
}
