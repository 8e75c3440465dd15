import CFuzzDriver
import TriplineCore

/// The engine with rules and events drawn from the input: durations from 1 ms to 100 years,
/// times from 1970 to 9999, coordinates at the poles and the antimeridian, readings up to
/// 1e308. Nothing may trap, and every alert's time must lie in range and print as a
/// time that parses back.
struct Bytes {
    let p: UnsafeBufferPointer<UInt8>
    var i = 0
    mutating func byte() -> UInt8 {
        defer { i += 1 }
        return i < p.count ? p[i] : 0
    }
    mutating func u64() -> UInt64 { (0..<8).reduce(UInt64(0)) { a, _ in a << 8 | UInt64(byte()) } }
    var done: Bool { i >= p.count }
}

let durations = ["1ms", "1s", "30s", "5m", "1h", "7d", "36525d", "36524d23h59m59s999ms"]
let times: [Millis] = [0, 1, 999, 60_000, 1_000_000_000_000, TimeBounds.maxTime - 1, TimeBounds.maxTime]
let coords: [Double] = [0, 0.5, 1, -1, 180, -180, 90, -90, 1e-9, 179.999999]
let values: [Double] = [0, 1, -1, 1e308, -1e308, 5e-324, 3.5, 100]

func ruleJSON(_ k: UInt8, _ id: Int, _ b: inout Bytes) -> String {
    func d() -> String { "\"\(durations[Int(b.byte()) % durations.count])\"" }
    let head = "\"id\": \"r\(id)\", \"purpose\": \"p\", \"owner\": \"o\", \"severity\": \"low\", \"match\": {}, \"cooldown\": \(b.byte() % 4 == 0 ? d() : "\"0s\"")"
    switch k % 11 {
    case 0: return "{\(head), \"kind\": \"enter\"}"
    case 1: return "{\(head), \"kind\": \"exit\"}"
    case 2: return "{\(head), \"kind\": \"dwell\", \"min\": \(d())}"
    case 3: return "{\(head), \"kind\": \"gathering\", \"min_count\": \(2 + b.byte() % 3), \"window\": \(d())}"
    case 4: return "{\(head), \"kind\": \"proximity\", \"distance_m\": \(Double(b.byte()) * 1000 + 1), \"within\": \(d())}"
    case 5: return "{\(head), \"kind\": \"frequency\", \"count\": \(1 + b.byte() % 4), \"window\": \(d()), \"event\": {\"type\": \"x\"}}"
    case 6: return "{\(head), \"kind\": \"novelty\", \"count\": \(1 + b.byte() % 3), \"window\": \(d()), \"lookback\": \(d())}"
    case 7: return "{\(head), \"kind\": \"threshold\", \"metric\": \"m\", \"baseline\": {\"window\": \(d()), \"factor\": 2, \"min_samples\": 1}}"
    case 8: return "{\(head), \"kind\": \"sequence\", \"steps\": [{\"enter\": {}}, {\"event\": {\"type\": \"x\"}}], \"within\": \(d())}"
    case 9: return "{\(head), \"kind\": \"absence\", \"for\": \(d())}"
    default: return "{\(head), \"kind\": \"speed\", \"max_kmh\": \(b.byte())}"
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    var b = Bytes(p: UnsafeBufferPointer(start: data, count: size))
    let nRules = 1 + Int(b.byte() % 6)
    var list: [String] = []
    for i in 0..<nRules { list.append(ruleJSON(b.byte(), i, &b)) }
    guard case .success(let rules) = RuleCodec.decodeJSON("{\"rules\": [\(list.joined(separator: ","))]}", file: "fuzz") else {
        preconditionFailure("the generated rules must be valid")
    }
    let zone = #"{"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {"id": "z", "category": "c"}, "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1], [0, 0]]]}}, {"type": "Feature", "properties": {"id": "c", "category": "c", "radius_m": 1000000}, "geometry": {"type": "Point", "coordinates": [180, 89]}}]}"#
    guard case .success(let zones) = ZoneCodec.decode(zone, file: "zones") else { preconditionFailure("zones") }
    // The pipeline every mode drives; one input in four runs it with an outside watermark.
    let external = b.byte() % 4 == 0
    let engine = Pipeline(zones: zones, entities: [], rules: rules,
                          options: PipelineOptions(allowedLateness: Millis(b.byte()) * 1000, watermark: external ? .external : .events))
    var t: Millis = 0
    var alerts: [NamedAlert] = []
    while !b.done {
        let sel = b.byte()
        switch sel % 4 {
        case 0: t = times[Int(b.byte()) % times.count]
        case 1: t = min(TimeBounds.maxTime, t + Millis(b.byte()) * 1000)
        case 2: t = Millis(b.u64() % UInt64(TimeBounds.maxTime + 1))
        default: break
        }
        let entity = "e\(b.byte() % 4)"
        var line: String
        switch b.byte() % 5 {
        case 0, 1:
            line = "{\"entity\": \"\(entity)\", \"time\": \(t), \"type\": \"position\", \"lon\": \(coords[Int(b.byte()) % coords.count]), \"lat\": \(coords[Int(b.byte()) % 8 % coords.count])}"
            if line.contains("\"lat\": 180") || line.contains("\"lat\": -180") { line = line.replacingOccurrences(of: "\"lat\": 180", with: "\"lat\": 90").replacingOccurrences(of: "\"lat\": -180", with: "\"lat\": -90") }
        case 2: line = "{\"entity\": \"\(entity)\", \"time\": \(t), \"type\": \"reading\", \"metric\": \"m\", \"value\": \(values[Int(b.byte()) % values.count])}"
        case 3: line = "{\"entity\": \"\(entity)\", \"time\": \(t), \"type\": \"contact\", \"counterpart\": \"c\(b.byte() % 5)\"}"
        default: line = "{\"entity\": \"\(entity)\", \"time\": \(t), \"type\": \"x\"}"
        }
        var s = line
        let r = s.withUTF8 { engine.decode($0, number: 1) }
        guard case .success(let ev) = r else { preconditionFailure("generated event refused: \(line) \(r)") }
        engine.ingest(ev)
        let step = b.byte()
        if step % 16 == 0 { engine.advance(until: min(TimeBounds.maxTime, t + Millis(b.byte()) * 60_000)) }
        if external && step % 4 == 1 { engine.watermarkReached(t) }
        engine.drainAlerts(into: &alerts)
    }
    engine.finish(until: TimeBounds.maxTime)
    engine.drainAlerts(into: &alerts)
    for a in alerts {
        precondition(a.time >= 0 && a.time <= TimeBounds.maxTime, "alert time out of range")
        precondition(a.line.hasPrefix("{\"rule\":"), "alert line")
        guard case .success(let back) = EventTime.parseRFC3339(EventTime.format(a.time)), back == a.time else {
            preconditionFailure("alert time does not round-trip")
        }
    }
    return 0
}

/// SwiftPM links an executable's entry as `FuzzEngine_main`: libFuzzer takes over from there.
@_cdecl("FuzzEngine_main")
public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> CInt {
    tripline_fuzz_run(argc, argv) { data, size in data.map { fuzz($0, size) } ?? 0 }
}
