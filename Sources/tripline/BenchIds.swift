import ArgumentParser
import Foundation
import TriplineCore

/// `tripline bench-ids`: event-id memory under a stream of unique ids (spec v1.2's
/// `dedup_window`). Events are decoded from NDJSON text, as in replay, and fed to the engine
/// with one enter rule; at checkpoints it prints the engine's id memory and the process RSS.
struct BenchIds: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-ids",
        abstract: "Measure event-id memory over a long stream of unique ids (build with -c release).")
    @Option(help: "Events in all.") var events = 20_000_000
    @Option(help: "Distinct entities.") var entities = 100_000
    @Option(name: .customLong("events-per-second"), help: "Event-time rate: events per second of event time.") var rate = 1000
    @Option(name: .customLong("dedup-window"), help: "The dedup window.") var dedupWindow = "1h"
    @Option(help: "Comma-separated event counts at which to report.") var checkpoints = "2000000,5000000,10000000,20000000"

    static func rssBytes() -> Int {
        guard let s = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
        let parts = s.split(separator: " ")
        return parts.count > 1 ? (Int(parts[1]) ?? 0) * Int(sysconf(Int32(_SC_PAGESIZE))) : 0
    }

    func run() throws {
        let window = try CLI.parseDuration(dedupWindow, option: "--dedup-window")
        let zone = Zone(id: "z", category: "c", shape: .polygons([Polygon(shell: Ring(points: [(0, 0), (1, 0), (1, 1), (0, 1), (0, 0)]), holes: [])]))
        let engine = Pipeline(zones: [zone], entities: [], rules: [Rule(id: "in", purpose: "p", owner: "o", parameters: .enter)],
                              options: PipelineOptions(dedupWindow: window))
        let marks = Set(checkpoints.split(separator: ",").compactMap { Int($0) })
        var line: [UInt8] = []
        line.reserveCapacity(160)
        let started = DispatchTime.now().uptimeNanoseconds
        var lastMark = started, lastCount = 0
        print("events  event-time  ids-remembered  ids-interned  id-bytes  engine-bytes  rss-MiB  events/s")
        for i in 1...events {
            line.removeAll(keepingCapacity: true)
            let t = Millis(i) * 1000 / Millis(rate)
            let x = (i % 7 == 0) ? "0.5" : "2.5"
            line += Array("{\"entity\":\"e\(i % entities)\",\"id\":\"ev-\(i)\",\"time\":\(t),\"type\":\"position\",\"lon\":\(x),\"lat\":0.5}".utf8)
            let r = line.withUnsafeBufferPointer { engine.decode($0, number: i) }
            guard case .success(let ev) = r else { throw ValidationError("bad generated line") }
            engine.ingest(ev)
            if i % 4096 == 0 {
                engine.discardAlerts()
                engine.compactIds()
            }
            if marks.contains(i) {
                let now = DispatchTime.now().uptimeNanoseconds
                let rateNow = Double(i - lastCount) / (Double(now - lastMark) / 1e9)
                lastMark = now; lastCount = i
                let s = engine.stateBytes
                let m = engine.idMemoryStats
                print(String(format: "%8ld  %10@  %14ld  %12ld  %10ld  %12ld  %7.1f  %8.0f", i, DurationText.format(t) as NSString, m.remembered,
                             m.interned, m.bytes, s.total, Double(Self.rssBytes()) / 1_048_576, rateNow))
            }
        }
    }
}
