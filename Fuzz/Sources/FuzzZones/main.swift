import CFuzzDriver
import TriplineCore

/// The GeoJSON zone codec on arbitrary bytes; accepted zones must be indexable and answer
/// point queries.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let buf = UnsafeBufferPointer(start: data, count: size)
    guard case .success(let zones) = ZoneCodec.decode(buf, file: "fuzz") else { return 0 }
    let index = ZoneIndex(shapes: zones.map(\.shape))
    var out: [Int32] = []
    for (x, y) in [(0.0, 0.0), (180.0, 90.0), (-180.0, -90.0), (12.5, 41.9)] {
        out.removeAll(keepingCapacity: true)
        index.zones(coveringX: x, y: y, into: &out)
        precondition(Set(out) == Set(index.zonesByScan(x: x, y: y)), "index and scan disagree")
        for z in out { precondition(Int(z) < zones.count, "index answered a zone that does not exist") }
    }
    return 0
}

/// SwiftPM links an executable's entry as `FuzzZones_main`: libFuzzer takes over from there.
@_cdecl("FuzzZones_main")
public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> CInt {
    tripline_fuzz_run(argc, argv) { data, size in data.map { fuzz($0, size) } ?? 0 }
}
