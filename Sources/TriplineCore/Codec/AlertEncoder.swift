/// Writes alerts as canonical NDJSON lines (spec section 4): `rule`, `key`, `state`, `time`,
/// `evidence`, `details`, in that order.
public struct AlertEncoder {
    public init() {}

    /// Appends one alert line (with its newline) to `out`.
    public func append(_ a: Alert, engine: Engine, to out: inout [UInt8], extra: ((inout [UInt8]) -> Void)? = nil) {
        append(a, engine: engine, symbols: engine.symbols, to: &out, extra: extra)
    }

    /// As above with the engine's names taken once by the caller (`let symbols =
    /// engine.symbols` before a loop over alerts): reading them from the engine for each name
    /// copied an interner, every one of its arrays retained and released.
    public func append(_ a: Alert, engine: Engine, symbols: Symbols, to out: inout [UInt8], extra: ((inout [UInt8]) -> Void)? = nil) {
        out.append(contentsOf: #"{"rule":"#.utf8)
        JSONText.appendString(engine.rules[Int(a.rule)].id, to: &out)
        out.append(contentsOf: #","key":{"#.utf8)
        var first = true
        if a.key.entity >= 0 {
            out.append(contentsOf: #""entity":"#.utf8)
            symbols.entities.appendJSONString(a.key.entity, to: &out)
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
            symbols.entities.appendJSONString(x, to: &out)
            out.append(44)
            symbols.entities.appendJSONString(y, to: &out)
            out.append(93)
            first = false
        }
        if a.key.group >= 0 {
            if !first { out.append(44) }
            out.append(contentsOf: #""group":"#.utf8)
            JSONText.appendString(engine.groupText(a.key.group), to: &out)
        }
        out.append(contentsOf: a.firing ? #"},"state":"firing","time":""#.utf8 : #"},"state":"resolved","time":""#.utf8)
        EventTime.append(a.time, to: &out)
        out.append(contentsOf: #"","evidence":["#.utf8)
        for (i, r) in a.evidence.enumerated() {
            if i > 0 { out.append(44) }
            // As `r.text(symbols)`, written in place: no copy of the names, no String.
            if r.isGiven {
                symbols.eventIds.appendJSONString(r.givenIndex, to: &out)
            } else {
                out.append(34)
                symbols.entities.appendEscapedBytes(r.entity, to: &out)
                out.append(35)
                ClusterRecords.appendInt(Int64(r.sequence), &out)
                out.append(34)
            }
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
        var s = s
        s.withUTF8 { appendEscaped($0, to: &out) }
        out.append(34)
    }

    /// As `appendEscapedEach`, for contiguous bytes: text with nothing to escape (the
    /// usual case: ids, names, rule ids) is copied in one piece.
    @inline(__always)
    static func appendEscaped(_ p: UnsafeBufferPointer<UInt8>, to out: inout [UInt8]) {
        for b in p where b < 32 || b == 34 || b == 92 {
            appendEscapedEach(p, to: &out)
            return
        }
        out.append(contentsOf: p)
    }

    /// Appends UTF-8 bytes escaped for the inside of a JSON string literal (no quotes).
    @inline(__always)
    static func appendEscapedEach<S: Sequence<UInt8>>(_ bytes: S, to out: inout [UInt8]) {
        for b in bytes {
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
    }

    /// Appends a finite number: whole numbers as integers, others in shortest round-trip form.
    /// A number as ECMAScript's Number::toString writes it (the group text of spec 1.3,
    /// 5b.11): 7 and 7.0 give "7", 1e-7 gives "1e-7", 1e21 gives "1e+21", 0.5 gives "0.5".
    public static func ecmaScript(_ d: Double) -> String {
        if d.isNaN { return "NaN" }
        if d == 0 { return "0" }
        if d.isInfinite { return d < 0 ? "-Infinity" : "Infinity" }
        if d < 0 { return "-" + ecmaScript(-d) }
        // Swift's description has the shortest digits that round-trip, as ECMAScript asks;
        // only the layout differs. Read the digits and the decimal exponent from it.
        let text = d.description
        var mantissa = Substring(text), exp10 = 0
        if let e = text.firstIndex(where: { $0 == "e" || $0 == "E" }) {
            mantissa = text[..<e]
            exp10 = Int(text[text.index(after: e)...]) ?? 0
        }
        var digits = "", pointAt = mantissa.count
        if let dot = mantissa.firstIndex(of: ".") {
            pointAt = mantissa.distance(from: mantissa.startIndex, to: dot)
            digits = String(mantissa[..<dot]) + String(mantissa[mantissa.index(after: dot)...])
        } else {
            digits = String(mantissa)
        }
        // Strip leading zeros (moving the point) and trailing zeros.
        var lead = 0
        for c in digits { if c == "0" { lead += 1 } else { break } }
        digits.removeFirst(lead)
        pointAt -= lead
        while digits.last == "0" { digits.removeLast() }
        let k = digits.count
        let n = pointAt + exp10   // value = 0.digits x 10^n
        if k <= n && n <= 21 { return digits + String(repeating: "0", count: n - k) }
        if 0 < n && n <= 21 { return String(digits.prefix(n)) + "." + String(digits.dropFirst(n)) }
        if -6 < n && n <= 0 { return "0." + String(repeating: "0", count: -n) + digits }
        let e = n - 1
        let sign = e < 0 ? "-" : "+"
        let body = k == 1 ? digits : String(digits.prefix(1)) + "." + String(digits.dropFirst())
        return body + "e" + sign + String(abs(e))
    }

    public static func appendNumber(_ d: Double, to out: inout [UInt8]) {
        if d == d.rounded() && abs(d) < 1e15 {
            ClusterRecords.appendInt(Int64(d), &out)
        } else {
            out.append(contentsOf: d.description.utf8)
        }
    }
}
