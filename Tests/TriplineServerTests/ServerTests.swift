import Foundation
import OpenAPIKit
import Testing
import TriplineCore
import TriplineYAML
@testable import TriplineServer
import TriplineStore
import TriplineStoreFixtures

/// Token hashes, audit chain hashes and entity pseudonyms are spelled by `Tokens.hex`.
@Suite struct HexTests {
    @Test func twoLowerCaseDigitsPerByte() {
        let all = (0...255).map { UInt8($0) }
        #expect(Tokens.hex(all) == all.map { String(format: "%02x", $0) }.joined())
        #expect(Tokens.hex(Data([0xDE, 0xAD, 0xBE, 0xEF, 0x00, 0xFF]).prefix(5)) == "deadbeef00")
        #expect(Tokens.hex([UInt8]()) == "")
        #expect(Tokens.randomHex(16).utf8.allSatisfy { (48...57).contains($0) || (97...102).contains($0) })
        #expect(Tokens.randomHex(16).count == 32)
    }
}

@Suite struct OpenAPITests {
    /// OpenAPIKit decodes the served document as OpenAPI 3.1 and its validations pass (every
    /// reference resolves, operations have responses, path parameters are declared, ...);
    /// every request and response body has a schema that says more than "an object".
    @Test func openAPIKitDecodesAndValidatesTheDocument() throws {
        let doc = try JSONDecoder().decode(OpenAPI.Document.self, from: Data(OpenAPIDocument.json.utf8))
        try doc.validate()
        #expect(doc.paths.count == Set(TriplineHTTP.routes.map(\.path)).count)
        var bare: [String] = []
        for (path, item) in doc.paths {
            guard let item = item.pathItemValue else { continue }
            for op in item.endpoints {
                let name = "\(op.method.rawValue) \(path.rawValue)"
                if let body = op.operation.requestBody?.requestValue {
                    for (type, content) in body.content where Self.isBare(content.contentValue?.schema) { bare.append("\(name) request \(type.rawValue)") }
                }
                for (status, response) in op.operation.responses {
                    guard let r = response.responseValue else { continue }
                    for (type, content) in r.content where Self.isBare(content.contentValue?.schema) { bare.append("\(name) \(status.rawValue) \(type.rawValue)") }
                }
            }
        }
        #expect(bare.isEmpty, "bodies without a real schema: \(bare)")
    }

    static func isBare(_ schema: JSONSchema?) -> Bool {
        guard let s = schema else { return true }
        if case .object(_, let o) = s.value { return o.properties.isEmpty && o.additionalProperties == nil && s.description == nil }
        if case .fragment = s.value { return s.description == nil }
        return false
    }

    /// Every route the server answers is documented with the same roles, and every documented
    /// route is one the server answers.
    @Test func documentAndRoutesAgree() throws {
        let doc = try #require(try JSONSerialization.jsonObject(with: Data(OpenAPIDocument.json.utf8)) as? [String: Any])
        #expect((doc["openapi"] as? String)?.hasPrefix("3.1") == true)
        let paths = try #require(doc["paths"] as? [String: [String: Any]])
        var documented: [String: [String]] = [:]
        for (path, ops) in paths {
            for (method, op) in ops {
                let roles = ((op as? [String: Any])?["x-roles"] as? [String]) ?? []
                documented["\(method.uppercased()) \(path)"] = roles.sorted()
            }
        }
        var served: [String: [String]] = [:]
        for r in TriplineHTTP.routes { served["\(r.method) \(r.path)"] = r.roles.map(\.rawValue).sorted() }
        #expect(Set(documented.keys) == Set(served.keys), "documented only: \(Set(documented.keys).subtracting(served.keys)); served only: \(Set(served.keys).subtracting(documented.keys))")
        for (k, roles) in served { #expect(documented[k] == roles, "\(k): roles differ") }
    }
}

@Suite struct EngineHostTests {
    static let zones = #"{"type":"Feature","properties":{"id":"yard","category":"depot"},"geometry":{"type":"Polygon","coordinates":[[[0,0],[1,0],[1,1],[0,1],[0,0]]]}}"#
    static let rule = #"{"id":"in-yard","kind":"dwell","purpose":"p","owner":"o","severity":"low","match":{},"zones":{"category":"depot"},"min":"10s"}"#

    func lines(_ s: [String]) -> EventBatchInput {
        EventBatchInput(lines: s.map { Array($0.utf8) }, numbers: Array(1...s.count), unit: "line", file: "t")
    }

    func setUp(_ store: any TriplineStore) async throws -> EngineHost {
        let host = try EngineHost(store: store, options: HostOptions())
        host.start()
        try await host.changeCatalog { store, _ in
            try store.putCatalog(.zones, [CatalogItem(id: "yard", json: Self.zones, updatedAt: 0)])
            try store.appendRuleVersions([RuleVersion(rule: "in-yard", version: 1, json: Self.rule, deleted: false, createdAt: 0, createdBy: "t")])
        }
        return host
    }

    @Test(arguments: StoreKind.available)
    func invalidBatchIsRefusedWholeAndNothingIsLogged(kind: StoreKind) async throws {
        let f = try Fixture(kind)
        let store = f.store
        let host = try await setUp(store)
        await #expect(throws: IngestError.self) {
            _ = try await host.ingest(lines([#"{"entity":"a","time":1,"type":"ping"}"#, #"{"entity":"a","time":2,"type":"position"}"#]))
        }
        #expect(try store.logCount() == 0)
        let r = try await host.ingest(lines([#"{"entity":"a","time":1,"type":"ping"}"#]))
        #expect(r.received == 1)
        #expect(try store.logCount() == 1)
    }

    /// A host rebuilt from the store (a restart) continues exactly where the first left off,
    /// including the dwell timer pending at the moment of the restart.
    @Test(arguments: StoreKind.available)
    func restartContinuesPendingTimers(kind: StoreKind) async throws {
        let f = try Fixture(kind)
        let host = try await setUp(f.store)
        _ = try await host.ingest(lines([#"{"entity":"a","time":1000,"type":"position","lon":0.5,"lat":0.5}"#]))
        // The store opened again (SQLite, PostgreSQL: a new connection to the same data).
        let store = try f.reopen()
        let again = try EngineHost(store: store, options: HostOptions())
        again.start()
        _ = try await again.ingest(lines([#"{"entity":"b","time":20000,"type":"position","lon":5,"lat":5}"#]))
        _ = try await again.advance(until: 30_000)
        let alerts = try store.alerts(AlertQuery())
        #expect(alerts.map(\.line) == [#"{"rule":"in-yard","key":{"entity":"a","zone":"yard"},"state":"firing","time":"1970-01-01T00:00:11.000Z","evidence":["a#1"],"details":{"dwell_s":10}}"#])
        #expect(alerts.map(\.version) == [1])
    }

    /// A rule change keeps the window state of the rules it did not touch.
    @Test(arguments: StoreKind.available)
    func ruleChangeKeepsOtherRulesState(kind: StoreKind) async throws {
        let f = try Fixture(kind)
        let store = f.store
        let host = try await setUp(store)
        _ = try await host.ingest(lines([#"{"entity":"a","time":1000,"type":"position","lon":0.5,"lat":0.5}"#]))
        let other = #"{"id":"speed","kind":"speed","purpose":"p","owner":"o","severity":"low","match":{},"max_kmh":100}"#
        try await host.changeCatalog { store, _ in
            try store.appendRuleVersions([RuleVersion(rule: "speed", version: 1, json: other, deleted: false, createdAt: 0, createdBy: "t")])
        }
        _ = try await host.advance(until: 12_000)
        let alerts = try store.alerts(AlertQuery())
        #expect(alerts.map(\.rule) == ["in-yard"])
    }
}

/// Group commit is pipelined: the engine applies the next group while the store commits the
/// one before. A group applied on top of one the store refuses must be refused too, and the
/// engine put back to what the store holds.
@Suite struct PipelinedCommitTests {
    final class Gate: @unchecked Sendable {
        let lock = NSLock()
        var commits = 0
        let release = DispatchSemaphore(value: 0)
        var entered: Bool { lock.lock(); defer { lock.unlock() }; return commits > 0 }
        /// When each submitting task began running (by name).
        var startedAt: [String: ContinuousClock.Instant] = [:]
        func started(_ name: String) { lock.lock(); startedAt[name] = ContinuousClock().now; lock.unlock() }
        func startedAt(_ name: String) -> ContinuousClock.Instant? { lock.lock(); defer { lock.unlock() }; return startedAt[name] }
    }

    /// Yields until `done`, giving up 120 s after the task `name` began running (or after 15
    /// minutes if it never does). Measured from the task's start, not from the test's: in a
    /// full parallel run on 2 cores, long synchronous tests can hold the cooperative pool for
    /// minutes, so neither the task nor this loop may run meanwhile; a loop that counted that
    /// time gave up before the task had had a chance (once after 273 s).
    func wait(for name: String, _ gate: Gate, until done: () -> Bool) async {
        let clock = ContinuousClock(), start = clock.now
        while !done() {
            if let began = gate.startedAt(name) {
                if clock.now - began > .seconds(120) { return }
            } else if clock.now - start > .seconds(900) {
                return
            }
            await Task.yield()
        }
    }

    @Test func groupAppliedOnARefusedOneIsRefusedAndTheEngineIsRestored() async throws {
        let store = MemoryStore()
        let t = EngineHostTests()
        let host = try await t.setUp(store)
        let gate = Gate()
        // The first log commit waits for the test, then fails; later ones pass.
        store.beforeLogCommit = { _ in
            gate.lock.lock(); gate.commits += 1; let n = gate.commits; gate.lock.unlock()
            if n == 1 {
                gate.release.wait()
                throw StoreConflict("injected: the disk went away")
            }
        }
        let a = Task {
            gate.started("a")
            return try await host.ingest(t.lines([#"{"entity":"a","time":1000,"type":"position","lon":0.5,"lat":0.5}"#]))
        }
        // Bounded waits, not timings (see `wait`).
        await wait(for: "a", gate) { gate.entered }
        #expect(gate.entered)
        let b = Task {
            gate.started("b")
            return try await host.ingest(t.lines([#"{"entity":"b","time":2000,"type":"position","lon":0.5,"lat":0.5}"#]))
        }
        // The engine applies b's batch while a's group is still being committed.
        await wait(for: "b", gate) { host.metrics.counters.eventsReceived >= 2 }
        #expect(host.metrics.counters.eventsReceived == 2)
        gate.release.signal()
        for task in [a, b] {
            do {
                _ = try await task.value
                Issue.record("a batch of a refused group, or applied on top of one, was acknowledged")
            } catch IngestError.storage(let why) {
                #expect(why.contains("injected"))
            }
        }
        #expect(try store.logCount() == 0)
        // The engine holds neither a nor b: a enters now (a#1) and dwells from 3 s; b never entered.
        let r = try await host.ingest(t.lines([#"{"entity":"a","time":3000,"type":"position","lon":0.5,"lat":0.5}"#]))
        #expect(r.applied == 1)
        _ = try await host.advance(until: 20_000)
        await host.drain()
        #expect(try store.alerts(AlertQuery()).map(\.line) == [#"{"rule":"in-yard","key":{"entity":"a","zone":"yard"},"state":"firing","time":"1970-01-01T00:00:13.000Z","evidence":["a#1"],"details":{"dwell_s":10}}"#])
        #expect(try store.logCount() == 2)
    }
}

@Suite struct OverloadTests {
    /// With the engine busy (here: not started), batches queue up to the capacity; beyond it
    /// they are refused at once with `overloaded`, so memory stays bounded under a flood.
    @Test(arguments: StoreKind.available)
    func fullQueueRefusesAtOnce(kind: StoreKind) async throws {
        let f = try Fixture(kind)
        var options = HostOptions()
        options.queueCapacityEvents = 3
        let host = try EngineHost(store: f.store, options: options)
        let batch = EventBatchInput(lines: [Array(#"{"entity":"a","time":1,"type":"ping"}"#.utf8), Array(#"{"entity":"a","time":2,"type":"ping"}"#.utf8)],
                                    numbers: [1, 2], unit: "line", file: "t")
        // The first batch waits in the queue (nobody drains it yet).
        let first = Task { try await host.ingest(batch) }
        // Wait until it is queued (no wall-clock guess: the queue depth says so).
        while host.metrics.counters.queueDepthEvents < 2 { await Task.yield() }
        do {
            _ = try await host.ingest(batch)
            Issue.record("a batch beyond the queue capacity was taken")
        } catch IngestError.overloaded(let after) {
            #expect(after >= 1)
        }
        #expect(host.metrics.counters.overloaded == 1)
        host.start()
        let r = try await first.value
        #expect(r.received == 2)
    }
}

final class TestClock: @unchecked Sendable {
    private let lock = NSLock()
    private var t: Millis
    init(_ t: Millis) { self.t = t }
    var now: Millis { lock.lock(); defer { lock.unlock() }; return t }
    func set(_ v: Millis) { lock.lock(); t = v; lock.unlock() }
    func advance(_ ms: Millis) { lock.lock(); t += ms; lock.unlock() }
}

@Suite struct RetentionTests {
    static let day: Millis = 86_400_000

    func batch(_ entity: String, _ times: [Millis]) -> EventBatchInput {
        EventBatchInput(lines: times.map { Array(#"{"entity":"\#(entity)","time":\#($0),"type":"ping"}"#.utf8) },
                        numbers: Array(1...times.count), unit: "line", file: "t")
    }

    /// Events past retention go, newer ones stay, and ingestion carries on meanwhile.
    @Test(arguments: StoreKind.available)
    func deletesWhatIsPastRetentionWhileIngestionContinues(kind: StoreKind) async throws {
        let f = try Fixture(kind)
        let store = f.store
        let clock = TestClock(0)
        let host = try EngineHost(store: store, options: HostOptions(), wallClock: { clock.now })
        host.start()
        // One batch per day for 40 days, each received on its day.
        for d in 0..<40 {
            clock.set(Millis(d) * Self.day + 5000)
            _ = try await host.ingest(batch("m", [Millis(d) * Self.day, Millis(d) * Self.day + 1000]))
        }
        #expect(try store.logCount() == 80)
        clock.set(41 * Self.day)
        var settings = RetentionSettings()
        settings.chunk = 3
        let audit = AuditLog(store: store, secret: Array(repeating: 7, count: 32), clock: { clock.now })
        let retention = RetentionService(store: store, settings: settings, clock: { clock.now }, audit: audit)
        // Ingest concurrently with the deletion.
        let feeder = Task {
            for k in 0..<50 { _ = try await host.ingest(batch("n", [41 * Self.day + Millis(k)])) }
        }
        let (events, _, _) = try retention.runOnce()
        try await feeder.value
        // Days 0..10 are before 41d - 30d = 11d: 11 days x 2 events.
        #expect(events == 22)
        var times: [Millis] = []
        try store.forEachLogBatch { b in times.append(b.storedAt) }
        #expect(times.allSatisfy { $0 >= 11 * Self.day })
        #expect(try store.logCount() == 80 - 22 + 50)
        let rec = try #require(try store.auditHead())
        #expect(rec.action == "retention.delete")
        #expect(try AuditLog.verify(store: store).ok)
    }

    /// Pruning the oldest audit records keeps the chain verifiable from the first kept one.
    @Test(arguments: StoreKind.available)
    func auditRetentionKeepsTheChainVerifiable(kind: StoreKind) throws {
        let f = try Fixture(kind)
        let store = f.store
        let clock = TestClock(0)
        let audit = AuditLog(store: store, secret: Array(repeating: 1, count: 32), clock: { clock.now })
        for d in 0..<10 {
            clock.set(Millis(d) * Self.day)
            try audit.record(actor: "t", action: "test", target: "\(d)")
        }
        clock.set(800 * Self.day)
        var settings = RetentionSettings()
        settings.audit = 795 * Self.day
        let (_, _, pruned) = try RetentionService(store: store, settings: settings, clock: { clock.now }, audit: nil).runOnce()
        #expect(pruned == 5)
        let v = try AuditLog.verify(store: store)
        #expect(v.ok, "\(v.problem ?? "")")
        #expect(v.records == 5)
        // Tampering after pruning is still caught (the in-memory store lets a test edit a
        // record; the conformance suite tampers with the SQLite and PostgreSQL tables).
        if let memory = store as? MemoryStore {
            memory.withAuditRows { $0[2].actor = "x" }
            let bad = try AuditLog.verify(store: store)
            #expect(!bad.ok && bad.firstBad == 8)
        }
    }
}

@Suite struct WebhookTimingTests {
    /// Retry times follow the injected clock: the backoff is tested by moving the clock, not
    /// by waiting for it.
    @Test(arguments: StoreKind.available)
    func retriesAreDueWhenTheInjectedClockReachesTheBackoff(kind: StoreKind) async throws {
        let clock = TestClock(1_000_000)
        let f = try Fixture(kind)
        let store = f.store
        // Nothing listens on port 1: every attempt fails at once.
        try store.addReceiver(Receiver(id: "r1", url: "http://127.0.0.1:1/hook", secret: "whsec_" + Data(repeating: 7, count: 24).base64EncodedString(),
                                       minSeverity: nil, createdAt: 0))
        let a = StoredAlert(id: 1, rule: "r", version: 1, firing: true, time: 5, entity: "t1", zone: nil, pairA: nil, pairB: nil,
                            line: #"{"rule":"r","time":"1970-01-01T00:00:00.005Z"}"#, silence: nil, createdAt: 0)
        try store.commit(log: nil, alerts: [a], deliveries: [Delivery(receiver: "r1", alertId: 1, nextAttemptAt: clock.now, updatedAt: 0)])
        var settings = WebhookSettings()
        settings.backoffMs = 1000
        settings.maxAttempts = 3
        let d = WebhookDispatcher(store: store, metrics: Metrics(), settings: settings, clock: { clock.now })
        func state() throws -> Delivery { try #require(try store.deliveries(state: nil, receiver: nil, afterId: 0, limit: 10).first) }

        await d.flush(seconds: 5)
        // The first retry: 1 s later, +-20 % jitter.
        let first = try state()
        #expect(first.attempts == 1 && first.state == "pending")
        #expect((clock.now + 800...clock.now + 1200).contains(first.nextAttemptAt))
        // Not due yet: nothing is attempted, however often the dispatcher looks.
        await d.flush(seconds: 5)
        clock.advance(first.nextAttemptAt - 1 - clock.now)
        await d.flush(seconds: 5)
        #expect(try state().attempts == 1)
        clock.advance(1)
        await d.flush(seconds: 5)
        // The second failure doubles the backoff.
        let second = try state()
        #expect(second.attempts == 2 && (clock.now + 1600...clock.now + 2400).contains(second.nextAttemptAt))
        clock.advance(second.nextAttemptAt - clock.now)
        await d.flush(seconds: 5)
        #expect(try state().attempts == 3 && state().state == "dead")
        #expect(try state().lastError != nil)
    }
}

/// The decode stage (`HostOptions.decodeStage`) decodes batches ahead of the engine thread
/// into its own copy of the engine's names. A host with it and a host without it, driven
/// through the same operations, give the same answers, the same log and the same alerts,
/// including when the engine's names change under the stage: a catalog change (a new
/// engine), names interned on the engine thread, refused batches that interned names, and
/// batches decoded while the stage's decoder was already out of date.
@Suite struct DecodeStageTests {
    static let zones = #"{"type":"Feature","properties":{"id":"yard","category":"depot"},"geometry":{"type":"Polygon","coordinates":[[[0,0],[1,0],[1,1],[0,1],[0,0]]]}}"#
    static let rules = [
        #"{"id":"in-yard","kind":"dwell","purpose":"p","owner":"o","severity":"low","match":{},"zones":{"category":"depot"},"min":"10s"}"#,
        #"{"id":"hot","kind":"threshold","purpose":"p","owner":"o","severity":"low","match":{},"metric":"temp","above":5}"#,
        #"{"id":"busy","kind":"frequency","purpose":"p","owner":"o","severity":"low","match":{},"count":2,"window":"10m","event":{"type":"t1","attrs":{"k1":"v1"}}}"#,
        #"{"id":"payees","kind":"novelty","purpose":"p","owner":"o","severity":"low","match":{},"count":2,"window":"1m","lookback":"1h","counterpart":{"not_prefix":["c1"]}}"#,
    ]

    struct Rng {
        var s: UInt64
        mutating func next(_ n: Int) -> Int {
            s = s &* 6364136223846793005 &+ 1442695040888963407
            return Int((s >> 33) % UInt64(n))
        }
    }

    /// One event line, or a refused one (bad JSON, or too far in the future).
    static func line(_ r: inout Rng, time: Millis, refused: Bool) -> String {
        let e = "e\(r.next(12))"
        if refused {
            return r.next(2) == 0 ? #"{"entity":"\#(e)","time":"#
                : #"{"entity":"\#(e)-late","time":9000000000000,"type":"ping"}"#
        }
        let id = r.next(4) == 0 ? #","id":"x\#(r.next(30))""# : ""
        switch r.next(4) {
        case 0: return #"{"entity":"\#(e)","time":\#(time),"type":"position","lon":\#(Double(r.next(20)) / 10),"lat":0.5\#(id)}"#
        case 1: return #"{"entity":"\#(e)","time":\#(time),"type":"reading","metric":"\#(["temp", "hum", "m\(r.next(50))"][r.next(3)])","value":\#(r.next(10))\#(id)}"#
        case 2: return #"{"entity":"\#(e)","time":\#(time),"type":"t\#(r.next(3))","attrs":{"k\#(r.next(2))":"v\#(r.next(2))"}\#(id)}"#
        default: return #"{"entity":"\#(e)","time":\#(time),"type":"contact","counterpart":"c\#(r.next(300))"\#(id)}"#
        }
    }

    /// What a host answered to one batch.
    static func outcome(_ r: Result<IngestResult, any Error>) -> String {
        switch r {
        case .success(let x): return "ok \(x.received) \(x.applied) \(x.duplicates) \(x.lateLines) \(x.alerts) \(x.watermark)"
        case .failure(let e): return "refused \(e)"
        }
    }

    static func attempt(_ f: () async throws -> IngestResult) async -> String {
        do { return outcome(.success(try await f())) } catch { return outcome(.failure(error)) }
    }

    final class Gate: @unchecked Sendable {
        let release = DispatchSemaphore(value: 0)
    }

    /// Set when a batch's answer has come (a batch refused before the queue never counts in
    /// its depth), or when the engine thread is held.
    final class Answered: @unchecked Sendable {
        let lock = NSLock()
        var done = false
        func set() { lock.withLock { done = true } }
        var isSet: Bool { lock.withLock { done } }
    }

    /// Runs the seeded operations on a host; returns every answer, the alerts and the log size.
    func drive(seed: UInt64, stage: Bool) async throws -> (answers: [String], alerts: [String], logged: Int, ahead: Int, onEngine: Int, afterIntern: [Int]) {
        let store = MemoryStore()
        var options = HostOptions()
        options.decodeStage = stage
        let host = try EngineHost(store: store, options: options, wallClock: { 1_000_000_000 })
        host.start()
        try await host.changeCatalog { store, _ in
            try store.putCatalog(.zones, [CatalogItem(id: "yard", json: Self.zones, updatedAt: 0)])
            try store.appendRuleVersions(Self.rules.enumerated().map { i, json in
                RuleVersion(rule: ["in-yard", "hot", "busy", "payees"][i], version: 1, json: json, deleted: false, createdAt: 0, createdBy: "t")
            })
        }
        var r = Rng(s: seed)
        var answers: [String] = []
        var afterIntern: [Int] = []
        var time: Millis = 1000
        let clock = ContinuousClock()
        for round in 0..<60 {
            switch r.next(10) {
            case 0:
                // An entity upload: a catalog change, which builds a new engine.
                let id = "e\(r.next(60))"
                try await host.changeCatalog { store, _ in
                    try store.putCatalog(.entities, [CatalogItem(id: id, json: #"{"id":"\#(id)"}"#, updatedAt: Millis(round))])
                }
            case 1:
                // Names interned on the engine thread by something other than the stage. (A
                // batch first, so that a stage made after any catalog change is in place.)
                time += 1000
                let warm = batch([Self.line(&r, time: time, refused: false)])
                answers.append(await Self.attempt { try await host.ingest(warm) })
                let text = #"{"entity":"extra-\#(round)","time":1,"type":"extra-\#(round)"}"#
                try await host.perform { s in
                    _ = s.pipeline.decode(EventBatchInput(lines: [Array(text.utf8)], numbers: [1], unit: "line", file: "x"))
                }
                let before = host.metrics.counters.batchesDecodedOnEngine
                time += 1000
                let b = batch([Self.line(&r, time: time, refused: false)])
                answers.append(await Self.attempt { try await host.ingest(b) })
                afterIntern.append(host.metrics.counters.batchesDecodedOnEngine - before)
            case 2:
                time += Millis(r.next(20_000))
                let until = time
                answers.append(await Self.attempt { try await host.advance(until: until) })
            default:
                // A few batches admitted while the engine thread is held, in a known order,
                // so that several are decoded before any is applied.
                let gate = Gate()
                let holding = Answered()
                let held = Task { try await host.perform { _ in holding.set(); gate.release.wait() } }
                // The queue's depth is read once the engine thread is held: read before, it
                // could still fall as earlier batches were applied, and a wait below would
                // then never see the depth it expects.
                let holdStart = clock.now
                while !holding.isSet && clock.now - holdStart < .seconds(120) { await Task.yield() }
                var tasks: [Task<IngestResult, any Error>] = []
                var queued = host.metrics.counters.queueDepthEvents
                for _ in 0..<(1 + r.next(4)) {
                    let refused = r.next(8) == 0
                    var ls: [String] = []
                    for k in 0..<(1 + r.next(12)) {
                        time += Millis(r.next(3000)) - 500
                        ls.append(Self.line(&r, time: time, refused: refused && k == 2))
                    }
                    let b = batch(ls)
                    let answered = Answered()
                    tasks.append(Task {
                        defer { answered.set() }
                        return try await host.ingest(b)
                    })
                    // Each batch is queued before the next is sent (the order the answers are
                    // compared in), unless it was answered without being queued (refused by
                    // the decode stage). Before, such a batch was waited for until a bound
                    // counted from the drive's start ran out (120 s), after which no batch
                    // was waited for; a CI run then saw two batches change order.
                    let waitStart = clock.now
                    while host.metrics.counters.queueDepthEvents < queued + ls.count && clock.now - waitStart < .seconds(120) {
                        if answered.isSet { break }
                        await Task.yield()
                    }
                    if host.metrics.counters.queueDepthEvents >= queued + ls.count { queued += ls.count }
                }
                gate.release.signal()
                try await held.value
                for t in tasks { answers.append(Self.outcome(await t.result)) }
            }
        }
        _ = try await host.advance(until: time + 60_000)
        await host.drain()
        let c = host.metrics.counters
        var all = AlertQuery()
        all.limit = 1_000_000
        return (answers, try store.alerts(all).map(\.line), try store.logCount(), c.batchesDecodedAhead, c.batchesDecodedOnEngine, afterIntern)
    }

    func batch(_ s: [String]) -> EventBatchInput {
        EventBatchInput(lines: s.map { Array($0.utf8) }, numbers: Array(1...s.count), unit: "line", file: "t")
    }

    @Test(arguments: [UInt64(1), 2, 3])
    func sameAnswersAndAlertsWithAndWithoutTheStage(seed: UInt64) async throws {
        let with = try await drive(seed: seed, stage: true)
        let without = try await drive(seed: seed, stage: false)
        #expect(with.answers == without.answers)
        #expect(with.alerts == without.alerts)
        #expect(with.logged == without.logged)
        #expect(!with.alerts.isEmpty)
        #expect(with.answers.contains { $0.hasPrefix("refused") })
        // Both paths ran on the stage's host; only the engine's on the other.
        #expect(with.ahead > with.onEngine)
        #expect(with.onEngine > 0)
        #expect(without.ahead == 0)
        // After names interned on the engine thread, the stage's batches are still taken
        // (renumbered to the engine's names).
        #expect(!with.afterIntern.isEmpty)
        #expect(with.afterIntern.allSatisfy { $0 == 0 })
        // Every rule fired.
        for rule in ["in-yard", "hot", "busy", "payees"] {
            #expect(with.alerts.contains { $0.hasPrefix(#"{"rule":"\#(rule)""#) }, "\(rule)")
        }
    }
}
