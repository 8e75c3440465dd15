import ArgumentParser
import Foundation
import TriplineCore
import TriplineTesting

struct WorkloadOptions: ParsableArguments {
    @Option(help: "Number of zones.") var zones = 1000
    @Option(help: "Number of entities.") var entities = 10_000
    @Option(help: "Number of events.") var events = 100_000
    @Option(help: "Random seed.") var seed: UInt64 = 1
    @Option(name: .customLong("reading-share"), help: "Share of reading events (0-1).") var readingShare = 0.0
    @Option(name: .customLong("contact-share"), help: "Share of contact events (0-1).") var contactShare = 0.0
    @Option(name: .customLong("custom-share"), help: "Share of custom events (0-1).") var customShare = 0.0
    @Option(name: .customLong("id-share"), help: "Share of events carrying an explicit id (0-1).") var idShare = 0.0
    @Option(name: .customLong("hole-share"), help: "Share of polygon zones with a hole (0-1).") var holeShare = 0.0
    @Option(name: .customLong("multi-share"), help: "Share of polygon zones with a second part, as MultiPolygons (0-1).") var multiShare = 0.0
    @Option(name: .customLong("circle-share"), help: "Share of zones that are circles (0-1).") var circleShare = 0.1
    @Option(help: "Region the zones and entities are in: MINLON,MINLAT,MAXLON,MAXLAT (default -10,40,10,60).") var region: String?
    @Option(help: "A GeoJSON zones file (such as Benchmarks/data/countries-110m.geojson) whose zones are added to the generated ones.")
    var countries: String?

    func makeConfig() throws -> Workload.Config {
        var c = config
        for (name, v) in [("--hole-share", holeShare), ("--multi-share", multiShare), ("--circle-share", circleShare),
                          ("--reading-share", readingShare), ("--contact-share", contactShare), ("--custom-share", customShare), ("--id-share", idShare)]
        where !(0...1).contains(v) {
            throw ValidationError("\(name) \(v): give a share between 0 and 1")
        }
        if let region {
            let parts = region.split(separator: ",").map { Double($0.trimmingCharacters(in: .whitespaces)) }
            guard parts.count == 4, let a = parts[0], let b = parts[1], let x = parts[2], let y = parts[3],
                  a >= -180, x <= 180, b >= -90, y <= 90, a < x, b < y else {
                throw ValidationError("--region \(region): give MINLON,MINLAT,MAXLON,MAXLAT in degrees, each minimum below its maximum, for example -20,-35,50,70")
            }
            (c.minLon, c.minLat, c.maxLon, c.maxLat) = (a, b, x, y)
        }
        return c
    }

    /// The workload, with the zones of `--countries` added.
    func make() throws -> Workload {
        var w = Workload(try makeConfig())
        if let countries {
            guard let text = try? String(contentsOfFile: countries, encoding: .utf8) else {
                throw ValidationError("--countries \(countries): cannot read the file")
            }
            switch ZoneCodec.decode(text, file: countries) {
            case .success(let zones): w.addZones(zones)
            case .failure(let e): throw ValidationError("--countries: \(e.errors.map(\.description).joined(separator: "; "))")
            }
        }
        return w
    }

    var config: Workload.Config {
        var c = Workload.Config()
        c.zones = zones
        c.entities = entities
        c.events = events
        c.seed = seed
        c.readingShare = readingShare
        c.contactShare = contactShare
        c.customShare = customShare
        c.idShare = idShare
        c.holeFraction = holeShare
        c.multiFraction = multiShare
        c.circleFraction = circleShare
        return c
    }
}

struct Generate: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract: "Write a reproducible synthetic workload: zones.geojson, entities.ndjson, events.ndjson, rules.yaml."
    )

    @OptionGroup var workload: WorkloadOptions
    @Option(help: "Output folder (created if missing).") var out: String
    @Option(name: .customLong("mixed-rules"), help: "Also write rules-mixed.json: this many rules cycling through 20 templates covering every kind.")
    var mixedRules = 0
    @Flag(help: "In rules-mixed.json, give some zone rules enter_after and exit_margin_m (steadied membership).") var jitter = false
    @Option(help: "Shuffle events by at most this much event time (e.g. 5s), to test --allowed-lateness.") var shuffle: String?

    func run() throws {
        let w = try workload.make()
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        try w.zonesGeoJSON().write(toFile: out + "/zones.geojson", atomically: true, encoding: .utf8)
        try w.entitiesNDJSON().write(toFile: out + "/entities.ndjson", atomically: true, encoding: .utf8)
        try Workload.geofenceRulesYAML.write(toFile: out + "/rules.yaml", atomically: true, encoding: .utf8)
        if mixedRules > 0 {
            try RuleEncoder.file(Workload.mixedRules(count: mixedRules, jitter: jitter)).write(toFile: out + "/rules-mixed.json", atomically: true, encoding: .utf8)
        }
        var bytes = w.eventsNDJSON()
        if let shuffle {
            let l = try CLI.parseDuration(shuffle, option: "--shuffle")
            bytes = Workload.shuffleByTime(bytes, within: l, seed: workload.seed)
        }
        guard FileManager.default.createFile(atPath: out + "/events.ndjson", contents: Data(bytes)) else {
            throw InputError(description: "\(out)/events.ndjson: cannot write the file")
        }
        print("wrote \(out)/zones.geojson (\(w.zones.count)), entities.ndjson (\(w.entities.count)), events.ndjson (\(workload.events)), rules.yaml")
    }
}
