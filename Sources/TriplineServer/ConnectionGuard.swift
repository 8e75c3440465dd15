import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import HummingbirdWebSocket
import Logging
import NIOSSL
import NIOConcurrencyHelpers
import NIOCore

/// Limits on connections that hold no valid request yet: what an unauthenticated client can
/// take from the server (docs/security.md).
public struct ConnectionLimits: Sendable {
    /// A request's line and headers must arrive within this long of its first byte (and the
    /// first request within this long of the connection opening); else 408 and close.
    public var headerTimeout: TimeAmount = .seconds(10)
    /// A connection with no request in progress is closed after this long.
    public var idleTimeout: TimeAmount = .seconds(60)
    /// Open connections at most (SSE and WebSocket streams included); one more gets 503 and is closed.
    public var maxConnections = 1024
    public init() {}
}

/// Counts open connections across the event loops.
final class ConnectionCounter: Sendable {
    private let n = NIOLockedValueBox(0)
    func enter(limit: Int) -> Bool {
        n.withLockedValue { v in
            if v >= limit { return false }
            v += 1
            return true
        }
    }
    func leave() { n.withLockedValue { $0 -= 1 } }
    var count: Int { n.withLockedValue { $0 } }
}

/// The first handler of every connection, on raw bytes, before HTTP parsing:
/// - the connection cap (503 and close beyond it);
/// - the header read timeout (408 and close), a slowloris defence: a request's head must be
///   complete (CRLF CRLF) within `headerTimeout` of its first byte;
/// - a first request line that is not `METHOD target HTTP/1.x` gets 400 and close (NIO's parser
///   would otherwise drop it without an answer).
/// After a response has been written, the next bytes are taken as a new request head. After a
/// WebSocket upgrade (101), the guard steps aside.
final class ConnectionGuardHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    enum State { case awaitingHead, inRequest, answered, upgraded, closing }

    let limits: ConnectionLimits
    let counter: ConnectionCounter
    var state = State.awaitingHead
    var counted = false
    var timer: Scheduled<Void>?
    /// The last 3 bytes seen of the head (a CRLF CRLF may straddle two reads).
    var tail: UInt32 = 0
    /// Bytes of the first request line seen so far (checked when its CRLF arrives).
    var firstLine: [UInt8]? = []

    init(limits: ConnectionLimits, counter: ConnectionCounter) {
        self.limits = limits
        self.counter = counter
    }

    func channelActive(context: ChannelHandlerContext) {
        guard counter.enter(limit: limits.maxConnections) else {
            reject(context, status: "503 Service Unavailable", code: "too_many_connections",
                   message: "the server has \(limits.maxConnections) connections open already; retry later")
            return
        }
        counted = true
        startTimer(context)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
        if counted { counter.leave(); counted = false }
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
        if counted { counter.leave(); counted = false }
    }

    func startTimer(_ context: ChannelHandlerContext) {
        timer?.cancel()
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        timer = context.eventLoop.scheduleTask(in: limits.headerTimeout) {
            let (h, ctx) = loopBound.value
            h.timer = nil
            guard h.state == .awaitingHead else { return }
            h.reject(ctx, status: "408 Request Timeout", code: "request_timeout",
                     message: "the request line and headers did not arrive within \(h.limits.headerTimeout.nanoseconds / 1_000_000_000) s")
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch state {
        case .upgraded:
            context.fireChannelRead(data)
            return
        case .closing:
            return
        case .answered:
            // The next request begins: its head has its own time limit.
            state = .awaitingHead
            tail = 0
            startTimer(context)
        case .awaitingHead, .inRequest:
            break
        }
        if state == .awaitingHead {
            let buf = unwrapInboundIn(data)
            var complete = false
            buf.withUnsafeReadableBytes { p in
                for b in p {
                    if firstLine != nil {
                        if b == 10 { checkFirstLine() } else if firstLine!.count < 8192 { firstLine!.append(b) }
                    }
                    tail = (tail << 8) | UInt32(b)
                    if tail == 0x0D0A_0D0A { complete = true; break }
                }
            }
            if firstLineBad {
                reject(context, status: "400 Bad Request", code: "bad_request",
                       message: "the request line is not 'METHOD /path HTTP/1.1'")
                return
            }
            if complete {
                state = .inRequest
                timer?.cancel()
                timer = nil
            }
        }
        context.fireChannelRead(data)
    }

    var firstLineBad = false

    /// `METHOD SP request-target SP HTTP/1.x` (a trailing CR allowed).
    func checkFirstLine() {
        guard var line = firstLine else { return }
        firstLine = nil
        if line.last == 13 { line.removeLast() }
        let parts = line.split(separator: 32, omittingEmptySubsequences: false)
        let tchar: (UInt8) -> Bool = { b in
            (b >= 65 && b <= 90) || (b >= 97 && b <= 122) || (b >= 48 && b <= 57) || "!#$%&'*+-.^_`|~".utf8.contains(b)
        }
        guard parts.count == 3, !parts[0].isEmpty, parts[0].allSatisfy(tchar), !parts[1].isEmpty,
              parts[1].allSatisfy({ $0 > 32 && $0 < 127 }),
              Array(parts[2]) == Array("HTTP/1.1".utf8) || Array(parts[2]) == Array("HTTP/1.0".utf8) else {
            firstLineBad = true
            return
        }
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if state == .inRequest || state == .awaitingHead {
            let buf = unwrapOutboundIn(data)
            // A switch to WebSocket: the guard is no longer about HTTP.
            if buf.readableBytes >= 12, buf.getString(at: buf.readerIndex, length: 12) == "HTTP/1.1 101" {
                state = .upgraded
                timer?.cancel()
                timer = nil
            } else if state == .inRequest, !(buf.readableBytes >= 12 && buf.getString(at: buf.readerIndex, length: 12) == "HTTP/1.1 100") {
                state = .answered
            }
        }
        context.write(data, promise: promise)
    }

    func reject(_ context: ChannelHandlerContext, status: String, code: String, message: String) {
        state = .closing
        timer?.cancel()
        timer = nil
        var body: [UInt8] = []
        J.obj([("error", .str(code)), ("message", .str(message))]).append(to: &body)
        body.append(10)
        var out = context.channel.allocator.buffer(capacity: 160 + body.count)
        out.writeString("HTTP/1.1 \(status)\r\nContent-Type: application/json\r\nContent-Length: \(body.count)\r\nConnection: close\r\n\r\n")
        out.writeBytes(body)
        context.writeAndFlush(wrapOutboundOut(out)).whenComplete { _ in context.close(promise: nil) }
    }
}

/// A certificate chain and private key in PEM files, for `serve --tls-cert/--tls-key`.
public struct TLSFiles: Sendable {
    public var certificate: String
    public var key: String
    public init(certificate: String, key: String) {
        self.certificate = certificate
        self.key = key
    }

    /// The server's TLS configuration (TLS 1.2 or later, NIO's default ciphers).
    public func configuration() throws -> TLSConfiguration {
        let chain = try NIOSSLCertificate.fromPEMFile(certificate).map { NIOSSLCertificateSource.certificate($0) }
        let key = try NIOSSLPrivateKey(file: key, format: .pem)
        var c = TLSConfiguration.makeServerConfiguration(certificateChain: chain, privateKey: .privateKey(key))
        c.minimumTLSVersion = .tlsv12
        return c
    }
}

/// The HTTP/1.1 + WebSocket server channel with the guard in front.
struct GuardedChannel<Base: ServerChildChannel>: ServerChildChannel {
    typealias Value = Base.Value
    let base: Base
    let limits: ConnectionLimits
    let counter: ConnectionCounter

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        do {
            // Last so far: after the TLS handler when there is one (the guard reads plain
            // HTTP), before the HTTP handlers the base adds next.
            try channel.pipeline.syncOperations.addHandler(ConnectionGuardHandler(limits: limits, counter: counter), position: .last)
        } catch {
            return channel.eventLoop.makeFailedFuture(error)
        }
        return base.setup(channel: channel, logger: logger)
    }

    func handle(value: Value, logger: Logger) async {
        await base.handle(value: value, logger: logger)
    }
}

extension HTTPServerBuilder {
    /// HTTP/1.1 with WebSocket upgrade, an idle timeout, WebSocket pings, and the connection guard.
    static func guardedWebSocket<WS: HTTPResponderBuilder>(webSocketRouter: WS, limits: ConnectionLimits, counter: ConnectionCounter,
                                                        pingEvery: Duration, tls: TLSConfiguration?) -> HTTPServerBuilder
    where WS.Responder.Context: WebSocketRequestContext {
        let wsResponder = webSocketRouter.buildResponder()
        let config = HTTP1WebSocketUpgradeChannel.Configuration(
            http1: .init(idleTimeout: limits.idleTimeout),
            ws: .init(autoPing: .enabled(timePeriod: pingEvery)))
        return HTTPServerBuilder { responder in
            let guarded = GuardedChannel(base: HTTP1WebSocketUpgradeChannel(responder: responder, webSocketResponder: wsResponder, configuration: config),
                                         limits: limits, counter: counter)
            guard let tls else { return guarded }
            return try TLSChannel(guarded, tlsConfiguration: tls)
        }
    }
}
