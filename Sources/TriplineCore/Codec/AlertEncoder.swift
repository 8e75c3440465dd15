/// Writes alerts as canonical NDJSON lines (spec section 4): `rule`, `key`, `state`, `time`,
/// `evidence`, `details`, in that order.
public struct AlertEncoder {
    public init() {}

    /// Appends one alert line (with its newline) to `out`.
    public func append(_ a: Alert, engine: Engine, to out: inout [UInt8], extra: ((inout [UInt8]) -> Void)? = nil) {
        out.append(contentsOf: #"{"rule":"#.utf8)
        JSONText.appendString(engine.rules[Int(a.rule)].id, to: &out)
        out.append(contentsOf: #","key":{"#.utf8)
        var first = true
        if a.key.entity >= 0 {
            out.append(contentsOf: #""entity":"#.utf8)
            JSONText.appendString(engine.symbols.entities.string(a.key.entity), to: &out)
            first = false
        }
        if a.key.zone >= 0 {
            if !first { out.append(44) }
            out.append(contentsOf: #""zone":"#.utf8)
            JSONText.appendString(engine.zones[Int(a.key.zone)].id, to: &out)
            first = false
        }
        if a.key.pairA >= 0 {
            if !first { out.append(44) }
            let (x, y) = engine.sortedPair(a.key)
            out.append(contentsOf: #""pair":["#.utf8)
            JSONText.appendString(engine.symbols.entities.string(x), to: &out)
            out.append(44)
            JSONText.appendString(engine.symbols.entities.string(y), to: &out)
            out.append(93)
        }
        out.append(contentsOf: a.firing ? #"},"state":"firing","time":""#.utf8 : #"},"state":"resolved","time":""#.utf8)
        EventTime.append(a.time, to: &out)
        out.append(contentsOf: #"","evidence":["#.utf8)
        for (i, r) in a.evidence.enumerated() {
            if i > 0 { out.append(44) }
            JSONText.appendString(r.text(engine.symbols), to: &out)
        }
        out.append(contentsOf: #"],"details":{"#.utf8)
        for (i, (k, v)) in a.details.enumerated() {
            if i > 0 { out.append(44) }
            JSONText.appendString(k, to: &out)
            out.append(58)
            switch v {
            case .null: out.append(contentsOf: "null".utf8)
            case .number(let d): JSONText.appendNumber(d, to: &out)
            case .strings(let ss):
                out.append(91)
                for (j, s) in ss.enumerated() {
                    if j > 0 { out.append(44) }
                    JSONText.appendString(s, to: &out)
                }
                out.append(93)
            }
        }
        out.append(125)
        extra?(&out)
        out.append(contentsOf: "}\n".utf8)
    }
}

/// JSON text output helpers.
public enum JSONText {
    static let hex: [UInt8] = Array("0123456789abcdef".utf8)

    /// Appends a JSON string literal.
    /// `s` as a JSON string literal (with quotes).
    public static func quoted(_ s: String) -> String {
        var out: [UInt8] = []
        appendString(s, to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    public static func appendString(_ s: String, to out: inout [UInt8]) {
        out.append(34)
        for b in s.utf8 {
            switch b {
            case 34: out.append(92); out.append(34)
            case 92: out.append(92); out.append(92)
            case 10: out.append(92); out.append(110)
            case 13: out.append(92); out.append(114)
            case 9: out.append(92); out.append(116)
            case 0..<32:
                out.append(contentsOf: [92, 117, 48, 48, hex[Int(b >> 4)], hex[Int(b & 15)]])
            default: out.append(b)
            }
        }
        out.append(34)
    }

    /// Appends a finite number: whole numbers as integers, others in shortest round-trip form.
    public static func appendNumber(_ d: Double, to out: inout [UInt8]) {
        if d == d.rounded() && abs(d) < 1e15 {
            out.append(contentsOf: String(Int64(d)).utf8)
        } else {
            out.append(contentsOf: d.description.utf8)
        }
    }
}
