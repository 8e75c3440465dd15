import ArgumentParser
import Foundation
import TriplineCore

struct InputFiles: ParsableArguments {
    @Option(name: .long, help: "Zones: a GeoJSON FeatureCollection.")
    var zones: String?
    @Option(name: .long, help: "Entities: NDJSON, one {id, kind, tags} per line.")
    var entities: String?
    @Option(name: .long, help: "Rules: a YAML or JSON file {rules: [...]}.")
    var rules: String?
    @Option(name: .customLong("sensitive-tag"), help: "Extra tag/attribute key to refuse, beyond the built-in list (repeatable).")
    var sensitiveTags: [String] = []
}

struct Replay: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run rules over a file of events and write the alerts they produce (a backtest).",
        discussion: "Events are NDJSON, one per line, from a file or '-' for stdin. Alerts are written as NDJSON in canonical order. Exit status 2 means invalid input."
    )

    @OptionGroup var inputs: InputFiles
    @Option(name: .customLong("dedup-window"), help: "Remember an accepted event id for duplicate detection until the watermark passes its time plus this (0: until the watermark passes its time).")
    var dedupWindow = "24h"
    @Option(name: .customLong("allowed-lateness"), help: "Apply events up to this much out of order (e.g. 5s).")
    var allowedLateness: String = "0s"
    @Option(help: "Advance event time to this instant at the end, firing timers due by then.")
    var until: String?
    @Option(help: "Write alerts here instead of stdout.")
    var output: String?
    @Option(help: "Write late events (verbatim lines) here; by default they are listed on stderr.")
    var late: String?
    @Option(help: "Write invalid event lines here with their error and go on, instead of stopping.")
    var rejects: String?
    @Flag(help: "Do not print the summary on stderr.")
    var quiet = false
    @Flag(help: "Add to each alert an \"explain\" object: the rule, the window, a sentence, and the evidence events as received (keeps every event line in memory).")
    var explain = false
    @Argument(help: "The events file (NDJSON), or '-' for stdin.")
    var events: String

    func run() throws {
        let sensitive = SensitiveTags(extra: inputs.sensitiveTags)
        let lateness = try CLI.parseDuration(allowedLateness, option: "--allowed-lateness")
        let dedup = try CLI.parseDuration(dedupWindow, option: "--dedup-window")
        let untilTime = try until.map { try CLI.parseTime($0, option: "--until") }
        let loaded = CLI.loadInputs(zones: inputs.zones, entities: inputs.entities, rules: inputs.rules, sensitive: sensitive)
        if !loaded.errors.isEmpty {
            loaded.errors.forEach(CLI.printErr)
            CLI.printErr("tripline: \(loaded.errors.count) error(s) in the input files; nothing was run")
            throw ExitCode(2)
        }
        if inputs.rules == nil { CLI.printErr("tripline: no --rules given: events are checked and counted, no alert can fire") }
        let engine = Engine(zones: loaded.zones, entities: loaded.entities, rules: loaded.rules,
                            options: EngineOptions(allowedLateness: lateness, dedupWindow: dedup), symbols: Symbols(sensitive: sensitive))
        let out = try Output(path: output)
        let lateOut = try late.map { try Output(path: $0) }
        let rejectsOut = try rejects.map { try Output(path: $0) }
        // Two threads: one reads and decodes lines into batches (with the names it interned),
        // the other (this one) applies them to the engine and writes alerts.
        let eventsLabel = events == "-" ? "<stdin>" : events
        let worker = try DecodeWorker(path: events, symbols: engine.symbols, rejects: rejectsOut)
        let thread = Thread { worker.run() }
        thread.stackSize = 8 << 20
        thread.start()
        let encoder = AlertEncoder()
        var alerts: [Alert] = []
        var text: [UInt8] = []
        var failure: TriplineError?
        var rejected = 0
        var bytesRead = 0
        let started = Date()
        var lastProgress = started
        let progress = CLI.stderrIsTerminal && !quiet
        var expiredReported = 0
        var rawByRef: [UInt64: [UInt8]] = [:]
        func drain() {
            engine.drainAlerts(into: &alerts)
            if alerts.isEmpty { return }
            text.removeAll(keepingCapacity: true)
            for a in alerts {
                if explain {
                    encoder.append(a, engine: engine, to: &text) { out in Self.appendExplanation(a, engine: engine, raw: rawByRef, to: &out) }
                } else {
                    encoder.append(a, engine: engine, to: &text)
                }
            }
            out.write(text)
            alerts.removeAll(keepingCapacity: true)
        }
        func reportExpiry() {
            while expiredReported < engine.expiredRules.count {
                let (r, at) = engine.expiredRules[expiredReported]
                CLI.printErr("tripline: rule \"\(engine.rules[Int(r)].id)\" expired at \(EventTime.format(at)); it emits nothing from then on")
                expiredReported += 1
            }
        }
        while true {
            let batch = worker.queue.take()
            // Entity ids and names agree with the decoder's (same order); event ids are the
            // decoder's per batch and are interned here, where the dedup window frees them.
            engine.symbols.entities.apply(batch.symbols.0)
            engine.symbols.names.apply(batch.symbols.2)
            let idMap = engine.symbols.eventIds.internAll(batch.symbols.1)
            if !idMap.isEmpty {
                for i in batch.events.indices where batch.events[i].givenId >= 0 {
                    batch.events[i].givenId = idMap[Int(batch.events[i].givenId)]
                }
            }
            func reportLate(_ i: Int) {
                let raw = batch.lines[(i == 0 ? 0 : batch.lineEnds[i - 1])..<batch.lineEnds[i]]
                if let lateOut {
                    lateOut.write(Array(raw) + [10])
                } else {
                    CLI.printErr("tripline: late event (before the watermark \(EventTime.format(engine.watermark))) at \(eventsLabel):\(batch.lineNumbers[i]): \(String(decoding: raw, as: UTF8.self))")
                }
            }
            if explain {
                for (i, ev) in batch.events.enumerated() {
                    switch engine.ingest(ev) {
                    case .accepted(let ref): rawByRef[ref.raw] = Array(batch.lines[(i == 0 ? 0 : batch.lineEnds[i - 1])..<batch.lineEnds[i]])
                    case .late: reportLate(i)
                    case .duplicate: break
                    }
                }
            } else {
                engine.ingest(contentsOf: batch.events, late: reportLate)
            }
            rejected += batch.rejected
            bytesRead = batch.bytesRead
            drain()
            if !explain { engine.compactIds() }
            reportExpiry()
            if progress {
                let now = Date()
                if now.timeIntervalSince(lastProgress) > 0.5 {
                    lastProgress = now
                    let el = now.timeIntervalSince(started)
                    FileHandle.standardError.write("\r\(engine.stats.arrived) events, \(Int(Double(engine.stats.arrived) / el)) events/s, \(bytesRead >> 20) MiB   ".data(using: .utf8)!)
                }
            }
            if let f = batch.failure { failure = f }
            if batch.last { break }
        }
        worker.reader.close()
        if progress { FileHandle.standardError.write("\r\u{1B}[K".data(using: .utf8)!) }
        if let failure {
            engine.finish(until: nil)
            drain()
            out.close()
            lateOut?.close()
            rejectsOut?.close()
            CLI.printErr(failure.description)
            CLI.printErr("tripline: stopped at the invalid line above (pass --rejects FILE to set invalid lines aside and go on); alerts up to that line were written")
            throw ExitCode(2)
        }
        engine.finish(until: untilTime)
        drain()
        reportExpiry()
        out.close()
        lateOut?.close()
        rejectsOut?.close()
        let elapsed = Date().timeIntervalSince(started)
        if !quiet {
            let s = engine.stats
            var summary = "tripline: \(s.arrived) events (\(s.applied) applied, \(s.duplicates) duplicate, \(s.late) late"
            if rejectsOut != nil { summary += ", \(rejected) rejected" }
            summary += ") in \(String(format: "%.2f", elapsed)) s, \(Int(Double(s.arrived) / max(elapsed, 1e-9))) events/s, \(bytesRead) bytes"
            CLI.printErr(summary)
            let per = engine.alertsPerRule
            for (i, r) in engine.rules.enumerated() {
                CLI.printErr("  rule \(r.id): \(per[i]) alert(s)")
            }
            if s.suppressedByCooldown > 0 { CLI.printErr("  \(s.suppressedByCooldown) transition(s) suppressed by cooldown") }
        }
    }
}

extension Replay {
    /// `,"explain":{...}` for `--explain`: the rule as JSON, the window, a sentence, the evidence events.
    static func appendExplanation(_ a: Alert, engine: Engine, raw: [UInt64: [UInt8]], to out: inout [UInt8]) {
        let rule = engine.rules[Int(a.rule)]
        var numbers: [String: String] = [:]
        for (k, v) in a.details {
            switch v {
            case .null: numbers[k] = "infinite"
            case .number(let d):
                var b: [UInt8] = []
                JSONText.appendNumber(d, to: &b)
                numbers[k] = String(decoding: b, as: UTF8.self)
            case .strings(let ss):
                numbers[k] = ss.joined(separator: ", ")
            }
        }
        var keyText = ""
        if a.key.entity >= 0 { keyText = engine.symbols.entities.string(a.key.entity) }
        if a.key.pairA >= 0 {
            let (x, y) = engine.sortedPair(a.key)
            keyText = engine.symbols.entities.string(x) + " and " + engine.symbols.entities.string(y)
        }
        if keyText.isEmpty && a.key.zone >= 0 { keyText = "zone " + engine.zones[Int(a.key.zone)].id }
        let ex = AlertExplanation(rule: rule, firing: a.firing, time: a.time, keyText: keyText, details: numbers)
        out += Array(#","explain":{"rule":"#.utf8)
        out += Array(RuleEncoder.encode(rule).utf8)
        out += Array(#","window":"#.utf8)
        if let f = ex.windowFrom, let t = ex.windowTo {
            out += Array(#"{"from_exclusive":""#.utf8)
            EventTime.append(f, to: &out)
            out += Array(#"","to":""#.utf8)
            EventTime.append(t, to: &out)
            out += Array(#""}"#.utf8)
        } else {
            out += Array("null".utf8)
        }
        out += Array(#","sentence":"#.utf8)
        JSONText.appendString(ex.sentence, to: &out)
        out += Array(#","evidence_events":["#.utf8)
        for (i, r) in a.evidence.enumerated() {
            if i > 0 { out.append(44) }
            if let line = raw[r.raw] { out += line } else { out += Array("null".utf8) }
        }
        out += Array("]}".utf8)
    }
}

/// Events decoded by the reading thread, with the names it interned meanwhile.
final class EventBatch: @unchecked Sendable {
    var events: [Event] = []
    /// The raw lines, back to back (for the late-events output), and where each ends.
    var lines: [UInt8] = []
    var lineEnds: [Int] = []
    var lineNumbers: [Int] = []
    var symbols = (InternerDelta(firstId: 0, bytes: [], ends: []), InternerDelta(firstId: 0, bytes: [], ends: []), InternerDelta(firstId: 0, bytes: [], ends: []))
    var failure: TriplineError?
    var rejected = 0
    var bytesRead = 0
    var last = false

    init() {
        events.reserveCapacity(DecodeWorker.batchSize)
        lineEnds.reserveCapacity(DecodeWorker.batchSize)
        lineNumbers.reserveCapacity(DecodeWorker.batchSize)
    }
}

/// A bounded hand-off between the reading thread and the engine thread.
final class BatchQueue: @unchecked Sendable {
    let condition = NSCondition()
    var items: [EventBatch] = []
    let capacity = 4

    func put(_ b: EventBatch) {
        condition.lock()
        while items.count >= capacity { condition.wait() }
        items.append(b)
        condition.broadcast()
        condition.unlock()
    }

    func take() -> EventBatch {
        condition.lock()
        while items.isEmpty { condition.wait() }
        let b = items.removeFirst()
        condition.broadcast()
        condition.unlock()
        return b
    }
}

/// Reads and decodes event lines on its own thread. It interns names into its own copy of
/// the engine's symbols and ships what it added with each batch, so ids agree.
final class DecodeWorker: @unchecked Sendable {
    static let batchSize = 8192
    let reader: LineReader
    var decoder: EventDecoder
    var symbols: Symbols
    let rejects: Output?
    let queue = BatchQueue()

    init(path: String, symbols: Symbols, rejects: Output?) throws {
        reader = try LineReader(path: path)
        decoder = EventDecoder(file: path == "-" ? "<stdin>" : path)
        self.symbols = symbols
        self.rejects = rejects
    }

    func run() {
        var counts = symbols.counts
        var batch = EventBatch()
        func ship(last: Bool) {
            batch.symbols = symbols.delta(since: counts)
            // Event ids start afresh in every batch: the engine interns them itself.
            symbols.eventIds = Interner(capacity: 1 << 10)
            counts = symbols.counts
            batch.bytesRead = reader.bytesRead
            batch.last = last
            queue.put(batch)
            batch = EventBatch()
        }
        reader.forEachLine { bytes, lineNo in
            if bytes.allSatisfy({ $0 == 32 || $0 == 9 }) { return true }
            switch decoder.decode(bytes, line: lineNo, symbols: &symbols) {
            case .success(let ev):
                batch.events.append(ev)
                batch.lines.append(contentsOf: bytes)
                batch.lineEnds.append(batch.lines.count)
                batch.lineNumbers.append(lineNo)
                if batch.events.count >= DecodeWorker.batchSize { ship(last: false) }
                return true
            case .failure(let e):
                if let rejects {
                    batch.rejected += 1
                    var rec: [UInt8] = Array(#"{"line":"#.utf8) + Array(String(lineNo).utf8) + Array(#","error":"#.utf8)
                    JSONText.appendString(e.description, to: &rec)
                    rec += Array(#","input":"#.utf8)
                    JSONText.appendString(String(decoding: bytes, as: UTF8.self), to: &rec)
                    rec += Array("}\n".utf8)
                    rejects.write(rec)
                    return true
                }
                batch.failure = e
                return false
            }
        }
        ship(last: true)
    }
}
