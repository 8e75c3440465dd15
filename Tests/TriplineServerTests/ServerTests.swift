import Foundation
import Testing
import TriplineCore
import TriplineYAML
@testable import TriplineServer

@Suite struct OpenAPITests {
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
        EventBatchInput(lines: s.map { Array($0.utf8) }, lineNumbers: Array(1...s.count), unit: "line", file: "t")
    }

    func setUp(_ store: MemoryStore) async throws -> EngineHost {
        let host = try EngineHost(store: store, options: HostOptions())
        host.start()
        try await host.changeCatalog { store, _ in
            try store.putCatalog(.zones, [CatalogItem(id: "yard", json: Self.zones, updatedAt: 0)])
            try store.appendRuleVersions([RuleVersion(rule: "in-yard", version: 1, json: Self.rule, deleted: false, createdAt: 0, createdBy: "t")])
        }
        return host
    }

    @Test func invalidBatchIsRefusedWholeAndNothingIsLogged() async throws {
        let store = MemoryStore()
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
    @Test func restartContinuesPendingTimers() async throws {
        let store = MemoryStore()
        let host = try await setUp(store)
        _ = try await host.ingest(lines([#"{"entity":"a","time":1000,"type":"position","lon":0.5,"lat":0.5}"#]))
        let again = try EngineHost(store: store, options: HostOptions())
        again.start()
        _ = try await again.ingest(lines([#"{"entity":"b","time":20000,"type":"position","lon":5,"lat":5}"#]))
        _ = try await again.advance(until: 30_000)
        let alerts = try store.alerts(AlertQuery())
        #expect(alerts.map(\.line) == [#"{"rule":"in-yard","key":{"entity":"a","zone":"yard"},"state":"firing","time":"1970-01-01T00:00:11.000Z","evidence":["a#1"],"details":{"dwell_s":10}}"#])
        #expect(alerts.map(\.version) == [1])
    }

    /// A rule change keeps the window state of the rules it did not touch.
    @Test func ruleChangeKeepsOtherRulesState() async throws {
        let store = MemoryStore()
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
