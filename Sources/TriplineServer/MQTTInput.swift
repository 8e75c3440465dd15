import Foundation
#if canImport(Glibc)
import Glibc
#endif
import TriplineCore
import TriplineStore

/// MQTT topics read as an event source (`tripline serve --mqtt-input`).
public struct MQTTInputSettings: Sendable {
    public var host: String
    public var port: Int
    public var topics: [String]
    public var clientId: String
    public init(host: String, port: Int, topics: [String], clientId: String) {
        self.host = host
        self.port = port
        self.topics = topics
        self.clientId = clientId
    }
}

/// Subscribes to MQTT topics at QoS 1 with a persistent session and ingests each message's
/// events, at least once: a message is acknowledged (PUBACK) only after its events are
/// committed, so the broker delivers it again if the server dies before that (and holds what
/// is published while the server is down). Duplicates are removed by event id.
///
/// This speaks MQTT 3.1.1 itself over a socket rather than through libmosquitto (which the
/// MQTT receivers use): libmosquitto acknowledges a QoS 1 message as soon as it arrives, before
/// the application has stored it, and has no way to defer that acknowledgement.
public final class MQTTEventInput: EventInput, @unchecked Sendable {
    let settings: MQTTInputSettings

    public init(settings: MQTTInputSettings, host: EngineHost) {
        self.settings = settings
        super.init(host: host, name: "mqtt input")
    }

    override func session() throws {
        let conn = try MQTTConnection(host: settings.host, port: settings.port)
        defer { conn.close() }
        try conn.connect(clientId: settings.clientId, keepAlive: 30)
        try conn.subscribe(settings.topics)
        connected()
        try read(conn)
    }

    private func read(_ conn: MQTTConnection) throws {
        var lastSent = Date()
        let ingest = MessageIngest(host: host, source: "mqtt \(settings.host):\(settings.port)")
        while !isStopped {
            // A batch: messages arriving back to back (no gap over 5 ms), for at most 200 ms
            // and 1,000 messages. (A broker holds back further QoS 1 messages until earlier ones
            // are acknowledged, so waiting longer for more would only add delay.)
            var batch: [MQTTConnection.Publish] = []
            let deadline = Date().addingTimeInterval(0.2)
            while batch.count < 1000 {
                guard let p = try conn.nextPublish(timeout: batch.isEmpty ? 0.2 : 0.005) else { break }
                batch.append(p)
                if Date() >= deadline { break }
            }
            if !batch.isEmpty {
                // `committed(i)` means message i and every one before it are durable. MQTT
                // acknowledges packet by packet, so each of them gets its PUBACK, once: one
                // left out would hold one of the broker's in-flight places for this session
                // (it sends no more once they are all held) and come again on reconnecting.
                var acknowledged = 0
                try ingest.ingest(batch.map(\.payload), describe: { "message on \(batch[$0].topic)" }, committed: { i in
                    // Acknowledged once durable (QoS 0 messages have nothing to acknowledge).
                    while acknowledged <= i {
                        if let id = batch[acknowledged].packetId { try conn.puback(id) }
                        acknowledged += 1
                    }
                }, rejected: { self.rejected += 1 })
                lastSent = Date()
            }
            if Date().timeIntervalSince(lastSent) > 15 {
                try conn.ping()
                lastSent = Date()
            }
        }
    }
}

struct MQTTProtocolError: Error, CustomStringConvertible {
    var description: String
}

/// The few MQTT 3.1.1 packets an at-least-once subscriber needs.
final class MQTTConnection {
    struct Publish {
        var topic: String
        var payload: [UInt8]
        var packetId: UInt16?
    }

    private let fd: Int32
    private var buffer: [UInt8] = []
    private var nextId: UInt16 = 1

    init(host: String, port: Int) throws {
        fd = try TCP.connect(host: host, port: port)
    }

    func close() { Glibc.close(fd) }

    private func send(_ bytes: [UInt8]) throws {
        var off = 0
        while off < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + off, $0.count - off, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { throw MQTTProtocolError(description: "write to the broker failed (errno \(errno))") }
            off += n
        }
    }

    private static func remainingLength(_ n: Int) -> [UInt8] {
        var out: [UInt8] = []
        var x = n
        repeat {
            var b = UInt8(x % 128)
            x /= 128
            if x > 0 { b |= 0x80 }
            out.append(b)
        } while x > 0
        return out
    }

    private static func string(_ s: String) -> [UInt8] {
        let u = Array(s.utf8)
        return [UInt8(u.count >> 8), UInt8(u.count & 0xff)] + u
    }

    private func packet(_ type: UInt8, _ body: [UInt8]) throws {
        try send([type] + Self.remainingLength(body.count) + body)
    }

    /// The next whole packet (type byte and body), or nil when none comes within `timeout`.
    private func readPacket(timeout: Double) throws -> (UInt8, [UInt8])? {
        let end = Date().addingTimeInterval(timeout)
        while true {
            if buffer.count >= 2 {
                var mult = 1, len = 0, i = 1
                var complete = false
                while i < buffer.count && i <= 4 {
                    len += Int(buffer[i] & 0x7f) * mult
                    mult *= 128
                    if buffer[i] & 0x80 == 0 { complete = true; break }
                    i += 1
                }
                if complete && buffer.count >= i + 1 + len {
                    let type = buffer[0]
                    let body = Array(buffer[(i + 1)..<(i + 1 + len)])
                    buffer.removeFirst(i + 1 + len)
                    return (type, body)
                }
            }
            let left = end.timeIntervalSinceNow
            if left <= 0 { return nil }
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let r = poll(&pfd, 1, Int32(max(1, left * 1000)))
            if r == 0 { return nil }
            guard r > 0 else { throw MQTTProtocolError(description: "poll failed (errno \(errno))") }
            var chunk = [UInt8](repeating: 0, count: 65536)
            let n = recv(fd, &chunk, chunk.count, 0)
            guard n > 0 else { throw MQTTProtocolError(description: "the broker closed the connection") }
            buffer += chunk[..<n]
        }
    }

    /// CONNECT with a persistent session (clean session off), and the broker's CONNACK.
    func connect(clientId: String, keepAlive: UInt16) throws {
        let body = Self.string("MQTT") + [4, 0x00 /* persistent session, no will, no login */, UInt8(keepAlive >> 8), UInt8(keepAlive & 0xff)] + Self.string(clientId)
        try packet(0x10, body)
        guard let (type, ack) = try readPacket(timeout: 10), type == 0x20, ack.count == 2 else {
            throw MQTTProtocolError(description: "no CONNACK from the broker")
        }
        guard ack[1] == 0 else { throw MQTTProtocolError(description: "the broker refused the connection (return code \(ack[1]))") }
    }

    /// SUBSCRIBE at QoS 1 to each filter, and the SUBACK.
    func subscribe(_ filters: [String]) throws {
        let id = nextId
        nextId &+= 1
        var body: [UInt8] = [UInt8(id >> 8), UInt8(id & 0xff)]
        for f in filters { body += Self.string(f) + [1] }
        try packet(0x82, body)
        let end = Date().addingTimeInterval(10)
        while Date() < end {
            guard let (type, b) = try readPacket(timeout: 1) else { continue }
            if type & 0xf0 == 0x90 {
                if b.dropFirst(2).contains(0x80) { throw MQTTProtocolError(description: "the broker refused a subscription (\(filters))") }
                return
            }
            // A PUBLISH may come before the SUBACK (a persistent session's queue): keep it.
            if type & 0xf0 == 0x30 { pending.append(try decodePublish(type, b)) }
        }
        throw MQTTProtocolError(description: "no SUBACK from the broker")
    }

    private var pending: [Publish] = []

    private func decodePublish(_ type: UInt8, _ b: [UInt8]) throws -> Publish {
        guard b.count >= 2 else { throw MQTTProtocolError(description: "short PUBLISH") }
        let tl = Int(b[0]) << 8 | Int(b[1])
        guard b.count >= 2 + tl else { throw MQTTProtocolError(description: "short PUBLISH topic") }
        let topic = String(decoding: b[2..<(2 + tl)], as: UTF8.self)
        var i = 2 + tl
        var id: UInt16?
        if (type >> 1) & 3 > 0 {
            guard b.count >= i + 2 else { throw MQTTProtocolError(description: "short PUBLISH id") }
            id = UInt16(b[i]) << 8 | UInt16(b[i + 1])
            i += 2
        }
        return Publish(topic: topic, payload: Array(b[i...]), packetId: id)
    }

    /// The next PUBLISH (other packets, such as PINGRESP, are consumed), or nil on timeout.
    func nextPublish(timeout: Double) throws -> Publish? {
        if !pending.isEmpty { return pending.removeFirst() }
        let end = Date().addingTimeInterval(timeout)
        while true {
            guard let (type, b) = try readPacket(timeout: max(0, end.timeIntervalSinceNow)) else { return nil }
            if type & 0xf0 == 0x30 { return try decodePublish(type, b) }
            if Date() >= end { return nil }
        }
    }

    func puback(_ id: UInt16) throws { try packet(0x40, [UInt8(id >> 8), UInt8(id & 0xff)]) }

    func ping() throws { try packet(0xC0, []) }
}
