import CNats
import Foundation

/// A failed call into the NATS C client: the call, the client's status and its text, and the
/// JetStream error code when the server gave one (10071: wrong last sequence).
public struct NATSError: Error, CustomStringConvertible, Sendable {
    public var call: String
    public var status: Int
    public var jsCode: Int
    public var text: String
    public var description: String {
        "\(call) failed: \(text)" + (jsCode != 0 ? " (JetStream error \(jsCode))" : "")
    }
    public var isTimeout: Bool { status == Int(NATS_TIMEOUT.rawValue) }
    public var isNotFound: Bool { status == Int(NATS_NOT_FOUND.rawValue) || jsCode == 10037 || jsCode == 10059 }
    /// A key-value update whose expected revision was not the last (someone else wrote).
    public var isWrongLastSequence: Bool { jsCode == 10071 || text.contains("wrong last sequence") }
}

@inline(__always)
func check(_ s: natsStatus, _ call: @autoclosure () -> String, js: jsErrCode = jsErrCode(0)) throws {
    guard s != NATS_OK else { return }
    var last = NATS_OK
    let detail = nats_GetLastError(&last).map { String(cString: $0) } ?? ""
    let base = natsStatus_GetText(s).map { String(cString: $0) } ?? "status \(s.rawValue)"
    throw NATSError(call: call(), status: Int(s.rawValue), jsCode: Int(js.rawValue),
                    text: detail.isEmpty || detail == base ? base : "\(base): \(detail)")
}

/// One message read from a stream: its subject, payload, stream sequence and headers.
public struct StreamMessage: Sendable {
    public var subject: String
    public var data: [UInt8]
    public var sequence: UInt64
    public var headers: [String: String]
}

/// A message to publish with its de-duplication id (`Nats-Msg-Id`).
public struct OutgoingMessage: Sendable {
    public var subject: String
    public var data: [UInt8]
    public var msgId: String
    public var headers: [(String, String)]
    public init(subject: String, data: [UInt8], msgId: String, headers: [(String, String)] = []) {
        self.subject = subject
        self.data = data
        self.msgId = msgId
        self.headers = headers
    }
}

/// A stream's shape.
public struct StreamSettings: Sendable {
    public var name: String
    public var subjects: [String]
    public var replicas: Int = 1
    /// How long a `Nats-Msg-Id` is remembered for de-duplication.
    public var duplicateWindow: Duration = .seconds(120)
    public var maxAge: Duration? = nil
    /// Messages kept per subject (0: no limit); 1 keeps only the latest of each subject.
    public var maxMessagesPerSubject = 0
    public var memory = false
    public init(name: String, subjects: [String], replicas: Int = 1) {
        self.name = name
        self.subjects = subjects
        self.replicas = replicas
    }
}

extension Duration {
    var nanoseconds: Int64 {
        let (s, a) = components
        return s * 1_000_000_000 + a / 1_000_000_000
    }
    var milliseconds: Int64 { nanoseconds / 1_000_000 }
}

/// Calls `body` with the strings as a C array of C strings.
func withCStrings<R>(_ strings: [String], _ body: (UnsafeMutablePointer<UnsafePointer<CChar>?>) throws -> R) rethrows -> R {
    let dup = strings.map { UnsafePointer(strdup($0)) }
    defer { dup.forEach { free(UnsafeMutableRawPointer(mutating: $0)) } }
    var arr: [UnsafePointer<CChar>?] = dup
    return try arr.withUnsafeMutableBufferPointer { try body($0.baseAddress!) }
}

/// Outcomes of asynchronous publishes, by message id, filled by the client's ack callback.
final class AckBook: @unchecked Sendable {
    private let lock = NSLock()
    private var acked: [String: UInt64] = [:]
    private var failed: [String: String] = [:]

    func record(_ id: String, sequence: UInt64?, error: String?) {
        lock.lock()
        if let sequence { acked[id] = sequence; failed[id] = nil } else if acked[id] == nil { failed[id] = error ?? "failed" }
        lock.unlock()
    }

    /// Takes the outcome of each id (nil: no answer yet).
    func take(_ ids: [String]) -> [(UInt64?, String?)] {
        lock.lock()
        defer { lock.unlock() }
        return ids.map { id in
            let r = (acked.removeValue(forKey: id), failed.removeValue(forKey: id))
            return r
        }
    }

    func forget(_ ids: [String]) {
        lock.lock()
        for id in ids { acked[id] = nil; failed[id] = nil }
        lock.unlock()
    }
}

private func headerValue(_ msg: OpaquePointer?, _ key: String) -> String? {
    var v: UnsafePointer<CChar>?
    guard natsMsgHeader_Get(msg, key, &v) == NATS_OK, let v else { return nil }
    return String(cString: v)
}

private let ackHandler: jsPubAckHandler = { _, msg, pa, pae, closure in
    let book = Unmanaged<AckBook>.fromOpaque(closure!).takeUnretainedValue()
    if let id = headerValue(msg, "Nats-Msg-Id") {
        if let pa { book.record(id, sequence: pa.pointee.Sequence, error: nil) } else {
            let text = pae?.pointee.ErrText.map { String(cString: $0) } ?? "publish failed"
            book.record(id, sequence: nil, error: text)
        }
    }
    natsMsg_Destroy(msg)
}

/// A connection to a NATS server or cluster, with its JetStream context. Reconnects for ever
/// (to any of the given servers) and buffers publishes meanwhile. Calls block the calling
/// thread; use it from a thread of its own or wrap calls in a task.
public final class NATSConnection: @unchecked Sendable {
    let nc: OpaquePointer
    let js: OpaquePointer
    let book: AckBook
    private let bookRef: Unmanaged<AckBook>

    /// Connects to `servers` (`nats://host:port`, several for a cluster).
    public init(servers: [String], name: String, timeout: Duration = .seconds(5)) throws {
        var opts: OpaquePointer?
        try check(natsOptions_Create(&opts), "natsOptions_Create")
        defer { natsOptions_Destroy(opts) }
        try withCStrings(servers) { try check(natsOptions_SetServers(opts, $0, Int32(servers.count)), "natsOptions_SetServers(\(servers))") }
        try check(natsOptions_SetName(opts, name), "natsOptions_SetName")
        try check(natsOptions_SetTimeout(opts, timeout.milliseconds), "natsOptions_SetTimeout")
        try check(natsOptions_SetMaxReconnect(opts, -1), "natsOptions_SetMaxReconnect")
        try check(natsOptions_SetReconnectWait(opts, 250), "natsOptions_SetReconnectWait")
        try check(natsOptions_SetReconnectBufSize(opts, 64 << 20), "natsOptions_SetReconnectBufSize")
        try check(natsOptions_SetPingInterval(opts, 2_000), "natsOptions_SetPingInterval")
        var conn: OpaquePointer?
        try check(natsConnection_Connect(&conn, opts), "connect to \(servers.joined(separator: ","))")
        book = AckBook()
        bookRef = Unmanaged.passRetained(book)
        var jo = jsOptions()
        jsOptions_Init(&jo)
        jo.Wait = timeout.milliseconds
        jo.PublishAsync.MaxPending = 4096
        jo.PublishAsync.StallWait = 2_000
        jo.PublishAsync.AckHandler = ackHandler
        jo.PublishAsync.AckHandlerClosure = bookRef.toOpaque()
        var ctx: OpaquePointer?
        do {
            try check(natsConnection_JetStream(&ctx, conn, &jo), "natsConnection_JetStream")
        } catch {
            natsConnection_Destroy(conn)
            bookRef.release()
            throw error
        }
        nc = conn!
        js = ctx!
    }

    deinit {
        jsCtx_Destroy(js)
        natsConnection_Close(nc)
        natsConnection_Destroy(nc)
        bookRef.release()
    }

    // MARK: - Streams

    /// Creates the stream, or updates it to these settings when it exists.
    public func ensureStream(_ s: StreamSettings) throws {
        var cfg = jsStreamConfig()
        jsStreamConfig_Init(&cfg)
        try s.name.withCString { name in
            try withCStrings(s.subjects) { subjects in
                cfg.Name = name
                cfg.Subjects = subjects
                cfg.SubjectsLen = Int32(s.subjects.count)
                cfg.Replicas = Int64(s.replicas)
                cfg.Duplicates = s.duplicateWindow.nanoseconds
                cfg.MaxAge = s.maxAge?.nanoseconds ?? 0
                if s.maxMessagesPerSubject > 0 { cfg.MaxMsgsPerSubject = Int64(s.maxMessagesPerSubject) }
                cfg.Storage = s.memory ? js_MemoryStorage : js_FileStorage
                var code = jsErrCode(0)
                var info: UnsafeMutablePointer<jsStreamInfo>?
                let st = js_AddStream(&info, js, &cfg, nil, &code)
                if st == NATS_OK { jsStreamInfo_Destroy(info); return }
                // 10058: a stream of this name exists (with other settings): update it.
                guard code.rawValue == 10058 else { try check(st, "js_AddStream(\(s.name))", js: code) ; return }
                code = jsErrCode(0)
                let up = js_UpdateStream(&info, js, &cfg, nil, &code)
                try check(up, "js_UpdateStream(\(s.name))", js: code)
                jsStreamInfo_Destroy(info)
            }
        }
    }

    public func deleteStream(_ name: String) throws {
        var code = jsErrCode(0)
        let st = js_DeleteStream(js, name, nil, &code)
        if code.rawValue == 10059 { return }  // no such stream
        try check(st, "js_DeleteStream(\(name))", js: code)
    }

    /// The stream's last sequence (0 when empty), message count, and (on a cluster) the name
    /// of the server leading it and of its other replicas.
    public func streamState(_ name: String) throws -> (lastSequence: UInt64, messages: UInt64, leader: String?, replicas: [String]) {
        var code = jsErrCode(0)
        var info: UnsafeMutablePointer<jsStreamInfo>?
        try check(js_GetStreamInfo(&info, js, name, nil, &code), "js_GetStreamInfo(\(name))", js: code)
        defer { jsStreamInfo_Destroy(info) }
        let c = info!.pointee.Cluster
        let leader = c?.pointee.Leader.map { String(cString: $0) }
        var replicas: [String] = []
        if let c, let r = c.pointee.Replicas {
            for i in 0..<Int(c.pointee.ReplicasLen) { if let p = r[i], let n = p.pointee.Name { replicas.append(String(cString: n)) } }
        }
        return (info!.pointee.State.LastSeq, info!.pointee.State.Msgs, leader, replicas)
    }

    // MARK: - Publishing

    /// Publishes one message and waits for JetStream's acknowledgement; returns the stream
    /// sequence and whether JetStream had the message id already (a duplicate it dropped).
    public func publish(_ m: OutgoingMessage) throws -> (sequence: UInt64, duplicate: Bool) {
        var msg: OpaquePointer?
        try check(natsMsg_Create(&msg, m.subject, nil, m.data, Int32(m.data.count)), "natsMsg_Create")
        defer { natsMsg_Destroy(msg) }
        for (k, v) in m.headers { try check(natsMsgHeader_Set(msg, k, v), "natsMsgHeader_Set(\(k))") }
        return try m.msgId.withCString { id in
            var po = jsPubOptions()
            jsPubOptions_Init(&po)
            po.MsgId = id
            var ack: UnsafeMutablePointer<jsPubAck>?
            var code = jsErrCode(0)
            try check(js_PublishMsg(&ack, js, msg, &po, &code), "js_PublishMsg(\(m.subject))", js: code)
            defer { jsPubAck_Destroy(ack) }
            return (ack!.pointee.Sequence, ack!.pointee.Duplicate)
        }
    }

    /// Publishes every message and returns once JetStream acknowledged each of them (stream
    /// sequence per message, in order), resending the unacknowledged ones with backoff until
    /// `deadline`. Resending is safe: each carries its `Nats-Msg-Id`, so JetStream keeps one
    /// copy (within the stream's duplicate window). Throws when the deadline passes first.
    public func publishAll(_ messages: [OutgoingMessage], deadline: Duration = .seconds(30)) throws -> [UInt64] {
        let ids = messages.map(\.msgId)
        var sequences = [UInt64?](repeating: nil, count: messages.count)
        var todo = Array(messages.indices)
        let start = ContinuousClock.now
        var backoff = Duration.milliseconds(50)
        var lastError = "no acknowledgement"
        defer { book.forget(ids) }
        while !todo.isEmpty {
            for i in todo { try sendAsync(messages[i]) }
            var po = jsPubOptions()
            jsPubOptions_Init(&po)
            let left = deadline - (ContinuousClock.now - start)
            po.MaxWait = max(100, min(left.milliseconds, 5_000))
            let st = js_PublishAsyncComplete(js, &po)
            if st != NATS_OK {
                // Still pending after the wait: take them back (their answers may yet come).
                var pending = natsMsgList()
                if js_PublishAsyncGetPendingList(&pending, js) == NATS_OK { natsMsgList_Destroy(&pending) }
            }
            let outcomes = book.take(todo.map { ids[$0] })
            var again: [Int] = []
            for (k, i) in todo.enumerated() {
                if let seq = outcomes[k].0 { sequences[i] = seq } else {
                    again.append(i)
                    if let e = outcomes[k].1 { lastError = e }
                }
            }
            todo = again
            if todo.isEmpty { break }
            if ContinuousClock.now - start >= deadline {
                throw NATSError(call: "publish \(todo.count) of \(messages.count) messages", status: Int(NATS_TIMEOUT.rawValue), jsCode: 0,
                                text: "not acknowledged within \(deadline): \(lastError)")
            }
            Thread.sleep(forTimeInterval: Double(backoff.milliseconds) / 1000)
            backoff = min(backoff * 2, .seconds(1))
        }
        return sequences.map { $0! }
    }

    private func sendAsync(_ m: OutgoingMessage) throws {
        var msg: OpaquePointer?
        try check(natsMsg_Create(&msg, m.subject, nil, m.data, Int32(m.data.count)), "natsMsg_Create")
        defer { natsMsg_Destroy(msg) }  // no effect once the library owns it
        for (k, v) in m.headers { try check(natsMsgHeader_Set(msg, k, v), "natsMsgHeader_Set(\(k))") }
        try m.msgId.withCString { id in
            var po = jsPubOptions()
            jsPubOptions_Init(&po)
            po.MsgId = id
            try check(js_PublishMsgAsync(js, &msg, &po), "js_PublishMsgAsync(\(m.subject))")
        }
    }

    // MARK: - Reading

    /// The message at `sequence` of the stream, or nil when there is none (deleted or beyond
    /// the end).
    public func message(stream: String, sequence: UInt64) throws -> StreamMessage? {
        var msg: OpaquePointer?
        var code = jsErrCode(0)
        let st = js_GetMsg(&msg, js, stream, sequence, nil, &code)
        if st == NATS_NOT_FOUND || code.rawValue == 10037 { return nil }
        try check(st, "js_GetMsg(\(stream), \(sequence))", js: code)
        defer { natsMsg_Destroy(msg) }
        return Self.read(msg, sequence: natsMsg_GetSequence(msg))
    }

    /// The last message on `subject` in the stream, or nil.
    public func lastMessage(stream: String, subject: String) throws -> StreamMessage? {
        var msg: OpaquePointer?
        var code = jsErrCode(0)
        let st = js_GetLastMsg(&msg, js, stream, subject, nil, &code)
        // 10037: no message on the subject; 10059: no such stream.
        if st == NATS_NOT_FOUND || code.rawValue == 10037 || code.rawValue == 10059 { return nil }
        try check(st, "js_GetLastMsg(\(stream), \(subject))", js: code)
        defer { natsMsg_Destroy(msg) }
        return Self.read(msg, sequence: natsMsg_GetSequence(msg))
    }

    static func read(_ msg: OpaquePointer?, sequence: UInt64) -> StreamMessage {
        let n = Int(natsMsg_GetDataLength(msg))
        var data = [UInt8](repeating: 0, count: n)
        if n > 0, let p = natsMsg_GetData(msg) { data.withUnsafeMutableBytes { $0.copyMemory(from: UnsafeRawBufferPointer(start: p, count: n)) } }
        var headers: [String: String] = [:]
        var keys: UnsafeMutablePointer<UnsafePointer<CChar>?>?
        var count: Int32 = 0
        if natsMsgHeader_Keys(msg, &keys, &count) == NATS_OK, let keys {
            for i in 0..<Int(count) {
                if let k = keys[i] {
                    let key = String(cString: k)
                    headers[key] = headerValue(msg, key)
                }
            }
            free(keys)
        }
        return StreamMessage(subject: natsMsg_GetSubject(msg).map { String(cString: $0) } ?? "", data: data, sequence: sequence, headers: headers)
    }

    /// Reads the stream's messages on `subject` (wildcards allowed) in stream order from
    /// `startSequence`, through an ordered consumer (the client recreates it after a gap or a
    /// server's loss, from the next sequence; no acknowledgements).
    public func orderedReader(stream: String, subject: String, startSequence: UInt64) throws -> OrderedReader {
        try OrderedReader(self, stream: stream, subject: subject, start: startSequence)
    }

    // MARK: - Key-value

    /// Binds to a key-value bucket, creating it when missing. `ttl`: how long an entry lives
    /// after its last write (0: for ever).
    public func keyValue(bucket: String, ttl: Duration = .zero, replicas: Int = 1) throws -> KeyValue {
        var kv: OpaquePointer?
        if js_KeyValue(&kv, js, bucket) == NATS_OK, let kv { return KeyValue(kv, bucket: bucket) }
        var cfg = kvConfig()
        kvConfig_Init(&cfg)
        return try bucket.withCString { name in
            cfg.Bucket = name
            cfg.TTL = ttl.nanoseconds
            cfg.History = 1
            cfg.Replicas = Int32(replicas)
            try check(js_CreateKeyValue(&kv, js, &cfg), "js_CreateKeyValue(\(bucket))")
            return KeyValue(kv!, bucket: bucket)
        }
    }
}

/// Messages of a stream in stream order (an ordered consumer).
public final class OrderedReader: @unchecked Sendable {
    let sub: OpaquePointer
    let connection: NATSConnection

    init(_ c: NATSConnection, stream: String, subject: String, start: UInt64) throws {
        connection = c
        var so = jsSubOptions()
        jsSubOptions_Init(&so)
        so.Ordered = true
        var s: OpaquePointer?
        try stream.withCString { st in
            so.Stream = st
            if start > 1 {
                so.Config.DeliverPolicy = js_DeliverByStartSequence
                so.Config.OptStartSeq = start
            } else {
                so.Config.DeliverPolicy = js_DeliverAll
            }
            var code = jsErrCode(0)
            try check(js_SubscribeSync(&s, c.js, subject, nil, &so, &code), "js_SubscribeSync(\(subject)) from \(start)", js: code)
        }
        sub = s!
    }

    deinit {
        natsSubscription_Unsubscribe(sub)
        natsSubscription_Destroy(sub)
    }

    /// The next message, or nil when none comes within `timeout`.
    public func next(timeout: Duration) throws -> StreamMessage? {
        var msg: OpaquePointer?
        let st = natsSubscription_NextMsg(&msg, sub, timeout.milliseconds)
        if st == NATS_TIMEOUT { return nil }
        try check(st, "natsSubscription_NextMsg")
        defer { natsMsg_Destroy(msg) }
        var meta: UnsafeMutablePointer<jsMsgMetaData>?
        try check(natsMsg_GetMetaData(&meta, msg), "natsMsg_GetMetaData")
        defer { jsMsgMetaData_Destroy(meta) }
        return NATSConnection.read(msg, sequence: meta!.pointee.Sequence.Stream)
    }
}

/// A key-value bucket: get, create (only when absent), update by compare-and-set on the
/// revision, delete.
public final class KeyValue: @unchecked Sendable {
    let kv: OpaquePointer
    public let bucket: String

    init(_ kv: OpaquePointer, bucket: String) {
        self.kv = kv
        self.bucket = bucket
    }

    deinit { kvStore_Destroy(kv) }

    /// The value and revision of `key`, or nil when absent (never written, deleted or expired).
    public func get(_ key: String) throws -> (value: [UInt8], revision: UInt64)? {
        var e: OpaquePointer?
        let st = kvStore_Get(&e, kv, key)
        if st == NATS_NOT_FOUND { return nil }
        try check(st, "kvStore_Get(\(bucket)/\(key))")
        defer { kvEntry_Destroy(e) }
        let n = Int(kvEntry_ValueLen(e))
        var v = [UInt8](repeating: 0, count: n)
        if n > 0, let p = kvEntry_Value(e) { v.withUnsafeMutableBytes { $0.copyMemory(from: UnsafeRawBufferPointer(start: p, count: n)) } }
        return (v, kvEntry_Revision(e))
    }

    /// Writes `key` only if it is absent; returns the new revision, or nil when it exists.
    public func create(_ key: String, _ value: [UInt8]) throws -> UInt64? {
        var rev: UInt64 = 0
        let st = kvStore_Create(&rev, kv, key, value, Int32(value.count))
        if st == NATS_OK { return rev }
        do { try check(st, "kvStore_Create(\(bucket)/\(key))") } catch let e as NATSError where e.isWrongLastSequence { return nil }
        return nil
    }

    /// Writes `key` only if its revision is still `last`; returns the new revision, or nil
    /// when another writer came first.
    public func update(_ key: String, _ value: [UInt8], last: UInt64) throws -> UInt64? {
        var rev: UInt64 = 0
        let st = kvStore_Update(&rev, kv, key, value, Int32(value.count), last)
        if st == NATS_OK { return rev }
        do { try check(st, "kvStore_Update(\(bucket)/\(key))") } catch let e as NATSError where e.isWrongLastSequence { return nil }
        return nil
    }

    /// Every key present (not deleted or expired).
    public func keys() throws -> [String] {
        var list = kvKeysList()
        let st = kvStore_Keys(&list, kv, nil)
        if st == NATS_NOT_FOUND { return [] }
        try check(st, "kvStore_Keys(\(bucket))")
        defer { kvKeysList_Destroy(&list) }
        return (0..<Int(list.Count)).compactMap { list.Keys[$0].map { String(cString: $0) } }
    }

    public func delete(_ key: String) throws {
        try check(kvStore_Delete(kv, key), "kvStore_Delete(\(bucket)/\(key))")
    }
}
