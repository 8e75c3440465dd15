import Foundation

/// Newline search for NDJSON input.
public enum NDJSON {
    /// The offset of the first newline at or after `from`, or `p.count` when there is none.
    /// memchr (vectorised in glibc) rather than a loop over every byte of every line.
    @inline(__always)
    public static func nextNewline(_ p: UnsafeBufferPointer<UInt8>, from: Int) -> Int {
        guard from < p.count, let base = p.baseAddress, let q = memchr(base + from, 10, p.count - from) else { return p.count }
        return UnsafeRawPointer(q) - UnsafeRawPointer(base)
    }
}

/// A batch of events still as text: one buffer and where each event lies in it, with the
/// number errors name it by. NDJSON bodies are split into lines; JSON-array bodies into their
/// elements, scanned in place (no tree is built and nothing is re-encoded).
public struct EventTexts: Sendable {
    public var bytes: [UInt8]
    public var starts: [Int]
    public var ends: [Int]
    /// Each event's number in errors: its 1-based line, or its 0-based array index.
    public var numbers: [Int]
    /// How events are named in errors: "line" (NDJSON) or "element" (a JSON array).
    public var unit: String
    /// The input's name in errors.
    public var file: String
    public var count: Int { starts.count }

    public init(bytes: [UInt8], starts: [Int], ends: [Int], numbers: [Int], unit: String, file: String) {
        self.bytes = bytes
        self.starts = starts
        self.ends = ends
        self.numbers = numbers
        self.unit = unit
        self.file = file
    }

    /// Texts given one by one (tests, tools): stored back to back.
    public init(lines: [[UInt8]], numbers: [Int], unit: String, file: String) {
        var b: [UInt8] = []
        var st: [Int] = [], en: [Int] = []
        for l in lines {
            st.append(b.count)
            b += l
            en.append(b.count)
        }
        self.init(bytes: b, starts: st, ends: en, numbers: numbers, unit: unit, file: file)
    }

    /// The text of event `i`.
    public func text(_ i: Int) -> ArraySlice<UInt8> { bytes[starts[i]..<ends[i]] }

    /// Splits a request body: a JSON array when its first non-blank byte is `[`, NDJSON
    /// otherwise. A body that starts with `[` but is not one JSON array fails, located.
    public static func split(_ bytes: [UInt8], file: String) -> Result<EventTexts, TriplineError> {
        let first = bytes.first { $0 != 32 && $0 != 10 && $0 != 13 && $0 != 9 }
        return first == UInt8(ascii: "[") ? jsonArray(bytes, file: file) : .success(ndjson(bytes, file: file))
    }

    /// NDJSON: one event per line; blank lines are skipped, a CR before the LF is dropped.
    public static func ndjson(_ bytes: [UInt8], file: String) -> EventTexts {
        var starts: [Int] = [], ends: [Int] = [], numbers: [Int] = []
        var start = 0
        var lineNo = 0
        bytes.withUnsafeBufferPointer { p in
            while start < p.count {
                let end = NDJSON.nextNewline(p, from: start)
                lineNo += 1
                var e = end
                if e > start && p[e - 1] == 13 { e -= 1 }
                var blank = true
                for k in start..<e where p[k] != 32 && p[k] != 9 { blank = false; break }
                if !blank {
                    starts.append(start)
                    ends.append(e)
                    numbers.append(lineNo)
                }
                start = end + 1
            }
        }
        return EventTexts(bytes: bytes, starts: starts, ends: ends, numbers: numbers, unit: "line", file: file)
    }

    /// A JSON array of events: each element's extent is found by scanning the body once, in
    /// place. An element written over several lines has its line breaks (whitespace outside
    /// strings: a raw line break inside a string is invalid JSON and fails the scan) turned into
    /// spaces, so that every event's text is one line, as the log stores it.
    public static func jsonArray(_ body: [UInt8], file: String) -> Result<EventTexts, TriplineError> {
        var bytes = body
        var starts: [Int] = [], ends: [Int] = []
        var failure: ScanError?
        var multiLine: [Int] = []
        bytes.withUnsafeBufferPointer { p in
            var s = JSONScanner(p)
            s.skipWhitespace()
            guard s.peek() == 91 else { failure = ScanError(s.i, "expected '['"); return }
            s.i += 1
            s.skipWhitespace()
            if s.peek() == 93 {
                s.i += 1
            } else {
                while true {
                    s.skipWhitespace()
                    let start = s.i
                    if let e = s.skipValue(depth: 1) { failure = e; return }
                    starts.append(start)
                    ends.append(s.i)
                    for k in start..<s.i where p[k] == 10 || p[k] == 13 { multiLine.append(starts.count - 1); break }
                    s.skipWhitespace()
                    guard let c = s.peek() else { failure = ScanError(s.i, "unexpected end of input: the array is not closed"); return }
                    s.i += 1
                    if c == 93 { break }
                    if c != 44 { failure = ScanError(s.i - 1, "expected ',' or ']'"); return }
                }
            }
            s.skipWhitespace()
            if !s.atEnd { failure = ScanError(s.i, "unexpected \(s.describeHere()) after the end of the JSON value") }
        }
        if let e = failure {
            var line = 1, col = 1
            for k in 0..<min(e.offset, bytes.count) {
                if bytes[k] == 10 { line += 1; col = 1 } else { col += 1 }
            }
            return .failure(TriplineError(.syntax, "invalid JSON: \(e.message)", at: SourceLocation(file: file, line: line, column: col)))
        }
        for i in multiLine {
            for k in starts[i]..<ends[i] where bytes[k] == 10 || bytes[k] == 13 { bytes[k] = 32 }
        }
        return .success(EventTexts(bytes: bytes, starts: starts, ends: ends, numbers: Array(starts.indices), unit: "element", file: file))
    }
}

/// The records a log holds besides events, in one place: `#advance <ms>` (event time moved on
/// by an operator or by idle advance) is written by the server and read back by every replay
/// of the log (rebuild, backtest).
public enum LogRecord {
    static let advancePrefix = Array("#advance ".utf8)

    /// The line that records an advance of event time to `t`.
    public static func advance(_ t: Millis) -> [UInt8] { advancePrefix + Array(String(t).utf8) }

    /// The time of an `#advance <ms>` line, or nil for any other line. An advance beyond the
    /// time bounds (written by a version before them) is nil, as such an event is refused: it
    /// would make every later event late.
    public static func advanceTime(_ line: UnsafeBufferPointer<UInt8>) -> Millis? {
        guard line.count > advancePrefix.count, line.starts(with: advancePrefix) else { return nil }
        guard let t = Millis(String(decoding: line.dropFirst(advancePrefix.count), as: UTF8.self)), t >= 0, t <= TimeBounds.maxTime else { return nil }
        return t
    }

    /// Is this log line a record (starts with `#`) rather than an event?
    @inline(__always)
    public static func isRecord(_ line: UnsafeBufferPointer<UInt8>) -> Bool { line.first == UInt8(ascii: "#") }
}
