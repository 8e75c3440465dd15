import Foundation
import Testing
import TriplineTesting
@testable import TriplineCore

/// Catalog changes on a running cluster against one server: random mixed streams with two
/// or three rule-set changes at random places. The server's semantics: at a change the engine
/// is rebuilt on the new catalog from the whole log, and what the rebuild completes was emitted
/// before (dropped). The cluster's: a catalog marker in every partition, where each stage
/// (and the cross-entity stage behind its merger) rebuilds its engine on the new catalog from
/// the start of what it was fed, dropping what completed by the marker.
@Suite struct ClusterCatalogChangeTests {
    static let all = ClusterSplitTests.rules
    static let versions: [String: [Rule]] = [
        "v1": Array(all.prefix(12)),
        "v2": all,
        "v3": all.enumerated().filter { $0.offset % 2 == 1 }.map(\.element),
        "v4": Array(all.suffix(10)),
    ]

    enum Step {
        case batch([String])
        case advance(Millis)
        case change(String)
    }

    static func script(seed: UInt64) -> [Step] {
        var rng = SplitMix64(seed: seed ^ 0x5EED)
        let lines = ClusterSplitTests.arrivals(seed: seed, count: 400)
        var steps: [Step] = []
        var changes = ["v2", "v3", "v4"].prefix(2 + Int(seed % 2))
        var i = 0
        while i < lines.count {
            let n = 1 + Int(rng.next() % 25)
            steps.append(.batch(Array(lines[i..<min(lines.count, i + n)])))
            if rng.next() % 12 == 0, let v = changes.first {
                steps.append(.change(v))
                changes.removeFirst()
            }
            i += n
        }
        for v in changes { steps.append(.change(v)) }
        return steps
    }

    /// One server: a pipeline on the current rules; a change rebuilds from the log.
    static func single(_ steps: [Step], options: PipelineOptions, until: Millis) -> [String] {
        func make(_ v: String) -> Pipeline { Pipeline(zones: MixedStreams.zones, entities: MixedStreams.entities, rules: versions[v]!, options: options) }
        var p = make("v1")
        var log: [Step] = []
        var out: [NamedAlert] = []
        func feed(_ p: Pipeline, _ s: Step) {
            switch s {
            case .batch(let lines):
                for (i, l) in lines.enumerated() {
                    var t = l
                    let ev = try! t.withUTF8 { try p.decode($0, number: i + 1).get() }
                    _ = p.ingest(ev)
                }
            case .advance(let t): p.advance(until: t)
            case .change: break
            }
        }
        for s in steps {
            if case .change(let v) = s {
                p = make(v)
                for old in log { feed(p, old) }
                p.discardAlerts()
                continue
            }
            feed(p, s)
            log.append(s)
            p.drainAlerts(into: &out)
        }
        p.advance(until: until)
        p.drainAlerts(into: &out)
        return out.map(\.line)
    }

    /// A stage fed chunks of records, rebuilt from all its chunks at a catalog change.
    final class Stage {
        let only: Set<String>
        let cross: Bool
        let options: PipelineOptions
        var stage: ClusterStage
        var merger: ClusterMerger?
        var fed: [[ClusterRecord]] = []   // per partition, in each partition's order (cross stage: delivered so far)
        var alerts: [NamedAlert] = []
        var rebuilds = 0

        init(only: Set<String>, cross: Bool, options: PipelineOptions, partitions: Int) {
            self.only = only
            self.cross = cross
            self.options = options
            stage = ClusterStage(zones: MixedStreams.zones, entities: MixedStreams.entities, rules: versions["v1"]!, only: only, options: options, positionsOnly: cross)
            merger = cross ? ClusterMerger(stage: stage) : nil
            fed = Array(repeating: [], count: partitions)
        }

        func fresh(_ version: String, to sw: ClusterStage.CatalogSwitch) {
            stage = ClusterStage(zones: MixedStreams.zones, entities: MixedStreams.entities, rules: versions[version]!, only: only, options: options, positionsOnly: cross)
            stage.rebuildingTo = (sw.after, sw.step)
            merger = cross ? ClusterMerger(stage: stage) : nil
            rebuilds += 1
        }

        /// Feeds one record of partition `p`; on a catalog change, rebuilds from everything fed
        /// (partitions in turn: the merger puts them back in order) and carries on.
        func feed(_ r: ClusterRecord, partition p: Int) throws {
            fed[p].append(r)
            var pending: ClusterStage.CatalogSwitch?
            do {
                if let merger { try merger.push(r) } else { try stage.apply(r) }
            } catch let sw as ClusterStage.CatalogSwitch {
                pending = sw
            }
            stage.pipeline.drainAlerts(into: &alerts)
            while let sw = pending {
                pending = nil
                fresh(sw.version, to: sw)
                do {
                    for q in fed.indices { for x in fed[q] { if let merger { try merger.push(x) } else { try stage.apply(x) } } }
                } catch let next as ClusterStage.CatalogSwitch {
                    pending = next
                }
                #expect(pending != nil || stage.rebuildingTo == nil, "the rebuild passed its own catalog marker")
                stage.pipeline.drainAlerts(into: &alerts)
            }
        }
    }

    static func cluster(_ steps: [Step], options: PipelineOptions, partitions: Int, until: Millis, seed: UInt64) throws -> ([String], Int) {
        var rng = SplitMix64(seed: seed ^ 0xC0FFEE)
        // Each stage keeps the rules of its kind (entity or cross) from every version.
        let split = ClusterRules.split(all)
        let gateway = ClusterGateway(partitions: partitions, entities: MixedStreams.entities, options: options)
        let stages = (0..<partitions).map { _ in Stage(only: split.entity, cross: false, options: options, partitions: 1) }
        let cross = Stage(only: split.cross, cross: true, options: options, partitions: partitions)
        var crossQueue = Array(repeating: [ClusterRecord](), count: partitions)
        func deliver(all: Bool) throws {
            for (p, bytes) in gateway.take().enumerated() {
                try ClusterRecords.forEach(in: bytes) { r in
                    try stages[p].feed(r, partition: 0)
                    crossQueue[p].append(r)
                }
            }
            while crossQueue.contains(where: { !$0.isEmpty }) {
                let p = Int(rng.next() % UInt64(partitions))
                let n = min(crossQueue[p].count, all ? crossQueue[p].count : Int(rng.next() % 4))
                if n == 0 && !all { if rng.next() % 3 == 0 { break } else { continue } }
                for r in crossQueue[p].prefix(n) { try cross.feed(r, partition: p) }
                crossQueue[p].removeFirst(n)
            }
        }
        for s in steps {
            switch s {
            case .batch(let lines):
                _ = try gateway.offer(EventTexts(lines: lines.map { Array($0.utf8) }, numbers: Array(1...lines.count), unit: "line", file: "t")).get()
            case .advance(let t): gateway.advance(until: t)
            case .change(let v): gateway.catalogChange(version: v)
            }
            if rng.next() % 4 == 0 { gateway.markWatermark() }
            if rng.next() % 3 == 0 { try deliver(all: false) }
        }
        gateway.advance(until: until)
        try deliver(all: true)
        let rebuilds = stages.reduce(0) { $0 + $1.rebuilds } + cross.rebuilds
        return (ClusterAlerts.merge(stages.map(\.alerts) + [cross.alerts]).map(\.line), rebuilds)
    }

    @Test(arguments: Array(1...24) as [UInt64])
    func catalogChangesGiveTheAlertsOfOneServerRebuildingFromItsLog(seed: UInt64) throws {
        let options = PipelineOptions(allowedLateness: [0, 1000, 2500][Int(seed % 3)], dedupWindow: [0, 3000, 86_400_000][Int(seed / 3 % 3)])
        let partitions = [1, 3, 4][Int(seed % 3)]
        let steps = Self.script(seed: seed)
        let one = Self.single(steps, options: options, until: 1_000_000_000)
        let (split, rebuilds) = try Self.cluster(steps, options: options, partitions: partitions, until: 1_000_000_000, seed: seed)
        #expect(one.count > 20)
        #expect(rebuilds >= 2 * (partitions + 1))
        #expect(firstDifference(split, one) == nil, "seed \(seed), \(partitions) partitions")
    }
}
