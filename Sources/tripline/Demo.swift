import ArgumentParser
import Foundation
import TriplineCore
import TriplineSQLite
import TriplineStore
import TriplineServer
import TriplineTesting

/// `tripline demo`: the server on a temporary data folder with a simulated estate streaming
/// live events (event time = the wall clock), sample zones and one rule of every kind.
struct Demo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Start the server with a simulated estate (trucks, vessels, meters, accounts, sensors) and a rule of every kind.",
        discussion: "Prints the URL and an admin token. Alerts begin within a minute. The data folder is temporary unless --data is given."
    )
    @Option(help: "Address to listen on.") var host = "127.0.0.1"
    @Option(help: "Port to listen on (0: any free port).") var port = 8080
    @Option(help: "Data folder (default: a new temporary folder).") var data: String?
    @Option(help: "Simulated trucks (the other fleets scale with it).") var trucks = 40
    @Option(help: "Seconds between simulation ticks.") var tick = 1.0

    func run() async throws {
        let dir = data ?? (NSTemporaryDirectory() as NSString).appendingPathComponent("tripline-demo-\(Tokens.randomHex(4))")
        do {
            ServerOptions.lock = try DataFolderLock(directory: dir)
        } catch let e as DataFolderLock.Held {
            CLI.printErr("tripline: \(e)")
            throw ExitCode(1)
        }
        let store = try SQLiteStore(directory: dir, synchronous: "NORMAL")
        var settings = ServerSettings()
        settings.host = host
        settings.port = port
        settings.options.allowedLateness = 2000
        settings.idleAdvance = 5000
        let engineHost = try EngineHost(store: store, options: settings.options)
        engineHost.start()
        let estate = DemoEstate(trucks: max(4, trucks))
        let (_, token) = try Tokens.create(store: store, role: .admin, name: "demo-admin", now: DemoEstate.now())
        try await estate.load(into: engineHost)
        let audit = AuditLog(store: store, secret: try AuditLog.secret(directory: dir), clock: { DemoEstate.now() })
        try audit.record(actor: "demo", action: "server.start", target: "config", detail: .obj([("demo", .bool(true))]))
        let http = TriplineHTTP(host: engineHost, settings: settings, audit: audit)
        let h = host
        let tickSeconds = tick
        let sim = Task.detached { await estate.simulate(host: engineHost, tick: tickSeconds) }
        defer { sim.cancel() }
        try await http.run { port in
            let msg = """
            tripline demo: serving on http://\(h):\(port)
              data folder: \(dir)
              admin token: \(token)
              try: curl -s -H 'Authorization: Bearer \(token)' 'http://\(h):\(port)/v1/alerts?limit=5'
                   curl -sN -H 'Authorization: Bearer \(token)' http://\(h):\(port)/v1/alerts/stream
              \(estate.summary); alerts begin within a minute.

            """
            FileHandle.standardOutput.write(Data(msg.utf8))
        }
    }
}

/// A simulated estate around a port city: depots, ports, chemical plants (restricted), an
/// anchorage; trucks driving between depots and ports, vessels calling at the anchorage,
/// meters, payment accounts and site sensors.
final class DemoEstate: @unchecked Sendable {
    struct Place { var id: String; var category: String; var lon: Double; var lat: Double; var half: Double }
    let places: [Place] = [
        Place(id: "depot-north", category: "depot", lon: 4.30, lat: 51.98, half: 0.006),
        Place(id: "depot-east", category: "depot", lon: 4.55, lat: 51.92, half: 0.006),
        Place(id: "depot-south", category: "depot", lon: 4.35, lat: 51.84, half: 0.006),
        Place(id: "port-europoort", category: "port", lon: 4.10, lat: 51.95, half: 0.012),
        Place(id: "port-waalhaven", category: "port", lon: 4.43, lat: 51.89, half: 0.010),
        Place(id: "chem-pernis", category: "restricted", lon: 4.38, lat: 51.885, half: 0.008),
        Place(id: "chem-botlek", category: "restricted", lon: 4.25, lat: 51.93, half: 0.008),
        Place(id: "anchorage-maas", category: "anchorage", lon: 3.95, lat: 52.00, half: 0.03),
    ]
    let trucks: Int
    var vessels: Int { max(2, trucks / 5) }
    var meters: Int { max(4, trucks / 2) }
    var accounts: Int { max(4, trucks / 2) }
    var sensors: Int { max(3, trucks / 8) }
    var rng = SplitMix64(seed: 2026)
    var truckPos: [(Double, Double)] = []
    var truckTarget: [Int] = []
    var vesselPos: [(Double, Double)] = []
    var started = now()

    init(trucks: Int) {
        self.trucks = trucks
    }

    static func now() -> Millis { Millis(Date().timeIntervalSince1970 * 1000) }

    var summary: String {
        "\(trucks) trucks, \(vessels) vessels, \(meters) meters, \(accounts) accounts, \(sensors) sensors, \(places.count) zones, 12 rules"
    }

    func zoneJSON(_ p: Place) -> String {
        let (x0, x1, y0, y1) = (p.lon - p.half * 1.6, p.lon + p.half * 1.6, p.lat - p.half, p.lat + p.half)
        return #"{"type":"Feature","properties":{"id":"\#(p.id)","category":"\#(p.category)"},"geometry":{"type":"Polygon","coordinates":[[[\#(x0),\#(y0)],[\#(x1),\#(y0)],[\#(x1),\#(y1)],[\#(x0),\#(y1)],[\#(x0),\#(y0)]]]}}"#
    }

    var entitiesJSON: [(String, String)] {
        var out: [(String, String)] = []
        for i in 0..<trucks {
            let cargo = i % 4 == 0 ? "hazmat" : "general"
            out.append(("truck-\(i)", #"{"id":"truck-\#(i)","kind":"truck","tags":{"cargo":"\#(cargo)"}}"#))
        }
        for i in 0..<vessels { out.append(("vessel-\(i)", #"{"id":"vessel-\#(i)","kind":"vessel","tags":{"class":"\#(i % 2 == 0 ? "tanker" : "cargo")"}}"#)) }
        for i in 0..<meters { out.append(("meter-\(i)", #"{"id":"meter-\#(i)","kind":"meter"}"#)) }
        for i in 0..<accounts { out.append(("account-\(i)", #"{"id":"account-\#(i)","kind":"account"}"#)) }
        for i in 0..<sensors { out.append(("sensor-\(i)", #"{"id":"sensor-\#(i)","kind":"sensor"}"#)) }
        return out
    }

    static let rules: [String] = [
        #"{"id":"hazmat-enters-restricted","kind":"enter","purpose":"Hazmat trucks may not enter chemical plants","owner":"safety-desk","severity":"high","match":{"kind":"truck","tags":{"cargo":"hazmat"}},"zones":{"category":"restricted"}}"#,
        #"{"id":"vessel-leaves-port","kind":"exit","purpose":"Port departures for the harbour master","owner":"port-ops","severity":"low","match":{"kind":"vessel"},"zones":{"category":"port"}}"#,
        #"{"id":"vessel-idles-in-anchorage","kind":"dwell","purpose":"Anchorage slots are short in the demo","owner":"port-ops","severity":"medium","match":{"kind":"vessel"},"zones":{"category":"anchorage"},"min":"45s"}"#,
        #"{"id":"depot-crowding","kind":"gathering","purpose":"At most three trucks per depot","owner":"yard-ops","severity":"medium","match":{"kind":"truck"},"zones":{"category":"depot"},"min_count":4,"window":"2m"}"#,
        #"{"id":"trucks-too-close","kind":"proximity","purpose":"Hazmat trucks keep 150 m apart","owner":"safety-desk","severity":"medium","match":{"kind":"truck","tags":{"cargo":"hazmat"}},"distance_m":150,"within":"30s"}"#,
        #"{"id":"failed-logins","kind":"frequency","purpose":"Brute-force login attempts","owner":"fraud-desk","severity":"medium","match":{"kind":"account"},"count":3,"window":"2m","event":{"type":"login_failed"}}"#,
        #"{"id":"new-payees-burst","kind":"novelty","purpose":"Paying many new payees is a fraud pattern","owner":"fraud-desk","severity":"high","match":{"kind":"account"},"count":3,"window":"2m","lookback":"1d"}"#,
        #"{"id":"meter-spike","kind":"threshold","purpose":"Burst pipe detection","owner":"network-ops","severity":"high","match":{"kind":"meter"},"metric":"water_l","above":180}"#,
        #"{"id":"meter-over-baseline","kind":"threshold","purpose":"Leak detection against the recent baseline","owner":"network-ops","severity":"medium","match":{"kind":"meter"},"metric":"water_l","baseline":{"window":"5m","factor":1.6,"min_samples":10}}"#,
        #"{"id":"takeover-pattern","kind":"sequence","purpose":"Account takeover pattern","owner":"fraud-desk","severity":"critical","match":{"kind":"account"},"steps":[{"event":{"type":"login_failed"}},{"event":{"type":"password_reset"}},{"event":{"type":"payment","attrs":{"tier":"high"}}}],"within":"3m"}"#,
        #"{"id":"sensor-silent","kind":"absence","purpose":"Site sensors report every few seconds","owner":"iot-ops","severity":"low","match":{"kind":"sensor"},"for":"20s"}"#,
        #"{"id":"truck-speeding","kind":"speed","purpose":"Road safety limit","owner":"fleet-safety","severity":"medium","match":{"kind":"truck"},"max_kmh":100}"#,
        #"{"id":"large-outflow","kind":"aggregate","purpose":"Anti-money-laundering limit on payments","owner":"fraud-desk","severity":"high","match":{"kind":"account"},"fn":"sum","of":{"attr":"amount"},"event":{"type":"payment"},"window":"5m","above":15000}"#,
        #"{"id":"same-payee-repeat","kind":"frequency","purpose":"Repeated payments to one payee (structuring)","owner":"fraud-desk","severity":"medium","match":{"kind":"account"},"count":2,"window":"30m","event":{"type":"contact"},"by":"counterpart"}"#,
        #"{"id":"reset-not-followed-by-login","kind":"sequence","purpose":"A password reset that is never used to log in","owner":"fraud-desk","severity":"low","match":{"kind":"account"},"steps":[{"event":{"type":"password_reset"}},{"absent":{"event":{"type":"login_failed"}},"for":"1m"}]}"#,
    ]

    func load(into host: EngineHost) async throws {
        let now = Self.now()
        let zones = places.map { CatalogItem(id: $0.id, json: zoneJSON($0), updatedAt: now) }
        let entities = entitiesJSON.map { CatalogItem(id: $0.0, json: $0.1, updatedAt: now) }
        var versions: [RuleVersion] = []
        for r in Self.rules {
            let doc = try JSONDocumentParser.parse(r, file: "demo").get()
            versions.append(RuleVersion(rule: doc["id"]!.stringValue!, version: 1, json: r, deleted: false, createdAt: now, createdBy: "demo"))
        }
        let rules = versions
        try await host.changeCatalog { store, _ in
            try store.putCatalog(.zones, zones)
            try store.putCatalog(.entities, entities)
            let existing = Set(try store.ruleVersions(nil).map(\.rule))
            try store.appendRuleVersions(rules.filter { !existing.contains($0.rule) })
        }
    }

    func rand() -> Double { Double(rng.next() >> 11) / Double(1 << 53) }

    /// One tick of the simulation: the events of every entity at time `t`.
    func events(at t: Millis, tick: Int) -> [String] {
        var out: [String] = []
        let depotsAndPorts = places.indices.filter { ["depot", "port"].contains(places[$0].category) }
        if truckPos.isEmpty {
            for i in 0..<trucks {
                let p = places[depotsAndPorts[i % depotsAndPorts.count]]
                truckPos.append((p.lon + (rand() - 0.5) * p.half, p.lat + (rand() - 0.5) * p.half))
                truckTarget.append(depotsAndPorts[(i + 1) % depotsAndPorts.count])
            }
            let anchorage = places.first { $0.category == "anchorage" }!
            for i in 0..<vessels { vesselPos.append((anchorage.lon - 0.15 + Double(i) * 0.01, anchorage.lat - 0.05)) }
        }
        for i in 0..<trucks {
            // Drive towards the target (hazmat trucks sometimes cut through a chemical plant).
            var target = places[truckTarget[i]]
            if i % 4 == 0 && tick % 90 < 20 { target = places.first { $0.category == "restricted" && $0.id.hasSuffix(i % 8 == 0 ? "pernis" : "botlek") }! }
            let (x, y) = truckPos[i]
            let dx = target.lon - x, dy = target.lat - y
            let d = (dx * dx + dy * dy).squareRoot()
            var step = 0.0002 + rand() * 0.00005  // ~65-80 km/h at 1 s ticks
            if i % 13 == 5 && tick % 40 == 0 { step *= 2.2 }  // a speeding burst
            if d < 0.002 {
                truckTarget[i] = depotsAndPorts[Int(rng.next() % UInt64(depotsAndPorts.count))]
                truckPos[i] = (x + (rand() - 0.5) * 0.0005, y + (rand() - 0.5) * 0.0005)
            } else {
                truckPos[i] = (x + dx / d * min(step, d), y + dy / d * min(step, d))
            }
            out.append(#"{"entity":"truck-\#(i)","time":\#(t),"type":"position","lon":\#(round6(truckPos[i].0)),"lat":\#(round6(truckPos[i].1))}"#)
        }
        let anchorage = places.first { $0.category == "anchorage" }!
        let port = places.first { $0.id == "port-europoort" }!
        for i in 0..<vessels where tick % 5 == i % 5 {
            // Vessels sail into the anchorage, wait, then head into port and out again.
            let phase = (tick / 5 + i * 7) % 60
            let target = phase < 35 ? anchorage : port
            let (x, y) = vesselPos[i]
            let dx = target.lon - x, dy = target.lat - y
            let d = (dx * dx + dy * dy).squareRoot()
            if d > 0.004 { vesselPos[i] = (x + dx / d * min(0.01, d), y + dy / d * min(0.01, d)) }
            else if phase >= 35 && phase % 10 == 0 { vesselPos[i] = (x - 0.05, y + 0.02) }
            out.append(#"{"entity":"vessel-\#(i)","time":\#(t),"type":"position","lon":\#(round6(vesselPos[i].0)),"lat":\#(round6(vesselPos[i].1))}"#)
        }
        for i in 0..<meters where tick % 3 == i % 3 {
            var v = 90 + rand() * 30
            if rand() < 0.01 { v = 200 + rand() * 50 }
            out.append(#"{"entity":"meter-\#(i)","time":\#(t),"type":"reading","metric":"water_l","value":\#(round6(v))}"#)
        }
        for i in 0..<accounts where rand() < 0.08 {
            let r = rand()
            if r < 0.4 {
                out.append(#"{"entity":"account-\#(i)","time":\#(t),"type":"login_failed"}"#)
            } else if r < 0.5 {
                out.append(#"{"entity":"account-\#(i)","time":\#(t),"type":"password_reset"}"#)
            } else if r < 0.7 {
                out.append(#"{"entity":"account-\#(i)","time":\#(t),"type":"payment","attrs":{"tier":"\#(rand() < 0.5 ? "high" : "low")","amount":\#(Int(rand() * 9000) + 100)}}"#)
            } else {
                out.append(#"{"entity":"account-\#(i)","time":\#(t),"type":"contact","counterpart":"payee-\#(rng.next() % 400)"}"#)
            }
        }
        for i in 0..<sensors {
            // Sensor 0 goes silent for a minute every three minutes.
            if i == 0 && (tick % 180) >= 120 { continue }
            if tick % 5 == i % 5 { out.append(#"{"entity":"sensor-\#(i)","time":\#(t),"type":"heartbeat"}"#) }
        }
        return out
    }

    func round6(_ v: Double) -> Double { (v * 1e6).rounded() / 1e6 }

    func simulate(host: EngineHost, tick: Double) async {
        var n = 0
        while !Task.isCancelled {
            let lines = events(at: Self.now(), tick: n)
            let batch = EventBatchInput(lines: lines.map { Array($0.utf8) }, numbers: Array(0..<lines.count).map { $0 + 1 }, unit: "line", file: "demo")
            if !lines.isEmpty { _ = try? await host.ingest(batch) }
            n += 1
            try? await Task.sleep(nanoseconds: UInt64(tick * 1e9))
        }
    }
}
