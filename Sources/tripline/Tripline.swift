import ArgumentParser
import Foundation
import TriplineCore
import TriplineYAML

@main
struct Tripline: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tripline",
        abstract: "Real-time geofencing and event-pattern alerts, evaluated on event time.",
        subcommands: [Replay.self, Validate.self, TestCommand.self, Generate.self, Bench.self, BenchIds.self, BenchNotify.self, BenchQuery.self, Serve.self, Token.self, Demo.self, Load.self, Audit.self, Backup.self, AlertsCommand.self, SilenceCommand.self, PolicyCommand.self, QueryCommand.self, ClusterCommand.self, Worker.self]
    )
}

/// Exit with status 2 for invalid input, after printing the errors.
struct InputError: Error, CustomStringConvertible {
    var description: String
}

enum CLI {
    static var stderrIsTerminal: Bool { isatty(2) == 1 }

    static func printErr(_ s: String) {
        FileHandle.standardError.write((s + "\n").data(using: .utf8)!)
    }

    static func readText(_ path: String, what: String) throws -> String {
        String(decoding: try readUTF8(path, what: what), as: UTF8.self)
    }

    /// A file's bytes, checked to be UTF-8 (an error names the first bad byte's line and
    /// column), without making a String of them: a zones file is parsed from its bytes (a
    /// String of a few megabytes was two more copies and a validation pass before the first
    /// event of a replay). An all-ASCII file, the usual GeoJSON, is recognised eight bytes at
    /// a time.
    static func readUTF8(_ path: String, what: String) throws -> Data {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw InputError(description: "\(path): cannot read the \(what) file (does it exist and is it readable?)")
        }
        let ascii = data.withUnsafeBytes { raw -> Bool in
            var k = 0, any: UInt64 = 0
            while k + 8 <= raw.count { any |= raw.loadUnaligned(fromByteOffset: k, as: UInt64.self); k += 8 }
            while k < raw.count { any |= UInt64(raw[k]); k += 1 }
            return any & 0x8080_8080_8080_8080 == 0
        }
        if !ascii, case .failure(let e) = UTF8Text.decode([UInt8](data), file: path) {
            throw InputError(description: "\(e.description) (the \(what) file)")
        }
        return data
    }

    /// Loads zones, entities and rules, collecting the errors of all three files.
    static func loadInputs(zones: String?, entities: String?, rules: String?, sensitive: SensitiveTags) -> (zones: [Zone], entities: [EntityInfo], rules: [Rule], errors: [String]) {
        let z = loadZones(zones, sensitive: sensitive), e = loadEntities(entities, sensitive: sensitive), r = loadRules(rules, sensitive: sensitive)
        return (z.zones, e.entities, r.rules, z.errors + e.errors + r.errors)
    }

    /// Runs `body` on `path` when given, turning what it throws into error lines.
    static func attempt(_ path: String?, _ body: (String) throws -> Void) -> [String] {
        guard let path else { return [] }
        do { try body(path) } catch let e as TriplineErrors {
            return e.errors.map(\.description)
        } catch {
            return ["\(error)"]
        }
        return []
    }

    static func loadZones(_ path: String?, sensitive: SensitiveTags) -> (zones: [Zone], errors: [String]) {
        var zs: [Zone] = []
        let errors = attempt(path) { p in
            zs = try readUTF8(p, what: "zones").withUnsafeBytes { raw in
                try ZoneCodec.decode(raw.bindMemory(to: UInt8.self), file: p, sensitive: sensitive).get()
            }
        }
        return (zs, errors)
    }

    static func loadEntities(_ path: String?, sensitive: SensitiveTags) -> (entities: [EntityInfo], errors: [String]) {
        var es: [EntityInfo] = []
        let errors = attempt(path) { p in
            guard let data = FileManager.default.contents(atPath: p) else {
                throw InputError(description: "\(p): cannot read the entities file (does it exist and is it readable?)")
            }
            es = try data.withUnsafeBytes { raw in
                try EntityCodec.decode(raw.bindMemory(to: UInt8.self), file: p, sensitive: sensitive).get()
            }
        }
        return (es, errors)
    }

    static func loadRules(_ path: String?, sensitive: SensitiveTags) -> (rules: [Rule], errors: [String]) {
        var rs: [Rule] = []
        let errors = attempt(path) { p in rs = try RuleFile.decode(try readText(p, what: "rules"), file: p, sensitive: sensitive).get() }
        return (rs, errors)
    }

    static func parseTime(_ s: String, option: String) throws -> Millis {
        switch EventTime.parseText(s) {
        case .success(let t): return t
        case .failure(.malformed(let why)):
            throw ValidationError("\(option) '\(s)' is neither RFC 3339 nor epoch milliseconds: \(why)")
        }
    }

    static func parseDuration(_ s: String, option: String) throws -> Millis {
        switch DurationText.parse(s) {
        case .success(let v): return v
        case .failure(let e): throw ValidationError("\(option): \(e.message)")
        }
    }
}

/// A buffered writer on a file descriptor.
final class Output {
    let fd: Int32
    var buffer: [UInt8] = []
    let ownsFD: Bool

    init(path: String?) throws {
        if let path, path != "-" {
            let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
            guard fd >= 0 else { throw InputError(description: "\(path): cannot open for writing: \(String(cString: strerror(errno)))") }
            self.fd = fd
            ownsFD = true
        } else {
            fd = 1
            ownsFD = false
        }
        buffer.reserveCapacity(1 << 20)
    }

    func write(_ bytes: [UInt8]) {
        buffer.append(contentsOf: bytes)
        if buffer.count >= 1 << 20 { flush() }
    }

    func write(_ s: String) { write(Array(s.utf8)) }

    func flush() {
        var off = 0
        buffer.withUnsafeBytes { p in
            while off < p.count {
                let n = Foundation.write(fd, p.baseAddress! + off, p.count - off)
                if n <= 0 { break }
                off += n
            }
        }
        buffer.removeAll(keepingCapacity: true)
    }

    func close() {
        flush()
        if ownsFD { Foundation.close(fd) }
    }
}

/// Reads a file or stdin in large chunks and hands out lines (without newline or CR).
final class LineReader {
    let fd: Int32
    var buffer: [UInt8]
    var start = 0
    var end = 0
    var eof = false
    var lineNumber = 0
    var bytesRead = 0

    init(path: String) throws {
        if path == "-" {
            fd = 0
        } else {
            fd = open(path, O_RDONLY)
            guard fd >= 0 else { throw InputError(description: "\(path): cannot open the events file: \(String(cString: strerror(errno)))") }
        }
        // Uninitialised: only bytes that `read` wrote are ever read, and zeroing 4 MB here
        // (a replay builds its reader on the thread that then loads the zones) took 5 ms
        // before the first event.
        buffer = [UInt8](unsafeUninitializedCapacity: 4 << 20) { _, count in count = 4 << 20 }
    }

    /// Calls `body` for every line; stops early when it returns false.
    func forEachLine(_ body: (UnsafeBufferPointer<UInt8>, Int) throws -> Bool) rethrows {
        while true {
            // Find complete lines in [start, end).
            let stop: Bool = try buffer.withUnsafeBufferPointer { p in
                var s = start
                let filled = UnsafeBufferPointer(rebasing: p[0..<end])
                while true {
                    let i = NDJSON.nextNewline(filled, from: s)
                    if i == end { break }
                    lineNumber += 1
                    var e = i
                    if e > s && p[e - 1] == 13 { e -= 1 }
                    if !(try body(UnsafeBufferPointer(rebasing: p[s..<e]), lineNumber)) { return true }
                    s = i + 1
                }
                start = s
                return false
            }
            if stop { return }
            if eof {
                if start < end {
                    lineNumber += 1
                    let s = start, e = end
                    start = end
                    _ = try buffer.withUnsafeBufferPointer { p in try body(UnsafeBufferPointer(rebasing: p[s..<e]), lineNumber) }
                }
                return
            }
            // Compact and refill.
            if start > 0 {
                let remaining = end - start
                if remaining > 0 {
                    buffer.withUnsafeMutableBufferPointer { p in
                        _ = memmove(p.baseAddress!, p.baseAddress! + start, remaining)
                    }
                }
                start = 0
                end = remaining
            }
            if end == buffer.count { buffer.append(contentsOf: repeatElement(0, count: buffer.count)) }
            let n = buffer.withUnsafeMutableBufferPointer { p in read(fd, p.baseAddress! + end, p.count - end) }
            if n <= 0 { eof = true } else { end += n; bytesRead += n }
        }
    }

    func close() { if fd != 0 { Foundation.close(fd) } }
}
