import Benchmark
import TriplineCore
import TriplineTesting
import TriplineYAML

/// The workload: 10,000 polygon zones of 10-50 vertices, 100,000 entities,
/// 1,000,000 position events, generated once (seeded) and shared by the benchmarks.
struct Fixture: @unchecked Sendable {
    let workload: Workload
    let bytes: [UInt8]
    let events: [Event]
    let symbols: Symbols
    let rules: [Rule]

    static let shared: Fixture = {
        var cfg = Workload.Config()
        cfg.zones = 10_000
        cfg.entities = 100_000
        cfg.events = 1_000_000
        let w = Workload(cfg)
        let bytes = w.eventsNDJSON()
        var symbols = Symbols()
        for e in w.entities { _ = symbols.entities.intern(e.id) }
        var decoder = EventDecoder(file: "bench")
        var events: [Event] = []
        events.reserveCapacity(cfg.events)
        decoder.decodeLines(bytes, symbols: &symbols) { r, _ in if case .success(let ev) = r { events.append(ev) } }
        let rules = try! RuleFile.decode(Workload.geofenceRulesYAML, file: "rules").get()
        return Fixture(workload: w, bytes: bytes, events: events, symbols: symbols, rules: rules)
    }()
}

let benchmarks: @Sendable () -> Void = {
    let config = Benchmark.Configuration(
        metrics: [.wallClock, .throughput, .mallocCountTotal, .peakMemoryResident],
        scalingFactor: .mega,
        maxDuration: .seconds(30),
        maxIterations: 5
    )

    Benchmark("baseline: touch 1M decoded events", configuration: config) { benchmark in
        let f = Fixture.shared
        benchmark.startMeasurement()
        var acc = 0.0
        for e in f.events { acc += e.lon }
        blackHole(acc)
    }

    Benchmark("zone index lookup, 1M positions", configuration: config) { benchmark in
        let f = Fixture.shared
        let index = ZoneIndex(shapes: f.workload.zones.map(\.shape))
        var out: [Int32] = []
        benchmark.startMeasurement()
        for e in f.events { index.zones(coveringX: e.lon, y: e.lat, into: &out) }
        blackHole(out)
    }

    Benchmark("engine: index + enter/exit, 1M positions", configuration: config) { benchmark in
        let f = Fixture.shared
        let engine = Engine(zones: f.workload.zones, entities: f.workload.entities,
                            rules: f.rules.filter { $0.kind == .enter || $0.kind == .exit }, symbols: f.symbols)
        benchmark.startMeasurement()
        engine.ingest(contentsOf: f.events)
        engine.finish()
        benchmark.stopMeasurement()
        var out: [Alert] = []
        engine.drainAlerts(into: &out)
        blackHole(out)
    }

    Benchmark("parse NDJSON, 1M lines", configuration: config) { benchmark in
        let f = Fixture.shared
        var symbols = f.symbols
        var decoder = EventDecoder(file: "bench")
        benchmark.startMeasurement()
        var n = 0
        decoder.decodeLines(f.bytes, symbols: &symbols) { r, _ in if case .success = r { n += 1 } }
        blackHole(n)
    }
}
