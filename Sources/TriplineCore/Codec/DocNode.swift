/// A parsed document (JSON or YAML) that remembers where each value came from, so that
/// decoding can report errors with file, line, column and JSON pointer.
public struct DocNode: Sendable {
    /// One member of an object, in document order.
    public struct Member: Sendable {
        public var key: String
        public var node: DocNode
        public init(key: String, node: DocNode) {
            self.key = key
            self.node = node
        }
    }

    public enum Value: Sendable {
        case null
        case bool(Bool)
        /// A number with the text it was written as and whether it was written as an integer.
        case number(Double, isInteger: Bool)
        case string(String)
        case array([DocNode])
        case object([Member])
        /// An array of exactly two numbers on one line, kept without an array of nodes: the
        /// numbers, then where they were written (`PairColumns`). Only a parse that asks for
        /// it (`JSONDocumentParser.parse(_:file:compactPairs:)`, used for GeoJSON, where such
        /// arrays are most of a file) makes it; `elements` gives the two number nodes a plain
        /// parse would have made, so readers that use `elements` see no difference.
        case pair(Double, Double, PairColumns)
    }

    /// Where a `.pair`'s numbers start, as columns after the array's own, and whether each
    /// was written as an integer.
    public struct PairColumns: Sendable {
        /// Bits 0-14: the first number's column minus the array's; bit 15: it is an integer.
        /// Bits 16-30 and 31: the same for the second.
        var bits: UInt32
        /// Column offsets below this fit (a pair written across more stays a plain array).
        static let limit = 0x8000

        init(first: Int, firstIsInteger: Bool, second: Int, secondIsInteger: Bool) {
            bits = UInt32(first) | (firstIsInteger ? 0x8000 : 0) | UInt32(second) << 16 | (secondIsInteger ? 0x8000_0000 : 0)
        }
        var first: Int { Int(bits & 0x7FFF) }
        var firstIsInteger: Bool { bits & 0x8000 != 0 }
        var second: Int { Int(bits >> 16 & 0x7FFF) }
        var secondIsInteger: Bool { bits & 0x8000_0000 != 0 }
    }

    public var value: Value
    public var line: Int
    public var column: Int

    public init(_ value: Value, line: Int, column: Int) {
        self.value = value
        self.line = line
        self.column = column
    }

    /// A short name of the value's type for messages ("a string", "an object", ...).
    /// The node as compact JSON text (members in document order; numbers as ECMAScript
    /// writes them).
    public var jsonText: String {
        switch value {
        case .null: return "null"
        case .bool(let b): return b ? "true" : "false"
        case .number(let d, _): return JSONText.ecmaScript(d)
        case .string(let s): return JSONText.quoted(s)
        case .array(let a): return "[" + a.map(\.jsonText).joined(separator: ",") + "]"
        case .object(let m): return "{" + m.map { JSONText.quoted($0.key) + ":" + $0.node.jsonText }.joined(separator: ",") + "}"
        case .pair(let x, let y, _): return "[" + JSONText.ecmaScript(x) + "," + JSONText.ecmaScript(y) + "]"
        }
    }

    public var typeName: String {
        switch value {
        case .null: return "null"
        case .bool: return "a boolean"
        case .number: return "a number"
        case .string: return "a string"
        case .array, .pair: return "an array"
        case .object: return "an object"
        }
    }

    public var stringValue: String? { if case .string(let s) = value { return s }; return nil }
    public var members: [Member]? { if case .object(let m) = value { return m }; return nil }
    public var elements: [DocNode]? {
        switch value {
        case .array(let a): return a
        case .pair(let x, let y, let at):
            return [DocNode(.number(x, isInteger: at.firstIsInteger), line: line, column: column + at.first),
                    DocNode(.number(y, isInteger: at.secondIsInteger), line: line, column: column + at.second)]
        default: return nil
        }
    }
    public var numberValue: Double? { if case .number(let d, _) = value { return d }; return nil }

    /// Looks a member up by key.
    public subscript(key: String) -> DocNode? {
        guard case .object(let m) = value else { return nil }
        return m.first(where: { $0.key == key })?.node
    }
}

/// Parses JSON text into a `DocNode` tree with line and column positions.
public struct JSONDocumentParser {
    /// Parses a whole JSON document. `file` names the input in error messages; `lineOffset` is
    /// added to lines (for NDJSON, where each line is parsed alone).
    /// With `compactPairs`, an array of exactly two numbers written on one line is a `.pair`
    /// (a GeoJSON position: no array of nodes to allocate, fill and free); only for readers
    /// that take arrays through `elements`.
    public static func parse(_ bytes: UnsafeBufferPointer<UInt8>, file: String, lineOffset: Int = 0, compactPairs: Bool = false) -> Result<DocNode, TriplineError> {
        var p = JSONDocumentParser(bytes: bytes, file: file, lineOffset: lineOffset)
        p.compactPairs = compactPairs
        defer { p.pending.release() }
        p.lineStarts = [0]
        var k = NDJSON.nextNewline(bytes, from: 0)
        while k < bytes.count {
            p.lineStarts.append(k + 1)
            k = NDJSON.nextNewline(bytes, from: k + 1)
        }
        do {
            p.s.skipWhitespace()
            let node = try p.value(depth: 0)
            p.s.skipWhitespace()
            if !p.s.atEnd {
                throw ScanError(p.s.i, "unexpected \(p.s.describeHere()) after the end of the JSON value")
            }
            return .success(node)
        } catch let e as ScanError {
            let (l, c) = p.lineColumn(e.offset)
            return .failure(TriplineError(.syntax, "invalid JSON: \(e.message)", at: SourceLocation(file: file, line: l, column: c)))
        } catch {
            return .failure(TriplineError(.syntax, "invalid JSON", at: SourceLocation(file: file)))
        }
    }

    public static func parse(_ text: String, file: String, lineOffset: Int = 0, compactPairs: Bool = false) -> Result<DocNode, TriplineError> {
        var t = text
        return t.withUTF8 { parse($0, file: file, lineOffset: lineOffset, compactPairs: compactPairs) }
    }

    var s: JSONScanner
    let file: String
    let lineOffset: Int
    var lineStarts: [Int] = []
    var cursorLine = 0
    /// The elements of the arrays being parsed, innermost last.
    var pending = PendingNodes()
    var compactPairs = false

    init(bytes: UnsafeBufferPointer<UInt8>, file: String, lineOffset: Int) {
        self.s = JSONScanner(bytes)
        self.file = file
        self.lineOffset = lineOffset
    }

    func lineColumn(_ offset: Int) -> (Int, Int) {
        // Binary search for the line containing offset.
        var lo = 0, hi = lineStarts.count - 1
        while lo < hi {
            let mid = (lo + hi + 1) / 2
            if lineStarts[mid] <= offset { lo = mid } else { hi = mid - 1 }
        }
        return (lo + 1 + lineOffset, offset - lineStarts[lo] + 1)
    }

    mutating func string() throws -> String {
        switch s.scanString() {
        case .success(.raw(let a, let b)):
            return String(decoding: UnsafeBufferPointer(rebasing: s.bytes[a..<b]), as: UTF8.self)
        case .success(.unescaped):
            return String(decoding: s.scratch, as: UTF8.self)
        case .failure(let e):
            throw e
        }
    }

    /// The line and column of `offset`, which is at or after the previous call's (values are
    /// read in document order): the line cursor moves forward, amortised O(1) per value.
    mutating func nextLineColumn(_ offset: Int) -> (Int, Int) {
        while cursorLine + 1 < lineStarts.count && lineStarts[cursorLine + 1] <= offset { cursorLine += 1 }
        return (cursorLine + 1 + lineOffset, offset - lineStarts[cursorLine] + 1)
    }

    mutating func value(depth: Int) throws -> DocNode {
        guard depth < 256 else { throw ScanError(s.i, "nesting is too deep (more than 256 levels)") }
        let start = s.i
        let (l, c) = nextLineColumn(start)
        guard let ch = s.peek() else { throw ScanError(s.i, "unexpected end of input: expected a value") }
        switch ch {
        case 123:
            s.i += 1
            var members: [DocNode.Member] = []
            // Repeated names: looked for among the members so far while there are few (a
            // GeoJSON feature's objects have two to four; a set per object, hashing every
            // name, was a tenth of parsing a zones file), in a set from the ninth on.
            var seen: Set<String>? = nil
            s.skipWhitespace()
            if s.peek() == 125 { s.i += 1; return DocNode(.object([]), line: l, column: c) }
            while true {
                s.skipWhitespace()
                guard s.peek() == 34 else { throw ScanError(s.i, "expected a quoted member name, found \(s.describeHere())") }
                let keyOffset = s.i
                let key = try string()
                let repeated: Bool
                if members.count < 8 {
                    repeated = members.contains { $0.key == key }
                } else {
                    if seen == nil { seen = Set(members.map(\.key)) }
                    repeated = !seen!.insert(key).inserted
                }
                if repeated { throw ScanError(keyOffset, "duplicate member \"\(key)\"") }
                s.skipWhitespace()
                guard s.peek() == 58 else { throw ScanError(s.i, "expected ':' after member name, found \(s.describeHere())") }
                s.i += 1
                s.skipWhitespace()
                let v = try value(depth: depth + 1)
                members.append(.init(key: key, node: v))
                s.skipWhitespace()
                guard let d = s.peek() else { throw ScanError(s.i, "unexpected end of input: missing '}'") }
                s.i += 1
                if d == 125 { break }
                if d != 44 { throw ScanError(s.i - 1, "expected ',' or '}', found \(describe(d))") }
            }
            return DocNode(.object(members), line: l, column: c)
        case 91:
            s.i += 1
            s.skipWhitespace()
            if s.peek() == 93 { s.i += 1; return DocNode(.array([]), line: l, column: c) }
            if compactPairs && depth < 255, let pair = pair(line: l, column: c) { return pair }
            let mark = pending.count
            while true {
                s.skipWhitespace()
                pending.push(try value(depth: depth + 1))
                s.skipWhitespace()
                guard let d = s.peek() else { throw ScanError(s.i, "unexpected end of input: missing ']'") }
                s.i += 1
                if d == 93 { break }
                if d != 44 { throw ScanError(s.i - 1, "expected ',' or ']', found \(describe(d))") }
            }
            return DocNode(.array(pending.take(from: mark)), line: l, column: c)
        case 34:
            return DocNode(.string(try string()), line: l, column: c)
        case 116:
            guard s.scanLiteral("true") else { throw ScanError(start, "invalid literal (expected true)") }
            return DocNode(.bool(true), line: l, column: c)
        case 102:
            guard s.scanLiteral("false") else { throw ScanError(start, "invalid literal (expected false)") }
            return DocNode(.bool(false), line: l, column: c)
        case 110:
            guard s.scanLiteral("null") else { throw ScanError(start, "invalid literal (expected null)") }
            return DocNode(.null, line: l, column: c)
        case 45, 48...57:
            switch s.scanNumber() {
            case .success(let (v, isInt)): return DocNode(.number(v, isInteger: isInt), line: l, column: c)
            case .failure(let e): throw e
            }
        default:
            if ch == 78 || ch == 73 {
                throw ScanError(start, "NaN and Infinity are not JSON numbers; send a finite number")
            }
            throw ScanError(start, "unexpected \(s.describeHere()): expected a value")
        }
    }

    /// After an array's `[` and any whitespace: the array as a `.pair` when it is exactly two
    /// numbers on the array's line (columns within `PairColumns.limit`; the numbers one level
    /// deeper than the array within the nesting limit); otherwise nil, with
    /// nothing consumed, and the array is parsed as any other (with the same errors).
    mutating func pair(line l: Int, column c: Int) -> DocNode? {
        guard let first = s.peek(), first == 45 || (first >= 48 && first <= 57) else { return nil }
        let start = s.i
        let lineEnd = cursorLine + 1 < lineStarts.count ? lineStarts[cursorLine + 1] : Int.max
        let c0 = start - lineStarts[cursorLine] + 1
        if start < lineEnd, c0 - c < DocNode.PairColumns.limit, case .success(let (x, xi)) = s.scanNumber() {
            s.skipWhitespace()
            if s.peek() == 44 {
                s.i += 1
                s.skipWhitespace()
                let yStart = s.i
                if let d = s.peek(), d == 45 || (d >= 48 && d <= 57), yStart < lineEnd, yStart - start + c0 - c < DocNode.PairColumns.limit,
                   case .success(let (y, yi)) = s.scanNumber() {
                    s.skipWhitespace()
                    if s.peek() == 93 {
                        s.i += 1
                        return DocNode(.pair(x, y, DocNode.PairColumns(first: c0 - c, firstIsInteger: xi, second: yStart - start + c0 - c, secondIsInteger: yi)), line: l, column: c)
                    }
                }
            }
        }
        s.i = start
        return nil
    }

    func describe(_ c: UInt8) -> String {
        if c >= 32 && c < 127 { return "'\(Character(UnicodeScalar(c)))'" }
        return "byte \(c)"
    }
}

/// A stack of parsed nodes for `JSONDocumentParser`: an array's elements are gathered here
/// and moved, when it closes, into an array of exactly their number. Appending to each
/// array as it grew reallocated it (twice for a [lon, lat] position, log2(n) times for a
/// ring of n), which showed in zone loading. Released by `release()` (the parser is a
/// struct and cannot free it itself).
struct PendingNodes {
    var base: UnsafeMutablePointer<DocNode>?
    var count = 0
    var capacity = 0

    mutating func push(_ node: DocNode) {
        if count == capacity {
            let grown = Swift.max(64, capacity * 2)
            let b = UnsafeMutablePointer<DocNode>.allocate(capacity: grown)
            if let base {
                b.moveInitialize(from: base, count: count)
                base.deallocate()
            }
            base = b
            capacity = grown
        }
        (base! + count).initialize(to: node)
        count += 1
    }

    /// The nodes from `mark` on, moved out (the stack ends at `mark`).
    mutating func take(from mark: Int) -> [DocNode] {
        let n = count - mark
        guard n > 0, let base else { return [] }
        // Short arrays (a [lon, lat] position is most of a GeoJSON file) are built as array
        // literals: the literal's storage is allocated inline, with its type's metadata
        // cached, while `init(unsafeUninitializedCapacity:)` goes through the standard
        // library's unspecialized buffer initialiser, which looks the storage type's metadata
        // up in the runtime's hash table on every call (a sixth of zone parsing in `perf`).
        if n <= 2 {
            count = mark
            let a = (base + mark).move()
            if n == 1 { return [a] }
            let b = (base + mark + 1).move()
            return [a, b]
        }
        let out = [DocNode](unsafeUninitializedCapacity: n) { buffer, initialized in
            buffer.baseAddress!.moveInitialize(from: base + mark, count: n)
            initialized = n
        }
        count = mark
        return out
    }

    /// Frees the stack (with whatever an error left on it).
    mutating func release() {
        guard let base else { return }
        base.deinitialize(count: count)
        base.deallocate()
        self.base = nil
        count = 0
        capacity = 0
    }
}
