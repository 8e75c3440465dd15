import Foundation
import TriplineCore
import TriplineNATS
import TriplineStore

/// A JetStream stream read as an event source (`tripline serve --nats-input`).
public struct NATSInputSettings: Sendable {
    public var url: String
    public var stream: String
    /// Subject filter (wildcards allowed).
    public var subject: String
    public init(url: String, stream: String, subject: String) {
        self.url = url
        self.stream = stream
        self.subject = subject
    }
}

/// Reads a JetStream stream in order and ingests its messages as events (each message an
/// event's JSON, or several NDJSON lines), at least once: the stream sequence of the last
/// message whose events are committed is kept in the store (meta), and after a restart reading
/// resumes after it. A crash between the commit and that record re-reads some messages; their
/// events are dropped as duplicates by id (events should carry ids). A message holding an
/// invalid event is skipped, counted and reported with its sequence; the rest of its batch is
/// applied.
public final class NATSEventInput: EventInput, @unchecked Sendable {
    let settings: NATSInputSettings
    let store: any TriplineStore

    var metaKey: String { "input.nats.\(settings.stream).\(settings.subject)" }

    public init(settings: NATSInputSettings, host: EngineHost, store: any TriplineStore) {
        self.settings = settings
        self.store = store
        super.init(host: host, name: "nats input")
    }

    override func session() throws {
        let conn = try NATSConnection(servers: [settings.url], name: "tripline-input", timeout: .seconds(5))
        let last = UInt64(try store.meta(metaKey) ?? "0") ?? 0
        let reader = try conn.orderedReader(stream: settings.stream, subject: settings.subject, startSequence: last + 1)
        connected()
        while !isStopped {
            // A batch: what arrives within 200 ms of the first message, at most 1,000.
            guard let first = try reader.next(timeout: .milliseconds(200)) else { continue }
            var msgs = [first]
            while msgs.count < 1000, let m = try reader.next(timeout: .milliseconds(5)) { msgs.append(m) }
            try ingest(msgs)
        }
    }

    /// Ingests the messages' events, then records the last sequence.
    func ingest(_ msgs: [StreamMessage]) throws {
        try MessageIngest(host: host, source: "nats \(settings.stream)").ingest(msgs.map(\.data), describe: { "message \(msgs[$0].sequence) on \(msgs[$0].subject)" },
                                                                              committed: { try self.store.setMeta(self.metaKey, String(msgs[$0].sequence)) },
                                                                              rejected: { self.rejected += 1 })
    }
}

/// An event source on its own thread (its client blocks), ingesting through the engine host
/// like `POST /v1/events`; `session()` runs one connection, and is run again after a failure
/// with a growing pause (0.2 s doubling to 5 s) until `stop()`.
public class EventInput: @unchecked Sendable {
    let host: EngineHost
    let name: String
    private let lock = NSLock()
    private var stopped = false
    private var backoff = 0.2
    public internal(set) var rejected = 0

    init(host: EngineHost, name: String) {
        self.host = host
        self.name = name
    }

    public func stop() { lock.withLock { stopped = true } }
    var isStopped: Bool { lock.withLock { stopped } }

    func log(_ s: String) { FileHandle.standardError.write("tripline: \(name): \(s)\n".data(using: .utf8)!) }

    /// One connection's work (overridden); returns when stopped, throws when the connection fails.
    func session() throws {}

    /// A session is established: the next failure pauses briefly again.
    func connected() { backoff = 0.2 }

    public func run() async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let t = Thread { [self] in
                while !isStopped {
                    do {
                        try session()
                    } catch {
                        if isStopped { break }
                        log("\(error); reconnecting in \(backoff) s")
                        Thread.sleep(forTimeInterval: backoff)
                        backoff = min(5, backoff * 2)
                    }
                }
                c.resume()
            }
            t.name = "tripline-" + name.replacingOccurrences(of: " ", with: "-")
            t.start()
        }
    }
}

/// Ingests a batch of messages (each one event's JSON or NDJSON lines) through the engine
/// host: all together, or message by message when some hold invalid events (those are skipped
/// and reported). Blocks the calling thread (the inputs' own threads).
struct MessageIngest {
    let host: EngineHost
    let source: String

    private func log(_ s: String) { FileHandle.standardError.write("tripline: \(source): \(s)\n".data(using: .utf8)!) }

    /// Calls an async function from this thread and waits for it.
    private func wait<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) -> Result<T, any Error> {
        let sem = DispatchSemaphore(value: 0)
        let box = ResultBox<T>()
        Task {
            do { box.value = .success(try await body()) } catch { box.value = .failure(error) }
            sem.signal()
        }
        sem.wait()
        return box.value!
    }

    /// `committed(i)`: message i's events (and every one before it) are durable.
    func ingest(_ payloads: [[UInt8]], describe: (Int) -> String, committed: (Int) throws -> Void, rejected: () -> Void) throws {
        func lines(_ b: [UInt8]) -> [UInt8] { b.last == 10 ? b : b + [10] }
        func submit(_ bytes: [UInt8]) -> Result<IngestResult, any Error> {
            switch EventTexts.split(bytes, file: source) {
            case .failure(let e): return .failure(IngestError.invalid([e]))
            case .success(let input):
                if input.count == 0 { return .success(IngestResult()) }
                return wait { [host] in try await host.ingest(input) }
            }
        }
        guard !payloads.isEmpty else { return }
        while true {
            switch submit(payloads.flatMap(lines)) {
            case .success:
                try committed(payloads.count - 1)
                return
            case .failure(IngestError.invalid):
                for (i, p) in payloads.enumerated() {
                    while true {
                        switch submit(lines(p)) {
                        case .success: break
                        case .failure(IngestError.invalid(let errs)):
                            rejected()
                            log("\(describe(i)) is refused: \(errs.map(\.description).joined(separator: "; "))")
                        case .failure(IngestError.overloaded(let after)):
                            Thread.sleep(forTimeInterval: Double(after))
                            continue
                        case .failure(let e):
                            throw e
                        }
                        break
                    }
                    try committed(i)
                }
                return
            case .failure(IngestError.overloaded(let after)):
                Thread.sleep(forTimeInterval: Double(after))
            case .failure(let e):
                throw e
            }
        }
    }
}

final class ResultBox<T>: @unchecked Sendable {
    var value: Result<T, any Error>?
}
