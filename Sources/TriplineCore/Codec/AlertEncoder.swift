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
        JSONText.appendStatic(#"{"rule":"#, to: &out)
        engine.quotedRuleIds.append(Int(a.rule), to: &out)
        JSONText.appendStatic(#","key":{"#, to: &out)
        var first = true
        if a.key.entity >= 0 {
            JSONText.appendStatic(#""entity":"#, to: &out)
            symbols.entities.appendJSONString(a.key.entity, to: &out)
            first = false
        }
        if a.key.zone >= 0 {
            if !first { out.append(44) }
            JSONText.appendStatic(#""zone":"#, to: &out)
            engine.quotedZoneIds.append(Int(a.key.zone), to: &out)
            first = false
        }
        if a.key.pairA >= 0 {
            if !first { out.append(44) }
            let (x, y) = engine.sortedPair(a.key)
            JSONText.appendStatic(#""pair":["#, to: &out)
            symbols.entities.appendJSONString(x, to: &out)
            out.append(44)
            symbols.entities.appendJSONString(y, to: &out)
            out.append(93)
            first = false
        }
        if a.key.group >= 0 {
            if !first { out.append(44) }
            JSONText.appendStatic(#""group":"#, to: &out)
            JSONText.appendString(engine.groupText(a.key.group), to: &out)
        }
        if a.firing {
            JSONText.appendStatic(#"},"state":"firing","time":""#, to: &out)
        } else {
            JSONText.appendStatic(#"},"state":"resolved","time":""#, to: &out)
        }
        EventTime.append(a.time, to: &out)
        JSONText.appendStatic(#"","evidence":["#, to: &out)
        let refs = a.evidenceRefs
        for i in 0..<refs.count {
            if i > 0 { out.append(44) }
            let r = refs[i]
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
        JSONText.appendStatic(#"],"details":{"#, to: &out)
        let dv = a.detailValues
        if dv.inline >= 0 {
            // The inline numbers: names that need no escaping.
            if dv.inline > 0 { Self.appendNumber(dv.names.0, dv.values.0, to: &out) }
            if dv.inline > 1 {
                out.append(44)
                Self.appendNumber(dv.names.1, dv.values.1, to: &out)
            }
        }
        for (i, (k, v)) in (dv.list ?? []).enumerated() {
            if i > 0 { out.append(44) }
            JSONText.appendString(k, to: &out)
            out.append(58)
            switch v {
            case .null: JSONText.appendStatic("null", to: &out)
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
        JSONText.appendStatic("}\n", to: &out)
    }
}

extension AlertEncoder {
    /// `"name":number`.
    @inline(__always)
    static func appendNumber(_ n: AlertDetails.Name, _ v: Double, to out: inout [UInt8]) {
        out.append(34)
        JSONText.appendStatic(n.text, to: &out)
        JSONText.appendStatic(#"":"#, to: &out)
        JSONText.appendNumber(v, to: &out)
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
            // The digits of `d.description` (shortest round trip), written straight into
            // `out`: `description` made a String (an allocation past 15 bytes) to be copied.
            var sink = DigitSink()
            swap(&sink.out, &out)
            d.write(to: &sink)
            swap(&sink.out, &out)
        }
    }

    /// Appends a literal's bytes (one copy; a `String` literal's `.utf8` was appended through
    /// the generic sequence path).
    @inline(__always)
    public static func appendStatic(_ s: StaticString, to out: inout [UInt8]) {
        s.withUTF8Buffer { out.append(contentsOf: $0) }
    }
}

/// Names written as JSON string literals, prebuilt once: the alert lines name rules and
/// zones by their ids, which were escaped for every alert (and reading a zone's id from the
/// engine's array retained its shape).
public struct QuotedNames: Sendable {
    var bytes: [UInt8] = []
    var starts: [Int32] = [0]

    public init(_ names: [String]) {
        for n in names {
            JSONText.appendString(n, to: &bytes)
            starts.append(Int32(bytes.count))
        }
    }

    /// Appends name `i` (quoted and escaped).
    @inline(__always)
    public func append(_ i: Int, to out: inout [UInt8]) {
        bytes.withUnsafeBufferPointer { out.append(contentsOf: UnsafeBufferPointer(rebasing: $0[Int(starts[i])..<Int(starts[i + 1])])) }
    }
}

/// Receives a number's text from `Double.write(to:)`. The standard library hands the
/// digits of a floating-point number to `_writeASCII` as bytes (the same text as
/// `description`); `write(_:)` takes any other text.
struct DigitSink: TextOutputStream {
    var out: [UInt8] = []
    mutating func write(_ string: String) { out.append(contentsOf: string.utf8) }
    mutating func _writeASCII(_ buffer: UnsafeBufferPointer<UInt8>) { out.append(contentsOf: buffer) }
}
