import CFuzzDriver
import TriplineCore
import TriplineYAML

/// The rule codec on arbitrary text, as YAML and as JSON; an accepted rule's durations lie
/// within the bounds, and an accepted rule file re-encodes and decodes to the same rules.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    guard case .success(let text) = UTF8Text.decode(bytes, file: "fuzz") else { return 0 }
    for result in [RuleFile.decode(text, file: "fuzz"), RuleCodec.decodeJSON(text, file: "fuzz")] {
        guard case .success(let rules) = result else { continue }
        for r in rules {
            precondition(r.cooldown >= 0 && r.cooldown <= TimeBounds.maxDuration, "cooldown out of bounds")
            if let e = r.expires { precondition(e >= 0 && e <= TimeBounds.maxTime, "expires out of range") }
        }
        let again = RuleCodec.decodeJSON(RuleEncoder.file(rules), file: "re-encoded")
        guard case .success(let back) = again else { preconditionFailure("an accepted rule file does not re-decode: \(again)") }
        precondition(back.count == rules.count, "re-decoded a different number of rules")
    }
    return 0
}

/// SwiftPM links an executable's entry as `FuzzRules_main`: libFuzzer takes over from there.
@_cdecl("FuzzRules_main")
public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> CInt {
    tripline_fuzz_run(argc, argv) { data, size in data.map { fuzz($0, size) } ?? 0 }
}
