import Foundation
import TriplineCore
import TriplineStore

/// A small JSON value for API answers, written with members in the given order.
public indirect enum J: Sendable {
    case null
    case bool(Bool)
    case int(Int64)
    case num(Double)
    case str(String)
    case arr([J])
    case obj([(String, J)])
    /// Text that is already JSON (a stored rule, zone or alert).
    case raw(String)

    public static func int(_ i: Int) -> J { .int(Int64(i)) }
    public static func optStr(_ s: String?) -> J { s.map { .str($0) } ?? .null }
    public static func time(_ t: Millis) -> J { t == .min ? .null : .str(EventTime.format(t)) }

    public var text: String {
        var out: [UInt8] = []
        append(to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    public func append(to out: inout [UInt8]) {
        switch self {
        case .null: out += Array("null".utf8)
        case .bool(let b): out += Array((b ? "true" : "false").utf8)
        case .int(let i): out += Array(String(i).utf8)
        case .num(let d): if d.isFinite { JSONText.appendNumber(d, to: &out) } else { out += Array("null".utf8) }
        case .str(let s): JSONText.appendString(s, to: &out)
        case .raw(let s): out += Array(s.utf8)
        case .arr(let a):
            out.append(91)
            for (i, e) in a.enumerated() {
                if i > 0 { out.append(44) }
                e.append(to: &out)
            }
            out.append(93)
        case .obj(let m):
            out.append(123)
            for (i, (k, v)) in m.enumerated() {
                if i > 0 { out.append(44) }
                JSONText.appendString(k, to: &out)
                out.append(58)
                v.append(to: &out)
            }
            out.append(125)
        }
    }

    /// A `TriplineError` as an API error item.
    public static func error(_ e: TriplineError, unit: String = "line") -> J {
        var m: [(String, J)] = [("code", .str(e.code.rawValue)), ("message", .str(e.message))]
        if let l = e.location {
            if l.line > 0 { m.append((unit, .int(l.line))) }
            if l.column > 0 { m.append(("column", .int(l.column))) }
            if !l.pointer.isEmpty || unit == "line" { m.append(("pointer", .str(l.pointer))) }
        }
        m.append(("detail", .str(e.description)))
        return .obj(m)
    }
}

extension StoredAlert {
    /// The API form: the canonical alert fields, then the server's own.
    public var json: J {
        var extra: [(String, J)] = [("id", .int(id)), ("rule_version", .int(version)), ("created_at", .time(createdAt))]
        extra.append(("suppressed_by", silence.map { .int($0) } ?? .null))
        let body = String(line.dropLast())
        return .raw(body + "," + J.obj(extra).text.dropFirst())
    }
}
