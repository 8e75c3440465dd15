/// Rebuilding a gateway's time core from the records it published (a restarted or new API
/// node taking over as the gateway).
///
/// The gateway's state is a function of its arrivals and advances in order. Every accepted
/// event carries its accepted number n; every drop (late or duplicate arrival) and advance
/// carries (n, step): it came after event n, as the step-th drop or advance since. Ordered by
/// (n, step), the records give the arrival order back; re-offering it to a fresh time core
/// gives the same state, and the same decisions, which the rebuild checks.
///
/// Only the last publish of a gateway that died while publishing can be partly on the stream
/// (each publish waits for the one before to be acknowledged). Its missing accepted numbers are
/// holes: the rebuild names them (the caller publishes a `void` record for each, so that the
/// cross-entity stage stops waiting), re-offers the accepted events after the first hole
/// without checking their decisions (they were never acknowledged to a client, who re-sends
/// them), skips the drops there, and raises the watermark to the largest one stamped on the
/// stream.
extension ClusterGateway {
    public struct Rebuilt: Sendable {
        /// Events accepted, drops and advances re-offered.
        public var events = 0
        public var drops = 0
        public var advances = 0
        /// Accepted numbers missing from the stream (a publish cut short).
        public var holes: [UInt64] = []
        /// Records after the first hole (re-offered without checking).
        public var unchecked = 0
    }

    /// Records that accepted number `n` will never come (for the cross-entity stage).
    public func void(_ n: UInt64) {
        ClusterRecords.append(.void(n), to: &pending[0])
    }

    public struct RebuildMismatch: Error, CustomStringConvertible, Sendable {
        public var description: String
    }

    /// Collects records (any order across partitions) and rebuilds.
    public final class Rebuilder {
        var events: [UInt64: (text: ArraySlice<UInt8>, watermark: Millis)] = [:]
        var steps: [UInt64: [(step: UInt32, record: ClusterRecord)]] = [:]
        var maxAccepted: UInt64 = 0
        var maxStamped: Millis = .min

        public init() {}

        public func add(_ r: ClusterRecord) {
            switch r {
            case .event(let a, let w, _, let text):
                events[a] = (text, w)
                maxAccepted = max(maxAccepted, a)
                maxStamped = max(maxStamped, w)
            case .dropped(let after, let step, _):
                steps[after, default: []].append((step, r))
            case .advance(_, let after, let step), .catalog(let after, let step, _, _):
                // Every partition holds each advance and catalog change: keep one.
                if !(steps[after]?.contains { $0.step == step } ?? false) { steps[after, default: []].append((step, r)) }
            case .watermark(let w, _, _):
                maxStamped = max(maxStamped, w)
            case .void(let a):
                maxAccepted = max(maxAccepted, a)
            }
        }

        /// The gateway these records came from, with nothing pending. `accepted` sees each
        /// event accepted again (in the new gateway's numbering of entities).
        public func rebuild(partitions: Int, entities: [EntityInfo], options: PipelineOptions,
                            accepted: (Event) -> Void = { _ in }) throws -> (ClusterGateway, Rebuilt) {
            let gw = ClusterGateway(partitions: partitions, entities: entities, options: options)
            var report = Rebuilt()
            var checking = true
            var batch: [ArraySlice<UInt8>] = []
            var batchFirst: UInt64 = 1
            func flushBatch() throws {
                guard !batch.isEmpty else { return }
                let texts = EventTexts(lines: batch.map { Array($0) }, numbers: Array(Int(batchFirst)..<Int(batchFirst) + batch.count), unit: "accepted", file: "stream")
                let before = gw.accepted
                switch gw.offer(texts, accepted: accepted) {
                case .failure(let e):
                    throw RebuildMismatch(description: "the stream holds events the gateway cannot decode: \(e.errors.first.map(\.description) ?? "")")
                case .success(let o):
                    if checking && (o.duplicates > 0 || !o.late.isEmpty || gw.accepted != before + UInt64(batch.count)) {
                        throw RebuildMismatch(description: "re-offering accepted events \(batchFirst)...\(batchFirst + UInt64(batch.count) - 1) did not accept them all (\(o.duplicates) duplicates, \(o.late.count) late): the stream is not one gateway's")
                    }
                }
                report.events += batch.count
                batch.removeAll(keepingCapacity: true)
                _ = gw.take()
            }
            for n in 0...maxAccepted {
                if n > 0 {
                    if let e = events[n] {
                        if batch.isEmpty { batchFirst = n }
                        batch.append(e.text)
                        if !checking { report.unchecked += 1 }
                    } else {
                        try flushBatch()
                        report.holes.append(n)
                        checking = false
                    }
                }
                guard var list = steps[n] else { continue }
                try flushBatch()
                // Unchecked, a re-offered event may not have been accepted: the numbering
                // follows the stream's.
                if !checking { gw.accepted = n }
                list.sort { $0.step < $1.step }
                for (i, (step, r)) in list.enumerated() {
                    if step != UInt32(i + 1) { checking = false }
                    switch r {
                    case .advance(let t, _, _):
                        gw.pipeline.advance(until: t)
                        report.advances += 1
                    case .dropped(_, _, let text) where checking:
                        let texts = EventTexts(lines: [Array(text)], numbers: [Int(n)], unit: "after accepted", file: "stream")
                        let before = gw.accepted
                        guard case .success(let o) = gw.offer(texts), gw.accepted == before, o.duplicates + o.late.count == 1 else {
                            throw RebuildMismatch(description: "re-offering the arrival dropped after accepted event \(n) (step \(step)) accepted it: the stream is not one gateway's")
                        }
                        report.drops += 1
                    case .dropped:
                        report.unchecked += 1
                    default:
                        break
                    }
                }
                gw.step = UInt32(list.count)
            }
            try flushBatch()
            if !checking { gw.accepted = maxAccepted }
            if maxStamped > gw.pipeline.watermark { gw.pipeline.advance(until: maxStamped) }
            _ = gw.take()
            return (gw, report)
        }
    }
}
