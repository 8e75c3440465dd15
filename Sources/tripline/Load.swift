import ArgumentParser
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// `tripline load`: streams an NDJSON events file to a server in batches over HTTP and reports
/// sustained events/s and acknowledgement latency (a benchmark, not a test).
struct Load: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "load",
        abstract: "Send an events file to a server in batches and report events/s and ack latency (p50/p99).",
        discussion: "Batches are sent by --connections workers; each waits for its acknowledgement (the durable commit) before sending its next batch."
    )
    @Option(help: "Server URL, e.g. http://127.0.0.1:8080") var url: String
    @Option(help: "API token with the ingest role (or operator/admin).") var token: String
    @Option(help: "Events per batch.") var batch = 1000
    @Option(help: "Concurrent connections.") var connections = 4
    @Flag(name: .customLong("json-array"), help: "Send each batch as one JSON array of events instead of NDJSON lines.") var jsonArray = false
    @Option(help: "Instead of a file: synthesize a steady stream of this many events/s, stamped with the wall clock (needs --entities and --region).") var rate: Int?
    @Option(help: "With --rate: how long to send, e.g. 30m.") var duration = "60s"
    @Option(help: "With --rate: the registered entities (NDJSON, as `generate` writes them).") var entities: String?
    @Option(help: "With --rate: where the entities move, minLon,minLat,maxLon,maxLat.") var region: String?
    @Option(help: "With --rate: the random seed of tracks and event mix.") var seed = 1
    @Argument(help: "The events file (NDJSON).") var events: String?

    func run() async throws {
        if let rate { return try await steady(rate: rate) }
        guard let events else { throw ValidationError("give an events file, or --rate for a synthesized stream") }
        guard let data = FileManager.default.contents(atPath: events) else { throw ValidationError("cannot read \(events)") }
        let bytes = [UInt8](data)
        var bodies: [Data] = []
        var start = 0, count = 0
        var lines = 0
        for i in 0..<bytes.count where bytes[i] == 10 {
            count += 1
            lines += 1
            if count == batch {
                bodies.append(Data(bytes[start...i]))
                start = i + 1
                count = 0
            }
        }
        if start < bytes.count { bodies.append(Data(bytes[start...])) }
        if jsonArray {
            // "[" + the batch's lines joined by "," + "]" (blank lines dropped).
            bodies = bodies.map { body in
                var out = Data("[".utf8)
                var first = true
                for line in body.split(separator: 10) where !line.allSatisfy({ $0 == 32 || $0 == 13 }) {
                    if !first { out.append(44) }
                    out.append(contentsOf: line)
                    first = false
                }
                out.append(93)
                return out
            }
        }
        guard let u = URL(string: url), let host = u.host, let port = u.port else { throw ValidationError("--url must be like http://127.0.0.1:8080") }
        let queue = WorkQueue(bodies)
        let began = Date()
        let results = LatencySink()
        var threads: [Thread] = []
        let done = DispatchGroup()
        let contentType = jsonArray ? "application/json" : "application/x-ndjson"
        for _ in 0..<connections {
            done.enter()
            let t = Thread { [token] in
                defer { done.leave() }
                do {
                    let conn = try RawHTTPConnection(host: host, port: port)
                    var lat: [Double] = []
                    while let body = queue.next() {
                        while true {
                            let t0 = DispatchTime.now().uptimeNanoseconds
                            let (code, answer) = try conn.post(path: "/v1/events", token: token, body: body, contentType: contentType)
                            if code == 429 { usleep(50_000); continue }
                            guard code == 200 else { throw ValidationError("server answered \(code): \(answer)") }
                            lat.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
                            break
                        }
                    }
                    results.add(lat)
                } catch {
                    results.fail("\(error)")
                }
            }
            threads.append(t)
            t.start()
        }
        done.wait()
        if let f = results.failure { throw ValidationError(f) }
        let latencies = results.all
        let elapsed = Date().timeIntervalSince(began)
        let sorted = latencies.sorted()
        func pct(_ p: Double) -> Double { sorted.isEmpty ? 0 : sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))] * 1000 }
        print(String(format: "%d events in %d batches of %d over %d connections: %.2f s, %.0f events/s, ack latency p50 %.1f ms, p99 %.1f ms, max %.1f ms",
                     lines, bodies.count, batch, connections, elapsed, Double(lines) / elapsed, pct(0.5), pct(0.99), (sorted.last ?? 0) * 1000))
    }
}

final class LatencySink: @unchecked Sendable {
    private let lock = NSLock()
    private(set) var all: [Double] = []
    private(set) var failure: String?
    func add(_ l: [Double]) { lock.lock(); all += l; lock.unlock() }
    func fail(_ s: String) { lock.lock(); failure = s; lock.unlock() }
}

/// A minimal HTTP/1.1 keep-alive client on a blocking socket: light enough that the load
/// generator does not take the CPU the server is being measured on.
final class RawHTTPConnection {
    let fd: Int32
    let host: String
    var buffer: [UInt8] = []

    init(host: String, port: Int) throws {
        self.host = host
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        inet_pton(AF_INET, host == "localhost" ? "127.0.0.1" : host, &addr.sin_addr)
        let r = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard r == 0 else { throw ValidationError("cannot connect to \(host):\(port)") }
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
    }

    deinit { close(fd) }

    func post(path: String, token: String, body: Data, contentType: String = "application/x-ndjson") throws -> (Int, String) {
        var req = Array("POST \(path) HTTP/1.1\r\nHost: \(host)\r\nAuthorization: Bearer \(token)\r\nContent-Type: \(contentType)\r\nContent-Length: \(body.count)\r\n\r\n".utf8)
        req += body
        var off = 0
        while off < req.count {
            let n = req.withUnsafeBytes { send(fd, $0.baseAddress! + off, req.count - off, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { throw ValidationError("connection lost while sending") }
            off += n
        }
        // Read the head, then Content-Length bytes of body.
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            if let end = headEnd() {
                let head = String(decoding: buffer[..<end], as: UTF8.self)
                let code = Int(head.split(separator: " ").dropFirst().first ?? "") ?? 0
                var length = 0
                for line in head.split(separator: "\r\n") where line.lowercased().hasPrefix("content-length:") {
                    length = Int(line.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)) ?? 0
                }
                while buffer.count < end + 4 + length { try fill(&chunk) }
                let text = String(decoding: buffer[(end + 4)..<(end + 4 + length)], as: UTF8.self)
                buffer.removeFirst(end + 4 + length)
                return (code, text)
            }
            try fill(&chunk)
        }
    }

    func headEnd() -> Int? {
        guard buffer.count >= 4 else { return nil }
        for i in 0...(buffer.count - 4) where buffer[i] == 13 && buffer[i + 1] == 10 && buffer[i + 2] == 13 && buffer[i + 3] == 10 { return i }
        return nil
    }

    func fill(_ chunk: inout [UInt8]) throws {
        let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress!, $0.count, 0) }
        guard n > 0 else { throw ValidationError("connection closed by the server") }
        buffer += chunk[0..<n]
    }
}

final class WorkQueue: @unchecked Sendable {
    private let lock = NSLock()
    private var items: [Data]
    private var i = 0
    init(_ items: [Data]) { self.items = items }
    func next() -> Data? {
        lock.lock()
        defer { lock.unlock() }
        guard i < items.count else { return nil }
        i += 1
        return items[i - 1]
    }
}
