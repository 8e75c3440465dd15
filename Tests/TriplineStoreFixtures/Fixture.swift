import Foundation
import TriplinePostgres
import TriplineSQLite
import TriplineStore

/// One suite, every store: the in-memory store, SQLite, and PostgreSQL when
/// `TRIPLINE_TEST_POSTGRES` names a server (`bash scripts/pg start` prints one; scripts/test
/// and CI always set it). Each test gets a new, empty store (a new folder, a new database).
public enum StoreKind: String, CaseIterable, CustomStringConvertible, Sendable {
    case memory, sqlite, postgres
    public var description: String { rawValue }

    public static var available: [StoreKind] {
        ProcessInfo.processInfo.environment["TRIPLINE_TEST_POSTGRES"].map { !$0.isEmpty } == true ? allCases : [.memory, .sqlite]
    }
}

/// A fresh store of a kind, and a way to open it again (a restart).
public final class Fixture {
    public let kind: StoreKind
    public private(set) var store: any TriplineStore
    /// A second, independent connection to the same store (PostgreSQL: another process's view;
    /// the other stores: the same object, as they allow one process).
    public let second: () throws -> any TriplineStore
    private let reopenStore: () throws -> any TriplineStore
    private let cleanup: () -> Void

    public init(_ kind: StoreKind) throws {
        self.kind = kind
        switch kind {
        case .memory:
            let s = MemoryStore()
            store = s
            reopenStore = { s }
            second = { s }
            cleanup = {}
        case .sqlite:
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tripline-store-\(UUID().uuidString)").path
            let s = try SQLiteStore(directory: dir)
            store = s
            reopenStore = { try SQLiteStore(directory: dir) }
            second = { s }
            cleanup = { try? FileManager.default.removeItem(atPath: dir) }
        case .postgres:
            let server = ProcessInfo.processInfo.environment["TRIPLINE_TEST_POSTGRES"]!
            let name = "t_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "").prefix(20)
            let url = try PostgresAdmin.createDatabase(url: server, name: String(name))
            store = try PostgresStore(url: url, maxConnections: 4)
            reopenStore = { try PostgresStore(url: url, maxConnections: 4) }
            second = { try PostgresStore(url: url, maxConnections: 4) }
            cleanup = { try? PostgresAdmin.dropDatabase(url: server, name: String(name)) }
        }
    }

    public func reopen() throws -> any TriplineStore {
        store = try reopenStore()
        return store
    }

    deinit { cleanup() }
}

