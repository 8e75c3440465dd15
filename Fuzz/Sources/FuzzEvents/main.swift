import CFuzzDriver
import TriplineCore

/// The event decoder on arbitrary bytes: any result but a trap is fine; an accepted event
/// must have its time in range and finite coordinates and values.
nonisolated(unsafe) var symbols = Symbols()
nonisolated(unsafe) var inputs = 0

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    inputs += 1
    if inputs % 10_000 == 0 { symbols = Symbols() }
    var decoder = EventDecoder(file: "fuzz")
    let buf = UnsafeBufferPointer(start: data, count: size)
    if case .success(let ev) = decoder.decode(buf, line: 1, symbols: &symbols) {
        precondition(ev.time >= TimeBounds.minTime && ev.time <= TimeBounds.maxTime, "time out of range")
        precondition(ev.lon.isFinite && ev.lat.isFinite && ev.value.isFinite, "non-finite number accepted")
        precondition(abs(ev.lon) <= 180 && abs(ev.lat) <= 90, "coordinates out of range")
        // The printed time parses back to the same value.
        guard case .success(let back) = EventTime.parseRFC3339(EventTime.format(ev.time)), back == ev.time else { preconditionFailure("time does not round-trip") }
    }
    return 0
}

/// SwiftPM links an executable's entry as `FuzzEvents_main`: libFuzzer takes over from there.
@_cdecl("FuzzEvents_main")
public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> CInt {
    tripline_fuzz_run(argc, argv) { data, size in data.map { fuzz($0, size) } ?? 0 }
}
