import ArgumentParser
import Foundation
import TriplineCore
import TriplineTesting
import TriplineYAML

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure the engine on a generated workload (build with -c release).",
        discussion: "Prints events/s and ns/event for each stage, with ratios against baselines measured in the same run, and engine state bytes per entity."
    )

    @OptionGroup var workload: WorkloadOptions
    @Option(help: "Rule file to run (default: the built-in geofence and speed rules).") var rules: String?
    @Option(name: .customLong("generated-rules"), help: "Instead of a file, N generated rules cycling through 20 templates covering every kind.")
    var generatedRules: Int?
    @Flag(name: .customLong("short-absence"), help: "Generated absence rules of 5-20 minutes, shorter than most entities' gaps: almost every gap fires and resolves them (alert-volume stress).")
    var shortAbsence = false
    @Option(help: "With --generated-rules, keep only the rules of these templates (0-19, comma separated), to attribute cost.")
    var templates: String?
    @Option(help: "Run only these stages (comma separated: parse, index, geofence1, geofence, engine, e2e, load), e.g. for a profiler.")
    var only: String?
    @Option(name: .customLong("repeat"), help: "Repetitions of each stage; the best is reported.") var repeats: Int = 3
    @Flag(name: .customLong("v13"), help: "Also run the rules plus four rules of spec 1.3 (per-payee frequency, 24 h sum, distinct payees, negated sequence), interleaved with the rules alone, and print both.")
    var v13 = false

    static func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

    /// Runs the events through the engine in batches of 4,096, taking the alerts as they
    /// complete (as replay and serve do, per batch); returns how many there were.
    static func runEngine(_ engine: Pipeline, _ events: [Event]) -> Int {
        var count = 0
        events.withUnsafeBufferPointer { evs in
            var i = 0
            while i < evs.count {
                let j = min(evs.count, i + 4096)
                engine.ingest(contentsOf: evs[i..<j])
                count += engine.discardAlerts()
                i = j
            }
        }
        engine.finish()
        return count + engine.discardAlerts()
    }

    func run() throws {
        var opts = workload
        if opts.zones == 1000 && opts.entities == 10_000 && opts.events == 100_000 {
            opts.zones = 10_000; opts.entities = 100_000; opts.events = 1_000_000
        }
        let cfg = try opts.makeConfig()
        let w = try opts.make()
        print("generating \(cfg.zones) zones\(w.zones.count > cfg.zones ? " (+\(w.zones.count - cfg.zones) from --countries)" : ""), \(cfg.entities) entities, \(cfg.events) events (seed \(cfg.seed))")
        let bytes = w.eventsNDJSON()
        let ruleList: [Rule]
        if let n = generatedRules {
            let all = Workload.mixedRules(count: n, shortAbsence: shortAbsence)
            if let templates {
                let keep = Set(templates.split(separator: ",").compactMap { Int($0) })
                ruleList = all.enumerated().filter { keep.contains($0.offset % 20) }.map(\.element)
            } else {
                ruleList = all
            }
        } else {
            let ruleText = try rules.map { try CLI.readText($0, what: "rules") } ?? Workload.geofenceRulesYAML
            ruleList = try RuleFile.decode(ruleText, file: rules ?? "<built-in rules>").get()
        }
        print("\(ruleList.count) rules; events: \(Int(cfg.readingShare * 100))% readings, \(Int(cfg.contactShare * 100))% contacts, \(Int(cfg.customShare * 100))% custom, the rest positions")
        let n = Double(cfg.events)

        let stages = only.map { Set($0.split(separator: ",").map(String.init)) }
        /// Runs `setup` untimed, then times `body`; reports the best of the repetitions.
        func best<S>(_ label: String, stage: String = "", baseline: Double? = nil, setup: () -> S, _ body: (S) -> Void) -> Double {
            if let stages, !stage.isEmpty, !stages.contains(stage) { return baseline ?? 1 }
            var bestNs = UInt64.max
            for _ in 0..<max(1, repeats) {
                let s = setup()
                let t0 = Bench.now()
                body(s)
                bestNs = min(bestNs, Bench.now() - t0)
            }
            let ns = Double(bestNs)
            let perEvent = ns / n
            var line = "\(label.padding(toLength: 44, withPad: " ", startingAt: 0)) \(String(format: "%12.0f", n / (ns / 1e9))) events/s  \(String(format: "%8.1f", perEvent)) ns/event"
            if let baseline { line += String(format: "  (%.2fx the baseline's time)", perEvent / baseline) }
            print(line)
            return perEvent
        }
        func best(_ label: String, stage: String = "", baseline: Double? = nil, _ body: () -> Void) -> Double {
            best(label, stage: stage, baseline: baseline, setup: { () }, { _ in body() })
        }

        // Decode once, keeping the events for the in-process stages.
        var symbols = Symbols()
        var events: [Event] = []
        events.reserveCapacity(cfg.events)
        // Entities of the entities file are interned before events arrive (as in replay).
        var knownSymbols = Symbols()
        for e in w.entities { _ = knownSymbols.entities.intern(e.id) }
        let parseNs = best("parse NDJSON (byte decoder)", stage: "parse", setup: { knownSymbols }) { start in
            var syms = start
            var dec = EventDecoder(file: "bench")
            var count = 0
            dec.decodeLines(bytes, symbols: &syms) { r, _ in if case .success = r { count += 1 } }
            precondition(count == cfg.events)
        }
        do {
            var dec = EventDecoder(file: "bench")
            dec.decodeLines(bytes, symbols: &symbols) { r, _ in if case .success(let ev) = r { events.append(ev) } }
        }
        // Baseline: one pass over the decoded events touching each (memory traffic only).
        var sink = 0.0
        let baseNs = best("baseline: touch each decoded event") {
            var acc = 0.0
            for e in events { acc += e.lon + Double(e.time & 1) }
            sink += acc
        }
        let index = ZoneIndex(shapes: w.zones.map(\.shape))
        var scratch: [Int32] = []
        var hits = 0
        let indexNs = best("zone index lookup per position", stage: "index", baseline: baseNs) {
            hits = 0
            for e in events where e.isPosition {
                index.zones(coveringX: e.lon, y: e.lat, into: &scratch)
                hits += scratch.count
            }
        }
        // The same lookups as replay's reading thread and the server's decode stage make them:
        // by batch of 8,192 events, prefetching ahead (`ZoneLookup.locate`).
        if let lookup = Pipeline(zones: w.zones, entities: w.entities, rules: ruleList.filter { $0.kind == .enter || $0.kind == .exit },
                                 symbols: symbols).zoneLookup {
            let batches: [DecodedBatch] = stride(from: 0, to: events.count, by: 8192).map { start in
                let b = DecodedBatch()
                b.events = Array(events[start..<min(start + 8192, events.count)])
                return b
            }
            _ = best("zone lookup by batch, prefetching", stage: "index", baseline: baseNs) {
                for b in batches { lookup.locate(b) }
            }
        }
        // Brute force on a sample, scaled per event.
        let sample = min(events.count, 2000)
        let t0 = Bench.now()
        var scanHits = 0
        for e in events.prefix(sample) where e.isPosition { scanHits += index.zonesByScan(x: e.lon, y: e.lat).count }
        let scanPer = Double(Bench.now() - t0) / Double(sample)
        print("\("brute-force scan of every zone (sample)".padding(toLength: 44, withPad: " ", startingAt: 0)) \(String(format: "%12.0f", 1e9 / scanPer)) events/s  \(String(format: "%8.1f", scanPer)) ns/event  (index is \(String(format: "%.0f", scanPer / indexNs))x faster)")
        let geofenceOnly = ruleList.filter { $0.kind == .enter || $0.kind == .exit }
        _ = best("engine, enter/exit only, one event at a time", stage: "geofence1", baseline: indexNs,
                 setup: { Pipeline(zones: w.zones, entities: w.entities, rules: geofenceOnly, symbols: symbols) }) { engine in
            for e in events { engine.ingest(e) }
            engine.finish()
        }
        _ = best("engine in-process, enter/exit rules only", stage: "geofence", baseline: indexNs,
                 setup: { Pipeline(zones: w.zones, entities: w.entities, rules: geofenceOnly, symbols: symbols) }) { engine in
            engine.ingest(contentsOf: events)
            engine.finish()
            engine.discardAlerts()
        }
        var engineAlerts = 0
        var lastEngine: Pipeline?
        let engineNs = best("engine in-process, all rules", stage: "engine", baseline: indexNs,
                            setup: { Pipeline(zones: w.zones, entities: w.entities, rules: ruleList, symbols: symbols) }) { engine in
            engineAlerts = Bench.runEngine(engine, events)
            lastEngine = engine
        }
        _ = best("end to end: bytes -> decode -> engine -> NDJSON", stage: "e2e", baseline: engineNs,
                 setup: { Pipeline(zones: w.zones, entities: w.entities, rules: ruleList) }) { engine in
            var text: [UInt8] = []
            engine.decodeLines(bytes) { r, line in
                if case .success(let ev) = r { engine.ingest(ev) }
                if line & 0xFFFF == 0 {
                    _ = engine.drainAlertLines(into: &text)
                    text.removeAll(keepingCapacity: true)
                }
            }
            engine.finish()
            _ = engine.drainAlertLines(into: &text)
        }
        _ = parseNs
        let setupStart = Bench.now()
        _ = Pipeline(zones: w.zones, entities: w.entities, rules: ruleList)
        print("setup (zone index, rules, \(cfg.entities) registered entities): \(String(format: "%.1f", Double(Bench.now() - setupStart) / 1e6)) ms, not counted above")
        if stages == nil || stages!.contains("load") { benchZoneLoading(w) }
        if let e = lastEngine {
            let st = e.stateBytes
            print("engine state: \(st.perEntity) bytes/entity over \(st.entities) entities (\(st.total) bytes, zone memberships and dedup included)")
            print("engine state by part (bytes/entity): " + e.stateByPart.filter { $0.bytes > 0 }.map { "\($0.part) \($0.bytes / max(1, st.entities))" }.joined(separator: ", "))
            print("timers fired: \(e.stats.timersFired) (\(String(format: "%.2f", Double(e.stats.timersFired) / n)) per event)")
            let rs = e.ruleStateBytes
            var perKind: [String: Int] = [:]
            for (r, c) in e.alertsPerRule.enumerated() { perKind[e.rules[r].kind.rawValue, default: 0] += c }
            print("alerts by kind: " + perKind.sorted { $0.value > $1.value }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
            print("rule state after the run: \(rs) bytes (\(rs / max(1, st.entities)) bytes/entity, \(e.rules.count) rules, \(e.distinctDefinitions) distinct definitions evaluated)")
            let n = max(1, st.entities)
            print("rule state by kind (bytes/entity): " + e.ruleStateByKind.filter { $0.bytes > 0 }.map { "\($0.kind) \($0.bytes / n)" }.joined(separator: ", "))
        }
        print("zone hits: \(hits), alerts: \(engineAlerts), checksum \(Int(sink) & 1), scan hits \(scanHits)")
        if v13 { compareV13(zones: w.zones, entities: w.entities, rules: ruleList, events: events, symbols: symbols) }
    }

    /// Zone loading, step by step, from the workload's zones written as GeoJSON (what
    /// `replay --zones` and a server's zone upload read): the JSON document, the features
    /// (shapes read and validated), the zone index. Milliseconds, the best of the repetitions;
    /// replay pays this once, before its first event.
    func benchZoneLoading(_ w: Workload) {
        let text = Array(w.zonesGeoJSON().utf8)
        func ms(_ label: String, _ body: () -> Void) {
            var bestNs = UInt64.max
            for _ in 0..<max(1, repeats) {
                let t0 = Bench.now()
                body()
                bestNs = min(bestNs, Bench.now() - t0)
            }
            print("\(label.padding(toLength: 44, withPad: " ", startingAt: 0)) \(String(format: "%8.1f", Double(bestNs) / 1e6)) ms")
        }
        print("zone loading (\(w.zones.count) zones, \(text.count) bytes of GeoJSON):")
        ms("  UTF-8 check (String from the bytes)") { precondition(String(validating: text, as: UTF8.self) != nil) }
        var doc: DocNode?
        ms("  JSON document (DocNode tree)") {
            // As `ZoneCodec.decode` parses it: positions as pair nodes.
            doc = text.withUnsafeBufferPointer { try? JSONDocumentParser.parse($0, file: "zones", compactPairs: true).get() }
        }
        guard let doc else { return }
        var zones: [Zone] = []
        ms("  features: shapes read and validated") {
            zones = (try? ZoneCodec.decode(doc, file: "zones", sensitive: SensitiveTags()).get()) ?? []
        }
        precondition(zones.count == w.zones.count)
        ms("  polygon validation alone, one core") {
            for z in zones { if case .polygons(let parts) = z.shape { precondition(PolygonValidation.validate(parts) == nil) } }
        }
        ms("  zone index built") { _ = ZoneIndex(shapes: zones.map(\.shape)) }
        ms("  all of it (ZoneCodec.decode of the bytes)") {
            _ = text.withUnsafeBufferPointer { ZoneCodec.decode($0, file: "zones", sensitive: SensitiveTags()) }
        }
    }

    /// The engine with `rules` (A) and with `rules` plus `Workload.v13Rules` (B), runs
    /// interleaved A, B, A, B, ...; the best of each, and the state per entity after a run.
    func compareV13(zones: [Zone], entities: [EntityInfo], rules: [Rule], events: [Event], symbols: Symbols) {
        let sets = [("suite", rules), ("suite + 4 rules of spec 1.3", rules + Workload.v13Rules)]
        var bestNs = [UInt64.max, UInt64.max]
        var state: [(Int, Int, Int, [(kind: String, bytes: Int)])] = [(0, 0, 0, []), (0, 0, 0, [])]
        for _ in 0..<max(1, repeats) {
            for (k, set) in sets.enumerated() {
                let engine = Pipeline(zones: zones, entities: entities, rules: set.1, symbols: symbols)
                let t0 = Bench.now()
                let alerts = Bench.runEngine(engine, events)
                bestNs[k] = min(bestNs[k], Bench.now() - t0)
                let st = engine.stateBytes
                state[k] = (st.perEntity, engine.ruleStateBytes / max(1, st.entities), alerts, engine.ruleStateByKind)
            }
        }
        let n = Double(events.count)
        for (k, set) in sets.enumerated() {
            let ns = Double(bestNs[k])
            print("\(set.0.padding(toLength: 30, withPad: " ", startingAt: 0)) \(set.1.count) rules  \(String(format: "%10.0f", n / (ns / 1e9))) events/s  \(String(format: "%7.1f", ns / n)) ns/event  engine \(state[k].0) + rules \(state[k].1) bytes/entity  \(state[k].2) alerts")
        }
        print(String(format: "spec 1.3 rules: %.2fx the suite's time per event", Double(bestNs[1]) / Double(bestNs[0])))
        let n1 = Dictionary(uniqueKeysWithValues: state[1].3.map { ($0.kind, $0.bytes) })
        print("rule state of the larger run by kind (bytes in all): " + ["aggregate", "frequency", "sequence", "group texts", "timers"].map { "\($0) \(n1[$0] ?? 0)" }.joined(separator: ", "))
    }
}
