import Foundation
import TriplineCore

/// A small, fast, seedable random generator (SplitMix64) so workloads are reproducible.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Generates reproducible workloads: zones, entities and events, as values and as files.
public struct Workload {
    public struct Config: Sendable {
        public var zones = 1000
        public var entities = 10_000
        public var events = 100_000
        public var seed: UInt64 = 1
        /// Region of the world the workload lives in.
        public var minLon = -10.0, maxLon = 10.0, minLat = 40.0, maxLat = 60.0
        /// Vertices per polygon zone.
        public var minVertices = 10, maxVertices = 50
        /// Fraction of zones that are circles.
        public var circleFraction = 0.1
        /// Fractions of polygon zones (with at least 6 vertices) that get a hole around their
        /// centre, and that get a second, smaller part beside them (a MultiPolygon). Zero keeps
        /// the random stream, and so the workload, of earlier versions.
        public var holeFraction = 0.0, multiFraction = 0.0
        /// Milliseconds between consecutive events.
        public var stepMs: Int64 = 10
        /// Start of the stream.
        public var start: Millis = 1_772_352_000_000  // 2026-03-01T08:00:00Z
        /// Shares of event types (positions get the rest).
        public var readingShare = 0.0, contactShare = 0.0, customShare = 0.0
        /// Fraction of events that carry an explicit id.
        public var idShare = 0.0
        public init() {}
    }

    public static let categories = ["depot", "port", "restricted", "anchorage", "site"]
    public static let kinds = ["truck", "vessel", "van", "meter", "account"]

    public let config: Config
    public private(set) var zones: [Zone] = []
    public private(set) var entities: [EntityInfo] = []
    var zoneCenters: [(Double, Double, Double)] = []

    public init(_ config: Config) {
        self.config = config
        var rng = SplitMix64(seed: config.seed)
        for i in 0..<config.zones {
            let cx = Double.random(in: config.minLon...config.maxLon, using: &rng)
            let cy = Double.random(in: config.minLat...config.maxLat, using: &rng)
            let radiusDeg = Double.random(in: 0.005...0.04, using: &rng)
            let category = Workload.categories[i % Workload.categories.count]
            let id = "zone-\(i)"
            zoneCenters.append((cx, cy, radiusDeg))
            if Double.random(in: 0..<1, using: &rng) < config.circleFraction {
                zones.append(Zone(id: id, category: category, tags: ["site": "s\(i % 50)"], shape: .circle(lon: cx, lat: cy, radiusM: radiusDeg * 111_000)))
            } else {
                let n = Int.random(in: config.minVertices...config.maxVertices, using: &rng)
                // One vertex per sector: consecutive angles differ by less than pi, so the
                // polygon is star-shaped around its centre and simple.
                let sector = 2 * Double.pi / Double(n)
                let angles = (0..<n).map { k in (Double(k) + Double.random(in: 0.1...0.9, using: &rng)) * sector }
                var pts: [(Double, Double)] = []
                for a in angles {
                    let r = radiusDeg * Double.random(in: 0.4...1.0, using: &rng)
                    pts.append((cx + r * cos(a), cy + r * sin(a)))
                }
                // Star-shaped around the centre with distinct angles: simple, hence valid.
                var dedup: [(Double, Double)] = []
                for p in pts where dedup.last.map({ $0 != p }) ?? true { dedup.append(p) }
                pts = dedup
                if pts.count < 3 { pts = [(cx - radiusDeg, cy - radiusDeg), (cx + radiusDeg, cy - radiusDeg), (cx, cy + radiusDeg)] }
                pts.append(pts[0])
                var holes: [Ring] = []
                if config.holeFraction > 0 && Double.random(in: 0..<1, using: &rng) < config.holeFraction && n >= 6 {
                    // Every shell vertex is at least 0.4 r from the centre and consecutive ones
                    // are less than 2 sectors apart, so each edge stays over 0.23 r away: a
                    // hole of 0.15 r (clockwise) lies strictly inside.
                    holes.append(Ring(points: Self.regular(cx, cy, 0.15 * radiusDeg, 8, clockwise: true)))
                }
                var parts = [Polygon(shell: Ring(points: pts), holes: holes)]
                if config.multiFraction > 0 && Double.random(in: 0..<1, using: &rng) < config.multiFraction {
                    // A second part 2.5 r east, of at most 0.5 r: disjoint from the first.
                    let k = Int.random(in: 5...12, using: &rng)
                    parts.append(Polygon(shell: Ring(points: Self.regular(cx + 2.5 * radiusDeg, cy, 0.5 * radiusDeg, k, clockwise: false)), holes: []))
                }
                zones.append(Zone(id: id, category: category, tags: ["site": "s\(i % 50)"], shape: .polygons(parts)))
            }
        }
        for i in 0..<config.entities {
            let kind = Workload.kinds[i % Workload.kinds.count]
            var tags: [String: String] = [:]
            if kind == "truck" { tags["cargo"] = i % 3 == 0 ? "hazmat" : "general" }
            if kind == "vessel" { tags["class"] = i % 2 == 0 ? "tanker" : "cargo" }
            entities.append(EntityInfo(id: "\(kind)-\(i)", kind: kind, tags: tags))
        }
    }

    /// A closed regular polygon of `n` vertices around (cx, cy).
    static func regular(_ cx: Double, _ cy: Double, _ r: Double, _ n: Int, clockwise: Bool) -> [(Double, Double)] {
        var pts = (0..<n).map { k -> (Double, Double) in
            let a = 2 * Double.pi * Double(k) / Double(n) * (clockwise ? -1 : 1)
            return (cx + r * cos(a), cy + r * sin(a))
        }
        pts.append(pts[0])
        return pts
    }

    /// Adds zones read from elsewhere (real country polygons): they join the index and the
    /// written zones file, but entities do not start at them.
    public mutating func addZones(_ more: [Zone]) {
        zones += more
    }

    /// Streams the events as NDJSON lines (without newline) in time order.
    public func forEachEventLine(_ body: (String) -> Void) {
        var rng = SplitMix64(seed: config.seed &+ 7)
        let m = max(1, config.entities)
        var pos = [(Double, Double)](repeating: (0, 0), count: m)
        var started = [Bool](repeating: false, count: m)
        let zc = zoneCenters
        for k in 0..<config.events {
            let e = Int(rng.next() % UInt64(m))
            let t = config.start + Int64(k) * config.stepMs
            let id = entities[e].id
            var idPart = ""
            if config.idShare > 0 && Double.random(in: 0..<1, using: &rng) < config.idShare { idPart = ",\"id\":\"ev-\(k)\"" }
            let roll = Double.random(in: 0..<1, using: &rng)
            if roll < config.readingShare {
                let v = Double(Int.random(in: 0...2000, using: &rng)) / 10
                body("{\"entity\":\"\(id)\",\"time\":\(t),\"type\":\"reading\",\"metric\":\"water_l\",\"value\":\(v)\(idPart)}")
                continue
            }
            if roll < config.readingShare + config.contactShare {
                body("{\"entity\":\"\(id)\",\"time\":\(t),\"type\":\"contact\",\"counterpart\":\"payee-\(rng.next() % 500)\"\(idPart)}")
                continue
            }
            if roll < config.readingShare + config.contactShare + config.customShare {
                let types = ["login_failed", "password_reset", "payment"]
                let ty = types[Int(rng.next() % 3)]
                // Payments carry an amount (from the event's number, so the random stream is
                // what it was before amounts were added).
                let amount = ty == "payment" ? ",\"amount\":\((k &* 7919) % 5000 + 1)" : ""
                body("{\"entity\":\"\(id)\",\"time\":\(t),\"type\":\"\(ty)\",\"attrs\":{\"tier\":\"\(rng.next() % 2 == 0 ? "high" : "low")\"\(amount)}\(idPart)}")
                continue
            }
            if !started[e] {
                started[e] = true
                if !zc.isEmpty && rng.next() % 2 == 0 {
                    let z = zc[Int(rng.next() % UInt64(zc.count))]
                    pos[e] = (z.0 + Double.random(in: -1...1, using: &rng) * z.2, z.1 + Double.random(in: -1...1, using: &rng) * z.2)
                } else {
                    pos[e] = (Double.random(in: config.minLon...config.maxLon, using: &rng), Double.random(in: config.minLat...config.maxLat, using: &rng))
                }
            } else {
                pos[e].0 = min(config.maxLon, max(config.minLon, pos[e].0 + Double.random(in: -0.01...0.01, using: &rng)))
                pos[e].1 = min(config.maxLat, max(config.minLat, pos[e].1 + Double.random(in: -0.01...0.01, using: &rng)))
            }
            let lon = (pos[e].0 * 1e6).rounded() / 1e6, lat = (pos[e].1 * 1e6).rounded() / 1e6
            body("{\"entity\":\"\(id)\",\"time\":\(t),\"type\":\"position\",\"lon\":\(lon),\"lat\":\(lat)\(idPart)}")
        }
    }

    /// All event lines joined with newlines.
    public func eventsNDJSON() -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(config.events * 90)
        forEachEventLine { line in
            out.append(contentsOf: line.utf8)
            out.append(10)
        }
        return out
    }

    /// Zones as a GeoJSON FeatureCollection.
    public func zonesGeoJSON() -> String {
        var s = "{\"type\":\"FeatureCollection\",\"features\":[\n"
        for (i, z) in zones.enumerated() {
            if i > 0 { s += ",\n" }
            let tags = z.tags.sorted { $0.key < $1.key }.map { "\"\($0.key)\":\"\($0.value)\"" }.joined(separator: ",")
            switch z.shape {
            case .circle(let lon, let lat, let r):
                s += "{\"type\":\"Feature\",\"properties\":{\"id\":\"\(z.id)\",\"category\":\"\(z.category)\",\"tags\":{\(tags)},\"radius_m\":\(r)},\"geometry\":{\"type\":\"Point\",\"coordinates\":[\(lon),\(lat)]}}"
            case .polygons(let ps):
                func ring(_ r: Ring) -> String { "[" + (0..<r.pointCount).map { "[\(r.x($0)),\(r.y($0))]" }.joined(separator: ",") + "]" }
                func polygon(_ p: Polygon) -> String { "[" + ([p.shell] + p.holes).map(ring).joined(separator: ",") + "]" }
                let geometry = ps.count == 1 ? "{\"type\":\"Polygon\",\"coordinates\":\(polygon(ps[0]))}"
                    : "{\"type\":\"MultiPolygon\",\"coordinates\":[\(ps.map(polygon).joined(separator: ","))]}"
                s += "{\"type\":\"Feature\",\"properties\":{\"id\":\"\(z.id)\",\"category\":\"\(z.category)\",\"tags\":{\(tags)}},\"geometry\":\(geometry)}"
            }
        }
        return s + "\n]}\n"
    }

    /// Entities as NDJSON.
    public func entitiesNDJSON() -> String {
        var s = ""
        for e in entities {
            let tags = e.tags.sorted { $0.key < $1.key }.map { "\"\($0.key)\":\"\($0.value)\"" }.joined(separator: ",")
            s += "{\"id\":\"\(e.id)\",\"kind\":\"\(e.kind)\",\"tags\":{\(tags)}}\n"
        }
        return s
    }

    /// Rules exercising the implemented geofence and speed kinds.
    public static let geofenceRulesYAML = """
    rules:
      - id: hazmat-enters-restricted
        kind: enter
        purpose: Hazmat trucks may not enter restricted zones
        owner: safety-desk
        severity: high
        match: {kind: truck, tags: {cargo: hazmat}}
        zones: {category: restricted}
      - id: any-enters-depot
        kind: enter
        purpose: Depot arrivals for the yard schedule
        owner: yard-ops
        severity: info
        match: {}
        zones: {category: depot}
      - id: vessel-leaves-port
        kind: exit
        purpose: Port departures for the harbour master
        owner: port-ops
        severity: low
        match: {kind: vessel}
        zones: {category: port}
      - id: truck-speeding
        kind: speed
        purpose: Road safety limit for trucks
        owner: fleet-safety
        severity: medium
        match: {kind: truck}
        max_kmh: 130
        cooldown: 10m

    """
}

extension Workload {
    /// Reorders NDJSON event lines so that each line moves by at most `within` of event time
    /// from its sorted place: lines are sorted by (time + jitter), jitter in [0, within].
    /// Times are read from a `"time":<ms>` member.
    public static func shuffleByTime(_ bytes: [UInt8], within: Millis, seed: UInt64) -> [UInt8] {
        var rng = SplitMix64(seed: seed &+ 99)
        let lines = bytes.split(separator: 10, omittingEmptySubsequences: true)
        var keyed: [(Millis, Int, ArraySlice<UInt8>)] = []
        keyed.reserveCapacity(lines.count)
        let marker = Array("\"time\":".utf8)
        for (i, l) in lines.enumerated() {
            var t: Millis = 0
            if let r = l.firstRange(of: marker) {
                var k = r.upperBound
                while k < l.endIndex, l[k] >= 48, l[k] <= 57 { t = t * 10 + Millis(l[k] - 48); k += 1 }
            }
            let jitter = within > 0 ? Millis(rng.next() % UInt64(within + 1)) : 0
            keyed.append((t + jitter, i, l))
        }
        keyed.sort { ($0.0, $0.1) < ($1.0, $1.1) }
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        for (_, _, l) in keyed { out.append(contentsOf: l); out.append(10) }
        return out
    }
}

extension Workload {
    /// `count` rules cycling through 20 templates that together cover every kind (and the
    /// three threshold conditions), with selectors and parameters varied per copy.
    /// `count` rules cycling through 20 templates that cover every kind. Absence durations are
    /// 30 to 120 minutes (readings: 2 hours), above the default workload's typical gap between
    /// two events of one entity (100,000 entities at one event per 10 ms: about 17 minutes), as
    /// an operator would choose them; `shortAbsence` uses 5 to 20 minutes (readings: 10), so
    /// that almost every gap fires and resolves them (an alert-volume stress test).
    ///
    /// With `jitter`, some zone rules steady their membership (`enter_after`,
    /// `exit_margin_m`): the enter, dwell and zone-sequence rules of even copies and the exit
    /// and gathering rules of odd copies, so that 20 rules already have both kinds.
    public static func mixedRules(count: Int, shortAbsence: Bool = false, jitter: Bool = false) -> [Rule] {
        let kinds = ["truck", "vessel", "van", "meter", "account"]
        let categories = categories
        var rules: [Rule] = []
        for i in 0..<count {
            let v = i / 20
            let kind = kinds[v % kinds.count]
            let cat = categories[v % categories.count]
            let sel = Selector(classes: [kind])
            let zsel = Selector(classes: [cat])
            let id = "r\(i)"
            let p: RuleParameters
            var zones: Selector? = nil
            var match = sel
            switch i % 20 {
            case 0: p = .enter; zones = zsel
            case 1: p = .exit; zones = zsel
            case 2: p = .dwell(min: Millis(60_000 * (1 + v % 5))); zones = zsel
            case 3: p = .gathering(minCount: 2 + v % 3, window: 600_000); zones = zsel
            case 4: p = .proximity(distanceM: Double(200 + 100 * (v % 5)), within: 300_000, other: nil)
            case 5: p = .frequency(count: 2 + v % 3, window: 600_000, event: EventFilter(type: "login_failed"), by: nil)
            case 6: p = .frequency(count: 3, window: 300_000, event: EventFilter(type: "position", zones: zsel), by: nil)
            case 7: p = .novelty(count: 3 + v % 3, window: 3_600_000, lookback: 86_400_000, counterpart: CounterpartFilter(prefix: ["payee-"]))
            case 8: p = .threshold(metric: "water_l", condition: .above(Double(150 + v % 40)))
            case 9: p = .threshold(metric: "water_l", condition: .below(Double(5 + v % 10)))
            case 10: p = .threshold(metric: "water_l", condition: .baseline(window: 3_600_000, factor: 2 + Double(v % 3), minSamples: 2))
            case 11: p = .sequence(steps: [.event(EventFilter(type: "login_failed")), .event(EventFilter(type: "password_reset")),
                                           .event(EventFilter(type: "payment", attrs: ["tier": .string("high")]))], within: 1_800_000)
            case 12: p = .sequence(steps: [.enter(zsel), .event(EventFilter(type: "position"))], within: 600_000)
            case 13: p = .absence(duration: Millis((shortAbsence ? 300_000 : 1_800_000) * (1 + v % 4)), event: nil)
            case 14: p = .absence(duration: shortAbsence ? 600_000 : 7_200_000, event: EventFilter(type: "reading"))
            case 15: p = .speed(maxKmh: Double(90 + 10 * (v % 5)))
            case 16: p = .enter; match = Selector(classes: ["truck"], tags: ["cargo": ["hazmat"]]); zones = Selector(classes: ["restricted"])
            case 17: p = .gathering(minCount: 3, window: 1_800_000); match = Selector(classes: ["vessel"]); zones = zsel
            case 18: p = .proximity(distanceM: 500, within: 600_000, other: Selector(classes: ["truck"])); match = Selector(classes: ["vessel", "van"])
            default: p = .frequency(count: 4, window: 900_000, event: EventFilter(type: "reading", metric: "water_l"), by: nil)
            }
            var steady: ZoneJitter? = nil
            if jitter {
                switch (i % 20, v % 2) {
                case (0, 0), (12, 0): steady = ZoneJitter(enterAfter: .fixes(2))
                case (2, 0): steady = ZoneJitter(enterAfter: .duration(120_000), exitMarginM: 100)
                case (1, 1), (17, 1): steady = ZoneJitter(exitMarginM: Double(50 + 25 * (v % 3)))
                case (3, 1): steady = ZoneJitter(enterAfter: .fixes(2), exitMarginM: 75)
                default: break
                }
            }
            rules.append(Rule(id: id, purpose: "benchmark", owner: "bench", severity: .low, match: match, zones: zones, parameters: p, jitter: steady))
        }
        return rules
    }

    /// The rules of spec 1.3 that the bench adds to the 20-rule suite: a per-payee frequency,
    /// a 24-hour sum of payment amounts, a distinct count of payees and a negated sequence.
    public static let v13Rules: [Rule] = [
        Rule(id: "v13-same-payee", purpose: "benchmark", owner: "bench", severity: .low, match: Selector(classes: ["account"]),
             parameters: .frequency(count: 2, window: 3_600_000, event: EventFilter(type: "contact"), by: .counterpart)),
        Rule(id: "v13-daily-outflow", purpose: "benchmark", owner: "bench", severity: .low, match: Selector(classes: ["account"]),
             parameters: .aggregate(fn: .sum, of: .attr("amount"), window: 86_400_000, event: EventFilter(type: "payment"), bound: .above(20_000), by: nil)),
        Rule(id: "v13-distinct-payees", purpose: "benchmark", owner: "bench", severity: .low, match: Selector(classes: ["account"]),
             parameters: .aggregate(fn: .countDistinct, of: .counterpart, window: 86_400_000, event: EventFilter(type: "contact"), bound: .above(5), by: nil)),
        Rule(id: "v13-login-not-reset", purpose: "benchmark", owner: "bench", severity: .low, match: Selector.all,
             parameters: .sequence(steps: [.event(EventFilter(type: "login_failed")), .absent(.event(EventFilter(type: "password_reset")), for: 600_000)], within: nil)),
    ]
}
