import Foundation
import Testing
import TriplineCore
import TriplineNotify
@testable import TriplineServer
import TriplineStore

struct Refused: Error {}

final class Flag: @unchecked Sendable {
    private let lock = NSLock()
    private var v = true
    func take() -> Bool { lock.withLock { let x = v; v = false; return x } }
}

@Suite struct NotificationRouterTests {
    func alert(_ id: Int64, _ entity: String) -> StoredAlert {
        StoredAlert(id: id, rule: "r", version: 1, firing: true, time: Millis(id) * 1000, entity: entity, zone: nil, pairA: nil, pairB: nil,
                    line: #"{"rule":"r","key":{"entity":"\#(entity)"},"state":"firing","time":"2026-03-02T00:00:0\#(id).000Z","evidence":[],"details":{}}"#,
                    silence: nil, createdAt: 0)
    }

    /// A flush whose store commit fails is not lost: the router starts again from the saved
    /// state, and the next step computes and stores the same notification.
    @Test func aRefusedFlushIsComputedAgainAndStored() async throws {
        let store = MemoryStore()
        let clock = TestClock(1_000_000)
        let host = try EngineHost(store: store, options: HostOptions(), wallClock: { clock.now })
        try store.addReceiver(Receiver(id: "wh_1", url: "http://127.0.0.1:9/", secret: "whsec_x", minSeverity: nil, createdAt: 0))
        let text = "route: {receiver: wh_1, group_wait: 0s, group_interval: 1m}"
        let rec = PolicyRecord(version: 1, text: text, createdAt: 0, createdBy: "t", sha256: PolicyFiles.sha256(text))
        try store.setMeta(NotifyMeta.version(1), String(decoding: try JSONEncoder().encode(rec), as: UTF8.self))
        try store.setMeta(NotifyMeta.current, "1")
        try store.setMeta(NotifyMeta.state, String(decoding: try JSONEncoder().encode(NotifierState()), as: UTF8.self))
        host.start()
        try store.commit(log: nil, alerts: [alert(1, "a"), alert(2, "b")], deliveries: [])
        let refuseOnce = Flag()
        store.beforeNotificationCommit = { if refuseOnce.take() { throw Refused() } }
        let router = NotificationRouter(store: store, host: host, clock: { clock.now })
        await #expect(throws: Refused.self) { try await router.step() }
        #expect(try store.deliveries(state: nil, receiver: nil, afterId: 0, limit: 10).isEmpty)
        clock.advance(250)
        try await router.step()
        let d = try store.deliveries(state: nil, receiver: nil, afterId: 0, limit: 10)
        #expect(d.count == 1)
        let body = try #require(d.first?.notification)
        #expect(body.contains(#""entity":"a""#) && body.contains(#""entity":"b""#))
        #expect(try store.meta(NotifyMeta.state)?.contains("\"cursor\":2") == true)
        await host.drain()
    }
}
