import Foundation
import ArgumentParser
import TriplineCore

/// CPU time of the calling thread, in seconds.
func threadCPUSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

/// `tripline replay --partitions N`: the engine split as cluster mode splits it (docs/cluster.md),
/// on threads of one process.
///
/// - The reading thread decodes batches (`DecodeWorker`, as without the option).
/// - This thread is the gateway (`ClusterGateway`): the time core for every entity, which
///   decides duplicates, lateness and the watermark, and writes each accepted event's record
///   to its entity's partition (and positions to the cross-entity stream).
/// - N partition threads run the entity-keyed rules (`ClusterStage`), one more the gathering
///   and proximity rules over every position; each decodes the event texts of its records
///   again, with its own names.
/// - Their alerts meet in `AlertSink`, which writes them in canonical order (`ClusterAlerts.merge`)
///   up to the time every stage has completed.
struct SplitReplay {
    let partitions: Int
    let zones: [Zone]
    let entities: [EntityInfo]
    let rules: [Rule]
    let options: PipelineOptions
    let symbols: Symbols
    let eventsLabel: String
    let quiet: Bool

    func run(worker: DecodeWorker, until: Millis?, out: Output, lateOut: Output?, rejectsOut: Output?) throws {
        let split = ClusterRules.split(rules)
        let gateway = ClusterGateway(partitions: partitions, entities: entities, options: options, symbols: symbols,
                                     crossStream: !split.cross.isEmpty)
        precondition(gateway.timeCore.symbolCounts == symbols.counts, "the gateway interned names beyond Pipeline.initialSymbols")
        worker.begin(lookup: nil)
        let started = Date()
        let gatewayCPUStart = threadCPUSeconds()
        // The stages: partition engines when there are entity-keyed rules, then the cross-entity
        // engine when there are cross-entity rules. Each builds its pipeline (and zone index)
        // on its own thread.
        var stages: [StageThread] = []
        if !split.entity.isEmpty {
            for _ in 0..<partitions {
                stages.append(StageThread(index: stages.count) { [zones, entities, rules, options] in
                    ClusterStage(zones: zones, entities: entities, rules: rules, only: split.entity, options: options)
                })
            }
        }
        let partitionStages = stages.count
        if !split.cross.isEmpty {
            stages.append(StageThread(index: stages.count) { [zones, entities, rules, options] in
                ClusterStage(zones: zones, entities: entities, rules: rules, only: split.cross, options: options, positionsOnly: true)
            })
        }
        let sink = AlertSink(stages: stages.count, out: out)
        for s in stages {
            let t = Thread { s.run(sink: sink) }
            t.stackSize = 8 << 20
            t.start()
        }
        func send() {
            let parts = gateway.take()
            if partitionStages > 0 { for p in 0..<partitions { stages[p].input.put(parts[p]) } }
            if partitionStages < stages.count { stages[partitionStages].input.put(gateway.takeCross()) }
        }

        var failure: TriplineError?
        var rejected = 0
        var bytesRead = 0
        var progress = ReplayProgress(enabled: CLI.stderrIsTerminal && !quiet, started: started)
        while true {
            let batch = worker.queue.take()
            if let rejectsOut, !batch.rejectLines.isEmpty { rejectsOut.write(batch.rejectLines) }
            _ = gateway.offer(decoded: batch.decoded, text: batch.line) { i in
                ReplayReport.late(batch, i, watermark: gateway.watermark, to: lateOut, file: eventsLabel)
            }
            // Partitions that got no event of this batch learn the watermark too (their timers fire).
            gateway.markWatermark()
            send()
            rejected += batch.rejected
            bytesRead = batch.bytesRead
            progress.report(arrived: gateway.stats.arrived, bytesRead: bytesRead)
            if let f = batch.failure { failure = f }
            if batch.last { break }
        }
        worker.reader.close()
        progress.clear()
        // The end of the input, as `Pipeline.finish(until:)`: an advance to the largest time seen
        // (every buffered event applied, every group closed), or to `until` when later (not
        // after an invalid line, as without --partitions).
        var end = max(gateway.watermark, gateway.maxTime)
        if failure == nil, let until { end = max(end, until) }
        if end > .min { gateway.advance(until: end) }
        send()
        for s in stages { s.input.put(nil) }
        let gatewayCPU = threadCPUSeconds() - gatewayCPUStart
        for s in stages { s.done.wait() }
        worker.finished.wait()
        let elapsed = Date().timeIntervalSince(started)
        out.close()
        lateOut?.close()
        rejectsOut?.close()
        if let broken = stages.first(where: { $0.failure != nil }), let error = broken.failure {
            CLI.printErr("tripline: internal error: a stage of the split engine failed (\(error)); the alerts written are incomplete")
            throw ExitCode(1)
        }
        // Expiries, each rule once (every partition runs the entity-keyed ones).
        var expired: [String: Millis] = [:]
        for s in stages { for (id, at) in s.expired { expired[id] = min(at, expired[id] ?? .max) } }
        let byTime = rules.enumerated().compactMap { i, r in expired[r.id].map { (at: $0, i: i, id: r.id) } }.sorted { ($0.at, $0.i) < ($1.at, $1.i) }
        for e in byTime { ReplayReport.expired(e.id, at: e.at) }
        if let failure { throw ReplayReport.stopped(failure) }
        guard !quiet else { return }
        var per: [String: Int] = [:]
        for st in stages { for (id, n) in st.alertsPerRule { per[id, default: 0] += n } }
        ReplayReport.summary(gateway.stats, rejected: rejectsOut != nil ? rejected : nil, elapsed: elapsed, bytesRead: bytesRead,
                             alerts: rules.map { ($0.id, per[$0.id] ?? 0) },
                             suppressedByCooldown: stages.reduce(0) { $0 + $1.suppressedByCooldown })
        func secs(_ x: Double) -> String { String(format: "%.3f", x) }
        var stageLine = "  CPU seconds by stage: reading \(secs(worker.cpuSeconds)), gateway \(secs(gatewayCPU))"
        if partitionStages > 0 { stageLine += ", partitions " + stages[..<partitionStages].map { secs($0.cpuSeconds) }.joined(separator: " ") }
        if partitionStages < stages.count { stageLine += ", cross-entity \(secs(stages[partitionStages].cpuSeconds))" }
        stageLine += " (writing alerts \(secs(sink.cpuSeconds)) of these)"
        CLI.printErr(stageLine)
    }
}

/// One stage of the split engine on its own thread: applies the record buffers it is given
/// (nil ends it) and hands its completed alerts to the sink.
final class StageThread: @unchecked Sendable {
    let index: Int
    let make: @Sendable () -> ClusterStage
    let input = BoundedQueue<[UInt8]?>(capacity: 8)
    let done = DispatchSemaphore(value: 0)
    // Set when the thread ends (read after `done`).
    var failure: (any Error)?
    var cpuSeconds = 0.0
    var alertsPerRule: [String: Int] = [:]
    var expired: [(String, Millis)] = []
    var suppressedByCooldown = 0

    init(index: Int, make: @escaping @Sendable () -> ClusterStage) {
        self.index = index
        self.make = make
    }

    func run(sink: AlertSink) {
        let stage = make()
        var alerts: [NamedAlert] = []
        while let bytes = input.take() {
            // After a failure it goes on taking input (the gateway must not block), applying none.
            guard failure == nil else { continue }
            do {
                try stage.consume(bytes)
            } catch {
                failure = error
            }
            stage.pipeline.drainAlerts(into: &alerts)
            sink.push(index, alerts, through: stage.completeThrough)
            alerts.removeAll(keepingCapacity: true)
        }
        stage.pipeline.drainAlerts(into: &alerts)
        sink.push(index, alerts, through: .max)
        let p = stage.pipeline
        for (i, n) in p.alertsPerRule.enumerated() { alertsPerRule[p.rules[i].id, default: 0] += n }
        expired = p.expiredRules.map { (p.rules[$0.rule].id, $0.at) }
        suppressedByCooldown = p.stats.suppressedByCooldown
        cpuSeconds = threadCPUSeconds()
        done.signal()
    }
}

/// Where the stages' alerts meet (`StageAlertMerge`, shared between the stages' threads):
/// the alerts every stage has completed are written, in canonical order.
final class AlertSink: @unchecked Sendable {
    let lock = NSLock()
    var merge: StageAlertMerge
    let out: Output
    var text: [UInt8] = []
    /// CPU time spent merging and writing (on the stages' threads).
    var cpuSeconds = 0.0

    init(stages: Int, out: Output) {
        merge = StageAlertMerge(stages: stages)
        self.out = out
    }

    func push(_ stage: Int, _ alerts: [NamedAlert], through t: Millis) {
        lock.lock()
        defer { lock.unlock() }
        let start = threadCPUSeconds()
        defer { cpuSeconds += threadCPUSeconds() - start }
        merge.add(alerts, stage: stage)
        merge.completed(stage, through: t)
        let ready = merge.takeReady()
        guard !ready.isEmpty else { return }
        text.removeAll(keepingCapacity: true)
        for a in ready {
            text.append(contentsOf: a.line.utf8)
            text.append(10)
        }
        out.write(text)
    }
}
