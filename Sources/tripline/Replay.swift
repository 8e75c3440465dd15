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
        commandName: "replay",
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
    @Option(help: "Split the rules over threads as cluster mode splits them over nodes: the entity-keyed rules over N partition engines (by entity), gathering and proximity in one more engine, each on its own thread, behind one thread that reads and one that decides arrivals. The alerts are the same as without it. 1 to 64.")
    var partitions: Int?
    @Argument(help: "The events file (NDJSON), or '-' for stdin.")
    var events: String

    func validate() throws {
        if let partitions {
            guard (1...64).contains(partitions) else { throw ValidationError("--partitions must be between 1 and 64 (got \(partitions))") }
            guard !explain else { throw ValidationError("--partitions cannot be combined with --explain: run the explained replay without --partitions") }
        }
    }

    func run() throws {
        let sensitive = SensitiveTags(extra: inputs.sensitiveTags)
        let lateness = try CLI.parseDuration(allowedLateness, option: "--allowed-lateness")
        let dedup = try CLI.parseDuration(dedupWindow, option: "--dedup-window")
        let untilTime = try until.map { try CLI.parseTime($0, option: "--until") }
        // Entities and rules first: with them the names a pipeline starts with are known, and
        // the reading thread decodes events while the zones load and index (`DecodeWorker`).
        let entitiesLoaded = CLI.loadEntities(inputs.entities, sensitive: sensitive)
        let rulesLoaded = CLI.loadRules(inputs.rules, sensitive: sensitive)
        let options = PipelineOptions(allowedLateness: lateness, dedupWindow: dedup, sensitive: sensitive)
        let eventsLabel = events == "-" ? "<stdin>" : events
        let initial = Pipeline.initialSymbols(entities: entitiesLoaded.entities, rules: rulesLoaded.rules, options: options)
        var early: DecodeWorker?
        var openFailure: (any Error)?
        if entitiesLoaded.errors.isEmpty && rulesLoaded.errors.isEmpty {
            do {
                let w = try DecodeWorker(path: events, decoder: BatchDecoder(symbols: initial, file: eventsLabel), keepRejects: rejects != nil)
                let thread = Thread { w.run() }
                thread.stackSize = 8 << 20
                thread.start()
                early = w
            } catch {
                openFailure = error
            }
        }
        let zonesLoaded = CLI.loadZones(inputs.zones, sensitive: sensitive)
        let errors = zonesLoaded.errors + entitiesLoaded.errors + rulesLoaded.errors
        if !errors.isEmpty {
            errors.forEach(CLI.printErr)
            CLI.printErr("tripline: \(errors.count) error(s) in the input files; nothing was run")
            throw ExitCode(2)
        }
        if inputs.rules == nil { CLI.printErr("tripline: no --rules given: events are checked and counted, no alert can fire") }
        let out = try Output(path: output)
        let lateOut = try late.map { try Output(path: $0) }
        let rejectsOut = try rejects.map { try Output(path: $0) }
        if let openFailure { throw openFailure }
        guard let worker = early else { preconditionFailure("the reading thread starts whenever the inputs are valid") }
        if let partitions {
            try SplitReplay(partitions: partitions, zones: zonesLoaded.zones, entities: entitiesLoaded.entities, rules: rulesLoaded.rules,
                            options: options, symbols: initial, eventsLabel: eventsLabel, quiet: quiet)
                .run(worker: worker, until: untilTime, out: out, lateOut: lateOut, rejectsOut: rejectsOut)
            return
        }
        let pipeline = Pipeline(zones: zonesLoaded.zones, entities: entitiesLoaded.entities, rules: rulesLoaded.rules, options: options, symbols: initial)
        // The decoding thread's names continue from `initial`: the pipeline must not have added any.
        precondition(pipeline.symbolCounts == initial.counts, "the pipeline interned names beyond Pipeline.initialSymbols")
        // Two threads from here: the reading thread decodes batches (with the names it
        // interned) and, while this thread is behind, looks up the zones of their positions in
        // the pipeline's index (immutable); this thread applies them and writes the alerts.
        worker.begin(lookup: explain ? nil : pipeline.zoneLookup)
        var text: [UInt8] = []
        var failure: TriplineError?
        var rejected = 0
        var bytesRead = 0
        let started = Date()
        var progress = ReplayProgress(enabled: CLI.stderrIsTerminal && !quiet, started: started)
        var expiredReported = 0
        var rawByRef: [UInt64: [UInt8]] = [:]
        func drain() {
            text.removeAll(keepingCapacity: true)
            let n = explain ? pipeline.drainAlertLines(into: &text, evidence: { rawByRef[$0.raw] }) : pipeline.drainAlertLines(into: &text)
            if n > 0 { out.write(text) }
        }
        func reportExpiry() {
            let expired = pipeline.expiredRules
            while expiredReported < expired.count {
                let (r, at) = expired[expiredReported]
                ReplayReport.expired(pipeline.rules[r].id, at: at)
                expiredReported += 1
            }
        }
        while true {
            let batch = worker.queue.take()
            if let rejectsOut, !batch.rejectLines.isEmpty { rejectsOut.write(batch.rejectLines) }
            func reportLate(_ i: Int) { ReplayReport.late(batch, i, watermark: pipeline.watermark, to: lateOut, file: eventsLabel) }
            if explain {
                pipeline.adopt(batch.decoded)
                for (i, ev) in batch.decoded.events.enumerated() {
                    switch pipeline.ingest(ev) {
                    case .accepted(let ref): rawByRef[ref.raw] = Array(batch.line(i))
                    case .late: reportLate(i)
                    case .duplicate: break
                    }
                }
            } else {
                pipeline.ingest(batch.decoded, late: reportLate)
            }
            rejected += batch.rejected
            bytesRead = batch.bytesRead
            drain()
            if !explain { pipeline.compactIds() }
            reportExpiry()
            progress.report(arrived: pipeline.stats.arrived, bytesRead: bytesRead)
            if let f = batch.failure { failure = f }
            if batch.last { break }
        }
        worker.reader.close()
        progress.clear()
        if let failure {
            pipeline.finish(until: nil)
            drain()
            out.close()
            lateOut?.close()
            rejectsOut?.close()
            throw ReplayReport.stopped(failure)
        }
        pipeline.finish(until: untilTime)
        drain()
        reportExpiry()
        out.close()
        lateOut?.close()
        rejectsOut?.close()
        let elapsed = Date().timeIntervalSince(started)
        if !quiet {
            ReplayReport.summary(pipeline.stats, rejected: rejectsOut != nil ? rejected : nil, elapsed: elapsed, bytesRead: bytesRead,
                                 alerts: zip(pipeline.rules, pipeline.alertsPerRule).map { ($0.id, $1) },
                                 suppressedByCooldown: pipeline.stats.suppressedByCooldown)
        }
    }
}

/// What a replay prints on stderr (the same with and without `--partitions`).
enum ReplayReport {
    /// A late event: its line to the late output, or a notice on stderr.
    static func late(_ batch: EventBatch, _ i: Int, watermark: Millis, to lateOut: Output?, file: String) {
        if let lateOut {
            lateOut.write(Array(batch.line(i)) + [10])
        } else {
            CLI.printErr("tripline: late event (before the watermark \(EventTime.format(watermark))) at \(file):\(batch.lineNumbers[i]): \(String(decoding: batch.line(i), as: UTF8.self))")
        }
    }

    static func expired(_ rule: String, at: Millis) {
        CLI.printErr("tripline: rule \"\(rule)\" expired at \(EventTime.format(at)); it emits nothing from then on")
    }

    /// The replay stopped at an invalid line: the notice, and the exit status 2 to throw.
    static func stopped(_ failure: TriplineError) -> ExitCode {
        CLI.printErr(failure.description)
        CLI.printErr("tripline: stopped at the invalid line above (pass --rejects FILE to set invalid lines aside and go on); alerts up to that line were written")
        return ExitCode(2)
    }

    /// `rejected`: nil without `--rejects`. `alerts`: per rule id, in the rules' order.
    static func summary(_ s: EngineStats, rejected: Int?, elapsed: Double, bytesRead: Int, alerts: [(String, Int)], suppressedByCooldown: Int) {
        var summary = "tripline: \(s.arrived) events (\(s.applied) applied, \(s.duplicates) duplicate, \(s.late) late"
        if let rejected { summary += ", \(rejected) rejected" }
        summary += ") in \(String(format: "%.2f", elapsed)) s, \(Int(Double(s.arrived) / max(elapsed, 1e-9))) events/s, \(bytesRead) bytes"
        CLI.printErr(summary)
        for (id, n) in alerts { CLI.printErr("  rule \(id): \(n) alert(s)") }
        if suppressedByCooldown > 0 { CLI.printErr("  \(suppressedByCooldown) transition(s) suppressed by cooldown") }
    }
}

/// Events decoded by the reading thread, with their raw lines (for the late-events output).
final class EventBatch: @unchecked Sendable {
    let decoded = DecodedBatch(capacity: DecodeWorker.batchSize)
    /// The raw lines, back to back, and where each ends.
    var lines: [UInt8] = []
    var lineEnds: [Int] = []
    var lineNumbers: [Int] = []
    var failure: TriplineError?
    var rejected = 0
    /// The invalid lines set aside (with --rejects), as records for the rejects file.
    var rejectLines: [UInt8] = []
    var bytesRead = 0
    var last = false

    init() {
        // Room for lines of 128 bytes on average, so that a batch rarely regrows its text.
        lines.reserveCapacity(DecodeWorker.batchSize * 128)
        lineEnds.reserveCapacity(DecodeWorker.batchSize)
        lineNumbers.reserveCapacity(DecodeWorker.batchSize)
    }

    /// The raw line of event i.
    func line(_ i: Int) -> ArraySlice<UInt8> { lines[(i == 0 ? 0 : lineEnds[i - 1])..<lineEnds[i]] }
}

/// A bounded hand-off between two threads (the reading thread and the engine thread; with
/// `--partitions`, the gateway and each stage).
final class BoundedQueue<Item>: @unchecked Sendable {
    let condition = NSCondition()
    var items: [Item] = []
    let capacity: Int

    init(capacity: Int = 4) { self.capacity = capacity }

    func put(_ b: Item) {
        condition.lock()
        while items.count >= capacity { condition.wait() }
        items.append(b)
        condition.broadcast()
        condition.unlock()
    }

    /// Batches waiting (a hint: it may change at once).
    var count: Int {
        condition.lock()
        defer { condition.unlock() }
        return items.count
    }

    func take() -> Item {
        condition.lock()
        while items.isEmpty { condition.wait() }
        let b = items.removeFirst()
        condition.broadcast()
        condition.unlock()
        return b
    }
}

/// Reads and decodes event lines on its own thread, with a batch decoder (its own copy of
/// the names, shipped with each batch). It starts before the pipeline exists (while the zones
/// load), keeping up to `maxEarly` batches; `begin` then hands it the pipeline's zone lookup,
/// and from there on a batch is shipped with the zones of its positions when the engine
/// thread is behind (`locateAt`).
final class DecodeWorker: @unchecked Sendable {
    static let batchSize = 8192
    /// Batches decoded before `begin` (about 1.5 MB each, events and lines).
    static let maxEarly = 24
    /// The reading thread looks up a batch's zones only when at least this many batches wait
    /// for the engine thread (it is the slower one, and this one has time to spare); otherwise
    /// the batch goes as it is and the engine looks the zones up itself. Measured on the
    /// Benchmarks/peers workload: 2 balances the full suite (engine-bound, where the reading
    /// thread does nearly every lookup) and geofencing (reading-bound) better than 0 (always).
    static let locateAt = 2
    let reader: LineReader
    var decoder: BatchDecoder
    let keepRejects: Bool
    let queue = BoundedQueue<EventBatch>()
    let ready = NSCondition()
    var begun = false
    var lookup: ZoneLookup?
    /// CPU time of the reading thread, set when it ends.
    var cpuSeconds = 0.0
    /// Signalled when the reading thread ends (`cpuSeconds` is set).
    let finished = DispatchSemaphore(value: 0)

    init(path: String, decoder: BatchDecoder, keepRejects: Bool) throws {
        reader = try LineReader(path: path)
        self.decoder = decoder
        self.keepRejects = keepRejects
    }

    /// The pipeline is ready: batches go to `queue`, their positions located with `lookup`.
    func begin(lookup: ZoneLookup?) {
        ready.lock()
        self.lookup = lookup
        begun = true
        ready.broadcast()
        ready.unlock()
    }

    func run() {
        var held: [EventBatch] = []
        var going = false
        var lookup: ZoneLookup?
        func send(_ b: EventBatch) {
            if queue.count >= DecodeWorker.locateAt { lookup?.locate(b.decoded) }
            queue.put(b)
        }
        func hand(_ b: EventBatch) {
            if !going {
                ready.lock()
                if !begun && held.count + 1 < DecodeWorker.maxEarly && !b.last {
                    ready.unlock()
                    held.append(b)
                    return
                }
                while !begun { ready.wait() }
                lookup = self.lookup
                going = true
                ready.unlock()
                held.forEach(send)
                held = []
            }
            send(b)
        }
        var batch = EventBatch()
        // The batch being filled lives in locals (its arrays swapped out of and back into the
        // batch): appending through the batch object retained and released it, and its
        // decoded part, for every line.
        var events: [Event] = [], lines: [UInt8] = [], lineEnds: [Int] = [], lineNumbers: [Int] = []
        func swapArrays() {
            swap(&events, &batch.decoded.events)
            swap(&lines, &batch.lines)
            swap(&lineEnds, &batch.lineEnds)
            swap(&lineNumbers, &batch.lineNumbers)
        }
        swapArrays()
        func ship(last: Bool) {
            swapArrays()
            decoder.seal(batch.decoded)
            batch.bytesRead = reader.bytesRead
            batch.last = last
            hand(batch)
            batch = EventBatch()
            swapArrays()
        }
        defer {
            cpuSeconds = threadCPUSeconds()
            finished.signal()
        }
        reader.forEachLine { bytes, lineNo in
            if bytes.allSatisfy({ $0 == 32 || $0 == 9 }) { return true }
            switch decoder.decode(bytes, number: lineNo) {
            case .success(let ev):
                events.append(ev)
                lines.append(contentsOf: bytes)
                lineEnds.append(lines.count)
                lineNumbers.append(lineNo)
                if events.count >= DecodeWorker.batchSize { ship(last: false) }
                return true
            case .failure(let e):
                if keepRejects {
                    batch.rejected += 1
                    var rec: [UInt8] = Array(#"{"line":"#.utf8) + Array(String(lineNo).utf8) + Array(#","error":"#.utf8)
                    JSONText.appendString(e.description, to: &rec)
                    rec += Array(#","input":"#.utf8)
                    JSONText.appendString(String(decoding: bytes, as: UTF8.self), to: &rec)
                    rec += Array("}\n".utf8)
                    batch.rejectLines += rec
                    return true
                }
                batch.failure = e
                return false
            }
        }
        ship(last: true)
    }
}

/// A replay's progress line on a terminal, rewritten at most every half second.
struct ReplayProgress {
    let enabled: Bool
    let started: Date
    var last: Date

    init(enabled: Bool, started: Date) {
        self.enabled = enabled
        self.started = started
        last = started
    }

    mutating func report(arrived: Int, bytesRead: Int) {
        guard enabled else { return }
        let now = Date()
        guard now.timeIntervalSince(last) > 0.5 else { return }
        last = now
        let el = now.timeIntervalSince(started)
        FileHandle.standardError.write("\r\(arrived) events, \(Int(Double(arrived) / el)) events/s, \(bytesRead >> 20) MiB   ".data(using: .utf8)!)
    }

    /// Erases the line.
    func clear() {
        if enabled { FileHandle.standardError.write("\r\u{1B}[K".data(using: .utf8)!) }
    }
}
