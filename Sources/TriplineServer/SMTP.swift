import Foundation
#if canImport(Glibc)
import Glibc
#endif
import TriplineCore
import TriplineStore

/// A failure of a plain TCP exchange (SMTP, the MQTT input's connection).
struct NetError: Error, CustomStringConvertible {
    var description: String
}

/// A small SMTP client (RFC 5321) for email receivers: plain SMTP to a relay the operator runs
/// beside the server (a local Postfix or a mail relay on the LAN); no TLS and no
/// authentication, which the relay adds. Each message is one blocking exchange with
/// timeouts, run off the async executors.
enum SMTP {
    /// Sends one message; throws with the server's answer when a step is refused.
    static func send(host: String, port: Int, from: String, to: [String], message: String, timeout: Int = 10) throws {
        let fd = try TCP.connect(host: host, port: port)
        defer { close(fd) }
        var tv = timeval(tv_sec: timeout, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var buffer: [UInt8] = []
        /// One reply (multi-line replies end with "NNN " at the start of their last line).
        func reply() throws -> (Int, String) {
            var lines: [String] = []
            while true {
                while let nl = buffer.firstIndex(of: 10) {
                    let line = String(decoding: buffer[..<nl], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
                    buffer.removeSubrange(...nl)
                    lines.append(line)
                    let u = Array(line.utf8)
                    if u.count >= 4, u[3] == 32 || u.count == 3 { return (Int(line.prefix(3)) ?? 0, lines.joined(separator: " / ")) }
                    if u.count == 3 { return (Int(line) ?? 0, line) }
                }
                var chunk = [UInt8](repeating: 0, count: 4096)
                let n = recv(fd, &chunk, chunk.count, 0)
                guard n > 0 else { throw NetError(description: "the SMTP server closed the connection or did not answer within \(timeout) s") }
                buffer += chunk[..<n]
            }
        }
        func write(_ s: String) throws {
            var bytes = Array(s.utf8)
            var off = 0
            while off < bytes.count {
                let n = bytes.withUnsafeMutableBytes { Glibc.send(fd, $0.baseAddress! + off, $0.count - off, Int32(MSG_NOSIGNAL)) }
                guard n > 0 else { throw NetError(description: "write to the SMTP server failed (errno \(errno))") }
                off += n
            }
            bytes.removeAll()
        }
        func expect(_ step: String, _ ok: ClosedRange<Int>) throws {
            let (code, text) = try reply()
            guard ok.contains(code) else { throw NetError(description: "SMTP \(step): \(text)") }
        }
        try expect("greeting", 220...220)
        try write("EHLO tripline\r\n")
        try expect("EHLO", 250...250)
        try write("MAIL FROM:<\(from)>\r\n")
        try expect("MAIL FROM", 250...250)
        for r in to {
            try write("RCPT TO:<\(r)>\r\n")
            try expect("RCPT TO \(r)", 250...251)
        }
        try write("DATA\r\n")
        try expect("DATA", 354...354)
        // Dot-stuffing (a line starting with "." gets another), CRLF line ends.
        let body = message.replacingOccurrences(of: "\r\n", with: "\n").split(separator: "\n", omittingEmptySubsequences: false)
            .map { $0.hasPrefix(".") ? "." + $0 : String($0) }.joined(separator: "\r\n")
        try write(body + "\r\n.\r\n")
        try expect("end of data", 250...250)
        try write("QUIT\r\n")
        _ = try? reply()
    }

    static let defaultSubject = "[{{status}}{{#count_firing}}:{{count_firing}}{{/count_firing}}] {{group_text}}"
    static let defaultBody = """
        {{count_firing}} firing, {{count_resolved}} resolved ({{group_text}})

        {{#alerts}}
        - {{labels.rule}} ({{status}}){{#labels.entity}}, entity {{labels.entity}}{{/labels.entity}}{{#labels.zone}}, zone {{labels.zone}}{{/labels.zone}}, at {{time}}
        {{#annotations.summary}}  {{annotations.summary}}
        {{/annotations.summary}}{{#annotations.runbook_url}}  runbook: {{annotations.runbook_url}}
        {{/annotations.runbook_url}}{{/alerts}}
        Notification {{key}}, sent by Tripline.
        """

    /// The RFC 5322 message for a group notification: its key is the Message-ID, so a mail
    /// system that sees it twice (a retry) can tell.
    static func message(_ r: Receiver, notification body: String, key: String, now: Millis) -> (from: String, to: [String], text: String) {
        let cfg = ReceiverKinds.config(r)
        let ctx = ReceiverKinds.context(body)
        let subject = (try? AnnotationTemplate(cfg["subject"] ?? defaultSubject))?.render(ctx) ?? key
        let text = (try? AnnotationTemplate(cfg["template"] ?? defaultBody))?.render(ctx) ?? body
        let from = cfg["from"] ?? "tripline@localhost"
        let to = (cfg["to"] ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        let date = DateFormatter()
        date.locale = Locale(identifier: "en_US_POSIX")
        date.timeZone = TimeZone(identifier: "UTC")
        date.dateFormat = "EEE, dd MMM yyyy HH:mm:ss '+0000'"
        let headers = [
            "From: \(from)", "To: \(to.joined(separator: ", "))",
            "Subject: \(subject.replacingOccurrences(of: "\n", with: " "))",
            "Date: \(date.string(from: Date(timeIntervalSince1970: Double(now) / 1000)))",
            "Message-ID: <\(key)@tripline>", "MIME-Version: 1.0", "Content-Type: text/plain; charset=utf-8",
            "Content-Transfer-Encoding: 8bit", "X-Tripline-Key: \(key)",
        ]
        return (from, to, headers.joined(separator: "\r\n") + "\r\n\r\n" + text)
    }
}

/// Email receivers: each message on its own blocking exchange, off the async executors.
final class SMTPSender: @unchecked Sendable {
    private let queue = DispatchQueue(label: "tripline.smtp-receivers", attributes: .concurrent)

    func send(_ r: Receiver, notification: String, key: String, now: Millis) async -> String? {
        await withCheckedContinuation { (c: CheckedContinuation<String?, Never>) in
            queue.async {
                guard let u = URL(string: r.url), let host = u.host else {
                    c.resume(returning: "url \(r.url) is not smtp://host:port")
                    return
                }
                let m = SMTP.message(r, notification: notification, key: key, now: now)
                do {
                    try SMTP.send(host: host, port: u.port ?? 25, from: m.from, to: m.to, message: m.text)
                    c.resume(returning: nil)
                } catch {
                    c.resume(returning: "\(error)")
                }
            }
        }
    }
}

/// A blocking TCP connection (the SMTP client and the MQTT input).
enum TCP {
    /// A connected socket to `host:port` (the first address that resolves).
    static func connect(host: String, port: Int) throws -> Int32 {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var res: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, String(port), &hints, &res) == 0, let first = res else { throw NetError(description: "cannot resolve \(host)") }
        defer { freeaddrinfo(res) }
        let fd = socket(first.pointee.ai_family, first.pointee.ai_socktype, first.pointee.ai_protocol)
        guard fd >= 0 else { throw NetError(description: "socket: errno \(errno)") }
        guard Glibc.connect(fd, first.pointee.ai_addr, first.pointee.ai_addrlen) == 0 else {
            let e = errno
            Glibc.close(fd)
            throw NetError(description: "cannot connect to \(host):\(port) (errno \(e))")
        }
        return fd
    }
}
