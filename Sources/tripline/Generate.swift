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
        return c
    }
}

struct Generate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a reproducible synthetic workload: zones.geojson, entities.ndjson, events.ndjson, rules.yaml."
    )

    @OptionGroup var workload: WorkloadOptions
    @Option(help: "Output folder (created if missing).") var out: String
    @Option(name: .customLong("mixed-rules"), help: "Also write rules-mixed.json: this many rules cycling through 20 templates covering every kind.")
    var mixedRules = 0
    @Option(help: "Shuffle events by at most this much event time (e.g. 5s), to test --allowed-lateness.") var shuffle: String?

    func run() throws {
        let w = Workload(workload.config)
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        try w.zonesGeoJSON().write(toFile: out + "/zones.geojson", atomically: true, encoding: .utf8)
        try w.entitiesNDJSON().write(toFile: out + "/entities.ndjson", atomically: true, encoding: .utf8)
        try Workload.geofenceRulesYAML.write(toFile: out + "/rules.yaml", atomically: true, encoding: .utf8)
        if mixedRules > 0 {
            try RuleEncoder.file(Workload.mixedRules(count: mixedRules)).write(toFile: out + "/rules-mixed.json", atomically: true, encoding: .utf8)
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
