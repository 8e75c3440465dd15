import Foundation
import Testing
import TriplineTesting
@testable import TriplineCore

/// A gateway rebuilt from the records it published (an API node taking over) against the
/// gateway that kept running: the same arrivals after the takeover must give byte-identical
/// records (accepted numbers, stamped watermarks, assigned numbers, drops), over random mixed
/// streams with given ids, ids spelled like assigned ones, re-sent copies, late events and
/// advances, in several lateness and dedup settings; and a publish cut short leaves holes
/// that the rebuild names and the cross-entity stage gets past.
@Suite struct GatewayRebuildTests {
    /// Offers `lines` in random batches with random advances; returns the records per partition.
    static func feed(_ gw: ClusterGateway, _ lines: ArraySlice<String>, rng: inout SplitMix64, advanceBase: Millis) throws -> [[UInt8]] {
        var out = Array(repeating: [UInt8](), count: gw.partitioner.count)
        var i = lines.startIndex
        while i < lines.endIndex {
            let n = 1 + Int(rng.next() % 20)
            let chunk = lines[i..<min(lines.endIndex, i + n)]
            let texts = EventTexts(lines: chunk.map { Array($0.utf8) }, numbers: Array(1...chunk.count), unit: "line", file: "t")
            _ = try gw.offer(texts).get()
            if rng.next() % 9 == 0 { gw.advance(until: max(gw.watermark, advanceBase) + Millis(rng.next() % 2000)) }
            if rng.next() % 5 == 0 { gw.markWatermark() }
            for (p, bytes) in gw.take().enumerated() { out[p] += bytes }
            i += n
        }
        return out
    }

    static func rebuilt(from records: [[UInt8]], partitions: Int, options: PipelineOptions, shuffleSeed: UInt64) throws -> (ClusterGateway, ClusterGateway.Rebuilt) {
        let r = ClusterGateway.Rebuilder()
        // Partitions in any interleaving (each in its own order).
        var rng = SplitMix64(seed: shuffleSeed)
        var parsed = try records.map { bytes -> [ClusterRecord] in
            var list: [ClusterRecord] = []
            try ClusterRecords.forEach(in: bytes) { list.append($0) }
            return list
        }
        while parsed.contains(where: { !$0.isEmpty }) {
            let p = Int(rng.next() % UInt64(parsed.count))
            guard !parsed[p].isEmpty else { continue }
            r.add(parsed[p].removeFirst())
        }
        return try r.rebuild(partitions: partitions, entities: MixedStreams.entities, options: options)
    }

    @Test(arguments: Array(1...16) as [UInt64])
    func aRebuiltGatewayCarriesOnExactlyAsTheOneThatKeptRunning(seed: UInt64) throws {
        let lines = ClusterSplitTests.arrivals(seed: seed, count: 500)
        let options = PipelineOptions(allowedLateness: [0, 1000, 2500][Int(seed % 3)], dedupWindow: [0, 3000, 86_400_000][Int(seed / 3 % 3)])
        let partitions = [1, 3, 5][Int(seed % 3)]
        let cut = 100 + Int(seed * 37 % 300)
        var rng = SplitMix64(seed: seed)
        let original = ClusterGateway(partitions: partitions, entities: MixedStreams.entities, options: options)
        let before = try Self.feed(original, lines[..<cut], rng: &rng, advanceBase: 0)
        let (copy, report) = try Self.rebuilt(from: before, partitions: partitions, options: options, shuffleSeed: seed &* 31)
        #expect(report.holes.isEmpty && report.unchecked == 0)
        #expect(report.events == Int(original.accepted) && report.drops > 0)
        #expect(copy.accepted == original.accepted && copy.watermark == original.watermark)
        #expect(copy.stats.duplicates == original.stats.duplicates && copy.stats.late == original.stats.late)
        // The same arrivals and steps from here on: byte-identical records.
        var rngA = SplitMix64(seed: seed ^ 0xABCD), rngB = SplitMix64(seed: seed ^ 0xABCD)
        let a = try Self.feed(original, lines[cut...], rng: &rngA, advanceBase: 0)
        let b = try Self.feed(copy, lines[cut...], rng: &rngB, advanceBase: 0)
        for p in 0..<partitions {
            #expect(a[p] == b[p], "seed \(seed), partition \(p): records differ after the rebuild")
        }
        #expect(a.contains { String(decoding: $0, as: UTF8.self).contains("\nd ") || $0.starts(with: Array("d ".utf8)) })
    }

    @Test func aPublishCutShortLeavesHolesThatTheRebuildNamesAndTheCrossStageGetsPast() throws {
        let options = PipelineOptions(allowedLateness: 1000, dedupWindow: 86_400_000)
        let partitions = 4
        let lines = ClusterSplitTests.arrivals(seed: 99, count: 300)
        var rng = SplitMix64(seed: 5)
        let gw = ClusterGateway(partitions: partitions, entities: MixedStreams.entities, options: options)
        var records = try Self.feed(gw, lines[..<250], rng: &rng, advanceBase: 0)
        // The last publish: partition 2's message never reached the stream.
        _ = try gw.offer(EventTexts(lines: lines[250...].map { Array($0.utf8) }, numbers: Array(1...(lines.count - 250)), unit: "line", file: "t")).get()
        let last = gw.take()
        var lost: [UInt64] = []
        try ClusterRecords.forEach(in: last[2]) { if case .event(let a, _, _, _) = $0 { lost.append(a) } }
        #expect(!lost.isEmpty)
        for p in 0..<partitions where p != 2 { records[p] += last[p] }
        let (copy, report) = try Self.rebuilt(from: records, partitions: partitions, options: options, shuffleSeed: 7)
        #expect(report.holes == lost.filter { $0 < gw.accepted || $0 == gw.accepted })
        #expect(copy.accepted == gw.accepted)
        // The cross stage, fed what the stream holds plus the voids, applies everything.
        for n in report.holes { copy.void(n) }
        let stage = ClusterStage(zones: MixedStreams.zones, entities: MixedStreams.entities, rules: ClusterSplitTests.rules,
                                 only: ClusterRules.split(ClusterSplitTests.rules).cross, options: options, positionsOnly: true)
        let merger = ClusterMerger(stage: stage)
        for p in 0..<partitions { try merger.push(records[p]) }
        #expect(merger.applied < gw.accepted)
        for bytes in copy.take() { try merger.push(bytes) }
        #expect(merger.applied == gw.accepted && merger.waiting == 0)
    }
}
