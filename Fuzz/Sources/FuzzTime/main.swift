import CFuzzDriver
import TriplineCore

/// RFC 3339 and duration parsing on arbitrary text: accepted values are in bounds and
/// round-trip through their printed form.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let buf = UnsafeBufferPointer(start: data, count: size)
    if case .success(let t) = EventTime.parseRFC3339(buf) {
        precondition(t >= TimeBounds.minTime && t <= TimeBounds.maxTime, "time out of range")
        guard case .success(let back) = EventTime.parseRFC3339(EventTime.format(t)), back == t else { preconditionFailure("time does not round-trip") }
    }
    let text = String(decoding: buf, as: UTF8.self)
    if case .success(let t) = EventTime.parseText(text) {
        precondition(t >= TimeBounds.minTime && t <= TimeBounds.maxTime, "time out of range")
    }
    if case .success(let d) = DurationText.parse(text) {
        precondition(d >= 0 && d <= TimeBounds.maxDuration, "duration out of bounds")
        precondition(DurationText.parse(DurationText.format(d)) == .success(d), "duration does not round-trip")
    }
    return 0
}

/// SwiftPM links an executable's entry as `FuzzTime_main`: libFuzzer takes over from there.
@_cdecl("FuzzTime_main")
public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> CInt {
    tripline_fuzz_run(argc, argv) { data, size in data.map { fuzz($0, size) } ?? 0 }
}
