import Foundation
import Testing
@testable import TriplineNATS

/// A `nats-server` with JetStream on a random loopback port and a fresh store folder, stopped
/// (kill -9) when released.
final class NATSServerProcess {
    let process = Process()
    let dir: URL
    let port: Int
    var url: String { "nats://127.0.0.1:\(port)" }

    init() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("tripline-nats-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let exe = ["/usr/sbin/nats-server", "/usr/bin/nats-server", "/usr/local/bin/nats-server"].first { FileManager.default.isExecutableFile(atPath: $0) }
        guard let exe else { throw NATSError(call: "start nats-server", status: 0, jsCode: 0, text: "nats-server is not installed (apt-get install nats-server)") }
        process.executableURL = URL(fileURLWithPath: exe)
        process.arguments = ["-js", "-a", "127.0.0.1", "-p", "-1", "-sd", dir.path]
        let err = Pipe()
        process.standardError = err
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        // The server logs its port, then "Server is ready"; read until then (blocking reads).
        var log = ""
        var found: Int?
        let h = err.fileHandleForReading
        while !log.contains("Server is ready") {
            let chunk = h.availableData
            if chunk.isEmpty { break }
            log += String(decoding: chunk, as: UTF8.self)
        }
        if let r = log.range(of: #"Listening for client connections on 127\.0\.0\.1:(\d+)"#, options: .regularExpression) {
            found = Int(log[r].split(separator: ":").last!)
        }
        guard let found, log.contains("Server is ready") else {
            process.terminate()
            throw NATSError(call: "start nats-server", status: 0, jsCode: 0, text: "no port in its log: \(log)")
        }
        port = found
        // Keep draining its log so that it never blocks on a full pipe.
        h.readabilityHandler = { fh in _ = fh.availableData }
    }

    deinit {
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        try? FileManager.default.removeItem(at: dir)
    }
}

@Suite(.serialized) struct JetStreamTests {
    @Test func publishedMessagesAreKeptOncePerMessageIdAndReadBackInStreamOrder() throws {
        let server = try NATSServerProcess()
        let c = try NATSConnection(servers: [server.url], name: "test")
        try c.ensureStream(StreamSettings(name: "EV", subjects: ["ev.>"]))
        let partitions = 24
        let messages = (0..<500).map { i in
            OutgoingMessage(subject: "ev.\(i * 7 % partitions).position", data: Array("message \(i)".utf8), msgId: "gw-\(i)",
                            headers: [("Tripline-Watermark", String(i * 10))])
        }
        let sequences = try c.publishAll(messages)
        #expect(sequences == (1...500).map { UInt64($0) })
        // Re-sending the first 100 (a gateway unsure of its acknowledgements) adds nothing.
        let again = try c.publishAll(Array(messages.prefix(100)))
        #expect(again == (1...100).map { UInt64($0) })
        let single = try c.publish(messages[7])
        #expect(single.duplicate && single.sequence == 8)
        let state = try c.streamState("EV")
        #expect(state.messages == 500 && state.lastSequence == 500)

        // One partition's messages, in stream order, with their sequences and headers.
        let reader = try c.orderedReader(stream: "EV", subject: "ev.3.>", startSequence: 1)
        var got: [StreamMessage] = []
        while let m = try reader.next(timeout: .milliseconds(500)) { got.append(m) }
        let expected = messages.enumerated().filter { $0.element.subject.hasPrefix("ev.3.") }
        #expect(got.map(\.data) == expected.map(\.element.data))
        #expect(got.map(\.sequence) == expected.map { UInt64($0.offset + 1) })
        #expect(got.first?.headers["Tripline-Watermark"] == String(expected.first!.offset * 10))
        #expect(got.first?.headers["Nats-Msg-Id"] == "gw-\(expected.first!.offset)")

        // From a later sequence: only the rest.
        let from = got[got.count / 2].sequence
        let tail = try c.orderedReader(stream: "EV", subject: "ev.3.>", startSequence: from)
        var rest: [UInt64] = []
        while let m = try tail.next(timeout: .milliseconds(500)) { rest.append(m.sequence) }
        #expect(rest == got.map(\.sequence).filter { $0 >= from })

        // Direct reads.
        #expect(try c.message(stream: "EV", sequence: 42)?.data == messages[41].data)
        #expect(try c.message(stream: "EV", sequence: 9999) == nil)
        let last = try c.lastMessage(stream: "EV", subject: "ev.5.>")
        let lastIndex = messages.lastIndex { $0.subject.hasPrefix("ev.5.") }!
        #expect(last?.sequence == UInt64(lastIndex + 1))
    }

    @Test func keyValueCreateAndCompareAndSetDecideOneWinner() throws {
        let server = try NATSServerProcess()
        let c = try NATSConnection(servers: [server.url], name: "test")
        let kv = try c.keyValue(bucket: "leases", ttl: .seconds(30))
        let first = try kv.create("partition.3", Array("worker-a".utf8))
        #expect(first != nil)
        #expect(try kv.create("partition.3", Array("worker-b".utf8)) == nil)
        // Renewal by compare-and-set: the holder's revision wins once; a stale one loses.
        let renewed = try kv.update("partition.3", Array("worker-a".utf8), last: first!)
        #expect(renewed != nil && renewed! > first!)
        #expect(try kv.update("partition.3", Array("worker-b".utf8), last: first!) == nil)
        let now = try kv.get("partition.3")
        #expect(now.map { String(decoding: $0.value, as: UTF8.self) } == "worker-a")
        #expect(now?.revision == renewed)
        #expect(try kv.get("partition.4") == nil)
        // A second binding sees the same bucket.
        let again = try c.keyValue(bucket: "leases", ttl: .seconds(30))
        #expect(try again.get("partition.3")?.revision == renewed)
    }

    @Test func aServerThatIsNotThereIsAnErrorNamingIt() throws {
        #expect {
            _ = try NATSConnection(servers: ["nats://127.0.0.1:1"], name: "test", timeout: .milliseconds(300))
        } throws: { e in
            "\(e)".contains("127.0.0.1:1")
        }
    }
}
