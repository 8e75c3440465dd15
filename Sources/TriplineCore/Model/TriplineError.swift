import Foundation

/// Where in an input something went wrong: a file, a line and column, and a JSON pointer.
public struct SourceLocation: Sendable, Hashable, CustomStringConvertible {
    /// The file name as given by the user, or a label such as `<stdin>` or `request body`.
    public var file: String
    /// 1-based line, or 0 when unknown.
    public var line: Int
    /// 1-based column, or 0 when unknown.
    public var column: Int
    /// RFC 6901 JSON pointer to the offending value inside the document or line ("" = whole).
    public var pointer: String

    public init(file: String, line: Int = 0, column: Int = 0, pointer: String = "") {
        self.file = file
        self.line = line
        self.column = column
        self.pointer = pointer
    }

    public var description: String {
        var s = file
        if line > 0 {
            s += ":\(line)"
            if column > 0 { s += ":\(column)" }
        }
        if !pointer.isEmpty { s += " at \(pointer)" }
        return s
    }
}

/// The single error type of the core: an extensible code, a message that tells the user
/// what to do, and where.
public struct TriplineError: Error, Sendable, Hashable, CustomStringConvertible {
    /// A stable, machine-readable category of the error.
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        public let rawValue: String
        public init(_ rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        public static let syntax = Code("syntax")
        public static let missingField = Code("missing_field")
        public static let unknownField = Code("unknown_field")
        public static let invalidValue = Code("invalid_value")
        public static let invalidGeometry = Code("invalid_geometry")
        public static let duplicateId = Code("duplicate_id")
        public static let sensitiveTag = Code("sensitive_tag")
        public static let unknownReference = Code("unknown_reference")
        public static let io = Code("io")
    }

    public var code: Code
    public var message: String
    public var location: SourceLocation?

    public init(_ code: Code, _ message: String, at location: SourceLocation? = nil) {
        self.code = code
        self.message = message
        self.location = location
    }

    public var description: String {
        if let location { return "\(location): \(message)" }
        return message
    }
}

/// Several errors of one input, reported together (a file's errors are all reported at once).
public struct TriplineErrors: Error, Sendable, CustomStringConvertible {
    public var errors: [TriplineError]
    public init(_ errors: [TriplineError]) { self.errors = errors }
    public var description: String { errors.map(\.description).joined(separator: "\n") }
}

/// Escapes one reference token of a JSON pointer (RFC 6901).

public func pointerToken(_ s: String) -> String {
    if !s.utf8.contains(where: { $0 == 126 || $0 == 47 }) { return s }
    return s.replacingOccurrences(of: "~", with: "~0").replacingOccurrences(of: "/", with: "~1")
}

/// UTF-8 validation with a location: text input that is not UTF-8 is refused, never turned
/// into U+FFFD silently.
public enum UTF8Text {
    /// The 1-based line and column (in bytes) and the byte offset of the first byte that is not
    /// part of a well-formed UTF-8 sequence (overlong forms, surrogates and code points beyond
    /// U+10FFFF are ill-formed), or nil when all of `bytes` is UTF-8.
    public static func firstInvalid<C: Collection>(_ bytes: C) -> (line: Int, column: Int, offset: Int)? where C.Element == UInt8 {
        var line = 1, col = 1, offset = 0
        var it = bytes.makeIterator()
        var pending: [UInt8] = []
        func next() -> UInt8? {
            if !pending.isEmpty { return pending.removeFirst() }
            return it.next()
        }
        while let b = next() {
            let start = offset
            if b < 0x80 {
                offset += 1
                if b == 10 { line += 1; col = 1 } else { col += 1 }
                continue
            }
            var need = 0
            var lo: UInt8 = 0x80, hi: UInt8 = 0xBF
            switch b {
            case 0xC2...0xDF: need = 1
            case 0xE0: need = 2; lo = 0xA0
            case 0xE1...0xEC, 0xEE, 0xEF: need = 2
            case 0xED: need = 2; hi = 0x9F
            case 0xF0: need = 3; lo = 0x90
            case 0xF1...0xF3: need = 3
            case 0xF4: need = 3; hi = 0x8F
            default: return (line, col, start)
            }
            offset += 1
            for k in 0..<need {
                guard let c = next() else { return (line, col, start) }
                let okRange = k == 0 ? (lo...hi) : (0x80...0xBF)
                guard okRange.contains(c) else { return (line, col, start) }
                offset += 1
            }
            col += 1 + need
        }
        return nil
    }

    /// The bytes as a String, or an error naming where the first invalid byte is.
    public static func decode(_ bytes: [UInt8], file: String) -> Result<String, TriplineError> {
        // The standard library's check is the fast one; the located scan runs only on failure.
        if let s = String(validating: bytes, as: UTF8.self) { return .success(s) }
        if let bad = firstInvalid(bytes) {
            return .failure(TriplineError(.syntax, "the text is not valid UTF-8 (first bad byte at offset \(bad.offset)); send UTF-8",
                                          at: SourceLocation(file: file, line: bad.line, column: bad.column)))
        }
        return .success(String(decoding: bytes, as: UTF8.self))
    }
}
