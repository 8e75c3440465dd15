import Foundation
import Testing
import TriplineCore
@testable import TriplineServer
import TriplineStore
import TriplineStoreFixtures

/// The positions spatial queries read are kept on a stage behind the engine thread
/// (`HostOptions.trackStage`). Whatever a read sees must be what it saw when the engine thread
/// kept them itself, and a read must include every batch applied before it.
@Suite struct TrackStageTests {
    static let zones = #"{"type":"Feature","properties":{"id":"yard","category":"depot"},"geometry":{"type":"Polygon","coordinates":[[[0,0],[1,0],[1,1],[0,1],[0,0]]]}}"#
    static let rule = #"{"id":"in-yard","kind":"dwell","purpose":"p","owner":"o","severity":"low","match":{},"zones":{"category":"depot"},"min":"10s"}"#

    typealias Rng = DecodeStageTests.Rng

    func batch(_ s: [String]) -> EventBatchInput {
        EventBatchInput(lines: s.map { Array($0.utf8) }, numbers: Array(1...s.count), unit: "line", file: "t")
    }

    func host(stage: Bool) async throws -> EngineHost {
        var options = HostOptions()
        options.trackStage = stage
        options.trackPoints = 3
        options.allowedLateness = 1500
        let host = try EngineHost(store: MemoryStore(), options: options, wallClock: { 1_000_000_000 })
        host.start()
        try await host.changeCatalog { store, _ in
            try store.putCatalog(.zones, [CatalogItem(id: "yard", json: Self.zones, updatedAt: 0)])
            try store.appendRuleVersions([RuleVersion(rule: "in-yard", version: 1, json: Self.rule, deleted: false, createdAt: 0, createdBy: "t")])
        }
        return host
    }

    /// Everything the positions hold, spelled out by entity name: latest positions, recent
    /// tracks, the numeric attributes of the latest position, latest readings, and a radius
    /// query on the position index.
    static func snapshot(_ s: HostState) -> [String] {
        let p = s.pipeline
        let l = s.latest
        var out = s.positions().map { "at \($0.0) \($0.2) \($0.3) \($0.4)" }.sorted()
        l.tracks?.forEachEntity { e in
            var pts: [Double] = []
            l.tracks!.points(e, span: nil, into: &pts)
            if !pts.isEmpty { out.append("track \(p.entityName(e)) \(pts) \(l.tracks!.box(e))") }
        }
        for (e, a) in l.attrs.enumerated() where !a.isEmpty { out.append("attrs \(p.entityName(Int32(e))) \(a.map { "\($0.0)=\($0.1)" })") }
        for (m, col) in l.metrics.enumerated() {
            guard let col else { continue }
            for e in col.time.indices where col.time[e] != .min { out.append("reading \(m) \(p.entityName(Int32(e))) \(col.value[e]) \(col.time[e])") }
        }
        let near = l.index.within(radiusM: 120_000, lon: 1, lat: 0.5, accept: { _ in true })
        out.append("near \(near.map { "\(p.entityName($0.entity)):\($0.distance)" }.sorted())")
        return out
    }

    static func line(_ r: inout Rng, time: Millis) -> String {
        let e = "e\(r.next(16))"
        let id = r.next(3) == 0 ? #","id":"x\#(r.next(40))""# : ""
        switch r.next(3) {
        case 0, 1:
            let attrs = r.next(2) == 0 ? #","attrs":{"speed":\#(r.next(90)),"tag":"t\#(r.next(3))"}"# : ""
            return #"{"entity":"\#(e)","time":\#(time),"type":"position","lon":\#(Double(r.next(30)) / 10),"lat":\#(Double(r.next(10)) / 10)\#(attrs)\#(id)}"#
        default:
            return #"{"entity":"\#(e)","time":\#(time),"type":"reading","metric":"m\#(r.next(3))","value":\#(r.next(100))\#(id)}"#
        }
    }

    final class Gate: @unchecked Sendable {
        let release = DispatchSemaphore(value: 0)
        private let lock = NSLock()
        private var flag = false
        var isSet: Bool { lock.lock(); defer { lock.unlock() }; return flag }
        func set() { lock.lock(); flag = true; lock.unlock() }
    }

    /// Runs the seeded operations; returns every answer (ingest results and snapshots), the
    /// duplicates and late events seen, and the batches tracked on the stage.
    func drive(seed: UInt64, stage: Bool) async throws -> (answers: [String], duplicates: Int, late: Int, tracked: Int) {
        let host = try await host(stage: stage)
        var r = Rng(s: seed)
        var answers: [String] = []
        var duplicates = 0, late = 0
        var time: Millis = 1000
        let clock = ContinuousClock(), start = clock.now
        for round in 0..<50 {
            switch r.next(8) {
            case 0:
                // An entity upload rebuilds the engine, and the positions with it.
                let id = "e\(r.next(16))"
                try await host.changeCatalog { store, _ in
                    try store.putCatalog(.entities, [CatalogItem(id: id, json: #"{"id":"\#(id)"}"#, updatedAt: Millis(round))])
                }
            case 1:
                answers.append(contentsOf: try await host.perform { s in Self.snapshot(s) })
            default:
                // Batches admitted while the engine thread is held, then read at once.
                let gate = Gate()
                let held = Task { try await host.perform { _ in gate.release.wait() } }
                var tasks: [Task<IngestResult, any Error>] = []
                var queued = host.metrics.counters.queueDepthEvents
                for _ in 0..<(1 + r.next(3)) {
                    var ls: [String] = []
                    for _ in 0..<(1 + r.next(10)) {
                        time += Millis(r.next(3000)) - 1000
                        ls.append(Self.line(&r, time: time))
                    }
                    let b = batch(ls)
                    tasks.append(Task { try await host.ingest(b) })
                    // Admitted in this order (a bounded wait, as in `DecodeStageTests`).
                    queued += ls.count
                    while host.metrics.counters.queueDepthEvents < queued && clock.now - start < .seconds(120) { await Task.yield() }
                }
                gate.release.signal()
                try await held.value
                for t in tasks {
                    let x = try await t.value
                    duplicates += x.duplicates
                    late += x.lateLines.count
                    answers.append("ok \(x.received) \(x.applied) \(x.duplicates) \(x.lateLines) \(x.watermark)")
                }
                answers.append(contentsOf: try await host.read { s in Self.snapshot(s) })
            }
        }
        await host.drain()
        let tracked = try await host.perform { s in s.tracks.batches }
        return (answers, duplicates, late, tracked)
    }

    @Test(arguments: [UInt64(1), 2, 3])
    func sameAnswersWithAndWithoutTheStage(seed: UInt64) async throws {
        let with = try await drive(seed: seed, stage: true)
        let without = try await drive(seed: seed, stage: false)
        let firstDifference = zip(with.answers, without.answers).enumerated().first { $0.element.0 != $0.element.1 }?.offset
        #expect(with.answers == without.answers,
                "first difference at \(firstDifference ?? -1): \(firstDifference.map { "\(with.answers[$0]) / \(without.answers[$0])" } ?? "counts \(with.answers.count) / \(without.answers.count)")")
        // The run covered what tracking decides on: duplicates and late events are not
        // tracked, positions out of order are placed in their track.
        #expect(with.duplicates > 0)
        #expect(with.late > 0)
        for kind in ["at ", "track ", "attrs ", "reading ", "near [\""] {
            #expect(with.answers.contains { $0.hasPrefix(kind) }, "\(kind)")
        }
        #expect(with.tracked > 10)
        #expect(without.tracked == 0)
    }

    /// A read waits for the tracking of the batches applied before it: with the stage held,
    /// it does not finish; once the stage goes on, it sees the batch.
    @Test func aReadWaitsForTheTrackingOfAppliedBatches() async throws {
        let host = try await host(stage: true)
        let gate = Gate()
        try await host.perform { s in s.tracks.beforeBatch = { gate.release.wait() } }
        let r = try await host.ingest(batch([#"{"entity":"a","time":1000,"type":"position","lon":0.5,"lat":0.5}"#]))
        #expect(r.received == 1)
        let read = Task {
            let v = try await host.read { s in s.positions().map(\.0) }
            gate.set()
            return v
        }
        // A bounded wait for the read to finish, which it must not do while the stage is held.
        let clock = ContinuousClock(), start = clock.now
        while !gate.isSet && clock.now - start < .seconds(1) { await Task.yield() }
        #expect(!gate.isSet)
        gate.release.signal()
        #expect(try await read.value == ["a"])
    }
}
