import ArgumentParser
import Foundation
import TriplineCore

struct Validate: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "validate",
        abstract: "Check zones, entities, rules (and optionally events) without running anything.",
        discussion: "Every error of every file is reported, located by file, line and JSON pointer. Exit status 2 when anything is invalid."
    )

    @OptionGroup var inputs: InputFiles
    @Argument(help: "Optional events file (NDJSON) to check line by line.")
    var events: String?

    func run() throws {
        let sensitive = SensitiveTags(extra: inputs.sensitiveTags)
        if inputs.zones == nil && inputs.entities == nil && inputs.rules == nil && events == nil {
            throw ValidationError("give at least one of --zones, --entities, --rules or an events file")
        }
        let loaded = CLI.loadInputs(zones: inputs.zones, entities: inputs.entities, rules: inputs.rules, sensitive: sensitive)
        var errors = loaded.errors
        var eventCount = 0
        if let events {
            var symbols = Symbols(sensitive: sensitive)
            var decoder = EventDecoder(file: events == "-" ? "<stdin>" : events)
            let reader = try LineReader(path: events)
            reader.forEachLine { bytes, line in
                if bytes.allSatisfy({ $0 == 32 || $0 == 9 }) { return true }
                switch decoder.decode(bytes, line: line, symbols: &symbols) {
                case .success: eventCount += 1
                case .failure(let e): errors.append(e.description)
                }
                return true
            }
            reader.close()
        }
        errors.forEach(CLI.printErr)
        if !errors.isEmpty {
            CLI.printErr("tripline: \(errors.count) error(s)")
            throw ExitCode(2)
        }
        var parts: [String] = []
        if inputs.zones != nil { parts.append("\(loaded.zones.count) zone(s)") }
        if inputs.entities != nil { parts.append("\(loaded.entities.count) entit\(loaded.entities.count == 1 ? "y" : "ies")") }
        if inputs.rules != nil { parts.append("\(loaded.rules.count) rule(s)") }
        if events != nil { parts.append("\(eventCount) event(s)") }
        print("valid: " + parts.joined(separator: ", "))
    }
}
