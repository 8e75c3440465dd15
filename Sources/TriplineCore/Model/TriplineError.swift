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
