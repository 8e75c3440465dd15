import Crypto
import Foundation
import TriplineCore
import TriplineStore

/// API tokens: random secrets shown once, stored only as SHA-256 hashes.
public enum Tokens {
    /// Lower-case hexadecimal, two digits per byte. (A digit table: `String(format:)` per
    /// byte took about a third of a 100,000-entity upload, whose audit pseudonymises each id.)
    public static func hex(_ bytes: some Sequence<UInt8>) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.underestimatedCount * 2)
        for b in bytes {
            out.append(hexDigits[Int(b >> 4)])
            out.append(hexDigits[Int(b & 15)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    private static let hexDigits = Array("0123456789abcdef".utf8)

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
