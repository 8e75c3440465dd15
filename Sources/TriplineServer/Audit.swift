import Crypto
import Foundation
import TriplineCore
import TriplineStore

extension AuditRecord {
    /// The canonical encoding: a JSON array of the fields in a fixed order.
    public var canonical: String {
        J.arr([.int(seq), .int(at), .str(actor), .str(action), .str(target), .str(detail)]).text
    }

    public static func chainHash(prev: String, canonical: String) -> String {
        Tokens.hex(SHA256.hash(data: Array((prev + "\n" + canonical).utf8)))
    }

    public static let genesis = String(repeating: "0", count: 64)
}

/// The outcome of checking the chain.
public struct AuditVerification: Sendable {
    public var ok: Bool
    public var records: Int
    public var head: String
    /// The first bad record's seq (or the position where one is missing) and why.
    public var firstBad: Int64?
    public var problem: String?
}

/// Appends to and verifies the hash-chained audit log. Entities are named by a keyed
/// pseudonym (HMAC-SHA256 with the server's secret), never by their id, so erasing an entity
/// never needs to rewrite the chain.
public final class AuditLog: @unchecked Sendable {
    let store: any TriplineStore
    let key: SymmetricKey
    let clock: @Sendable () -> Millis
    private let lock = NSLock()

    public init(store: any TriplineStore, secret: [UInt8], clock: @escaping @Sendable () -> Millis) {
        self.store = store
        self.key = SymmetricKey(data: secret)
        self.clock = clock
    }

    /// The key's fingerprint (not the key): HMAC of a fixed text, 16 hex digits.
    public var keyID: String { Tokens.hex(Data(HMAC<SHA256>.authenticationCode(for: Array("tripline pseudonym key id".utf8), using: key)).prefix(8)) }

    /// The store's record of which key its pseudonyms were made with differs from this one.
    public struct KeyMismatch: Error, CustomStringConvertible {
        public var stored: String
        public var found: String
        public var description: String {
            "the pseudonym key in the data folder (id \(found)) is not the one this store's pseudonyms and audit names were made with (id \(stored)): with another key, erased entities and audit records would get other pseudonyms. Put the original pseudonym.key back in the data folder (a standby server needs a copy of the active one's)"
        }
    }

    /// Opens the audit log of a data folder and its store, and checks that the folder's key
    /// is the one the store was used with (recorded in meta on first use).
    public static func open(store: any TriplineStore, directory: String, clock: @escaping @Sendable () -> Millis) throws -> AuditLog {
        let log = AuditLog(store: store, secret: try secret(directory: directory), clock: clock)
        if let stored = try store.meta("pseudonym_key_id") {
            guard stored == log.keyID else { throw KeyMismatch(stored: stored, found: log.keyID) }
        } else {
            try store.setMeta("pseudonym_key_id", log.keyID)
        }
        return log
    }

    /// The secret of a data folder: `DIR/pseudonym.key` (32 random bytes, created once, mode 0600).
    public static func secret(directory: String) throws -> [UInt8] {
        let path = (directory as NSString).appendingPathComponent("pseudonym.key")
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        if let d = FileManager.default.contents(atPath: path), d.count == 32 { return [UInt8](d) }
        var g = SystemRandomNumberGenerator()
        let bytes = (0..<32).map { _ in UInt8.random(in: 0...255, using: &g) }
        guard FileManager.default.createFile(atPath: path, contents: Data(bytes), attributes: [.posixPermissions: 0o600]) else {
            throw TriplineError(.io, "cannot write \(path)")
        }
        return bytes
    }

    /// The stable pseudonym of an entity id in audit records and erased alerts.
    public func pseudonym(_ entity: String) -> String {
        let mac = HMAC<SHA256>.authenticationCode(for: Array(entity.utf8), using: key)
        return "ent_" + Tokens.hex(Data(mac).prefix(12))
    }

    /// Appends a record; returns it.
    @discardableResult
    public func record(actor: String, action: String, target: String, detail: J = .obj([])) throws -> AuditRecord {
        lock.lock()
        defer { lock.unlock() }
        let at = clock(), text = detail.text
        return try store.appendAudit { head in
            var r = AuditRecord(seq: (head?.seq ?? 0) + 1, at: at, actor: actor, action: action, target: target,
                                detail: text, prev: head?.hash ?? AuditRecord.genesis, hash: "")
            r.hash = AuditRecord.chainHash(prev: r.prev, canonical: r.canonical)
            return r
        }
    }

    /// Walks the whole chain. With `expectHead` (a head hash recorded elsewhere earlier),
    /// also checks that record is still in the chain (detects a truncated tail).
    public static func verify(store: any TriplineStore, expectHead: String? = nil) throws -> AuditVerification {
        var prev = AuditRecord.genesis
        var expected: Int64 = 1
        // After retention removed the oldest records, the chain starts at the anchor.
        if let anchor = try store.meta("audit_anchor") {
            let parts = anchor.split(separator: " ")
            if parts.count == 2, let n = Int64(parts[0]) {
                expected = n
                prev = String(parts[1])
            }
        }
        let firstExpected = expected
        var count = 0
        var sawExpected = expectHead == nil
        var bad: (Int64, String)?
        try store.forEachAudit { r in
            if bad != nil { return }
            if r.seq != expected {
                bad = (r.seq, r.seq > expected
                       ? "record \(expected) is missing (the next stored record is \(r.seq)): a record was deleted"
                       : "record \(r.seq) appears again after record \(expected - 1): a record was inserted or reordered")
                return
            }
            if r.prev != prev {
                bad = (r.seq, "record \(r.seq) does not follow record \(r.seq - 1) (its previous hash differs): a record before it was modified, inserted or reordered")
                return
            }
            if AuditRecord.chainHash(prev: r.prev, canonical: r.canonical) != r.hash {
                bad = (r.seq, "record \(r.seq) was modified: its content does not match its hash")
                return
            }
            if r.hash == expectHead { sawExpected = true }
            prev = r.hash
            expected += 1
            count += 1
        }
        if bad == nil, let stored = try store.meta("audit_head"), !stored.isEmpty {
            let parts = stored.split(separator: " ")
            let last = firstExpected + Int64(count) - 1
            if parts.count == 2, let n = Int64(parts[0]), n != last || String(parts[1]) != prev {
                bad = (min(n, last) + 1, "the log ends at record \(last) but the server last wrote record \(n): records were deleted from the end")
            }
        }
        if bad == nil && !sawExpected {
            bad = (Int64(count) + 1, "the expected head \(expectHead!) is not in the chain: the log was truncated or rewritten")
        }
        return AuditVerification(ok: bad == nil, records: count, head: prev, firstBad: bad?.0, problem: bad?.1)
    }
}

extension AuditRecord {
    public var json: J {
        .obj([("seq", .int(seq)), ("at", .time(at)), ("actor", .str(actor)), ("action", .str(action)), ("target", .str(target)),
              ("detail", .raw(detail.isEmpty ? "{}" : detail)), ("prev", .str(prev)), ("hash", .str(hash))])
    }
}
