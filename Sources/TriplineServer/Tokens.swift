import Crypto
import Foundation
import TriplineCore
import TriplineStore

/// API tokens: random secrets shown once, stored only as SHA-256 hashes.
public enum Tokens {
    public static func hex(_ bytes: some Sequence<UInt8>) -> String {
        bytes.map { String(format: "%02x", $0) }.joined()
    }

    public static func randomHex(_ n: Int) -> String {
        var g = SystemRandomNumberGenerator()
        return hex((0..<n).map { _ in UInt8.random(in: 0...255, using: &g) })
    }

    public static func hash(_ token: String) -> String {
        hex(SHA256.hash(data: Array(token.utf8)))
    }

    /// Creates a token with `role`, stores its hash, and returns the secret (shown once).
    public static func create(store: any TriplineStore, role: Role, name: String, now: Millis) throws -> (TokenRecord, String) {
        let secret = "tl_" + randomHex(20)
        let rec = TokenRecord(id: "tok_" + randomHex(6), hash: hash(secret), role: role, name: name, createdAt: now)
        try store.addToken(rec)
        return (rec, secret)
    }
}
