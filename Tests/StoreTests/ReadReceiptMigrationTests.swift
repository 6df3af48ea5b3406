import Foundation
@testable import Store
import Testing
import TestSupport

/// A database made before read receipts existed gets them at the next start, with its history
/// counted as read by those who wrote in it.
@Suite("The read receipts migration", .timeLimit(.minutes(3)))
struct ReadReceiptMigrationTests {
    @Test("messages stored before migration 2 make their authors and direct peers members, history read", arguments: [StoreBackend.sqliteFile, .postgres])
    func backfill(_ backend: StoreBackend) async throws {
        try await Self.withVersionOneDatabase(backend) { url, database in
            try await database.execute("""
                INSERT INTO messages (id, author_id, topic, recipient_id, peer_low, peer_high, content, created_at) VALUES
                ('m1', 'alice', 'rooms.old', NULL, NULL, NULL, 'one', 1000),
                ('m2', 'bob', 'rooms.old', NULL, NULL, NULL, 'two', 2000),
                ('m3', 'alice', 'rooms.old', NULL, NULL, NULL, 'three', 3000),
                ('d1', 'alice', NULL, 'bob', 'alice', 'bob', 'psst', 4000),
                ('d2', 'bob', NULL, 'alice', 'alice', 'bob', 'yes?', 5000),
                ('n1', 'dave', NULL, 'dave', 'dave', 'dave', 'note', 6000)
                """)
            try await StoreHarness.running(url) { store in
                let alice = try await store.conversations(of: "alice", before: nil, limit: 10).conversations
                #expect(alice.map(\.scope) == [.conversation("alice", "bob"), .topic("rooms.old")])
                #expect(alice.map(\.unreadCount) == [0, 0])
                #expect(alice.map { $0.lastRead?.messageId } == ["d2", "m3"])
                #expect(alice.map { $0.readers.map(\.userId) } == [["bob"], ["bob"]])

                let bob = try await store.conversations(of: "bob", before: nil, limit: 10).conversations
                #expect(bob.map { $0.lastRead?.messageId } == ["d2", "m2"])
                #expect(bob.map(\.unreadCount) == [0, 1], "alice's m3 came after bob's own m2")

                let dave = try await store.conversations(of: "dave", before: nil, limit: 10).conversations
                #expect(dave.map(\.scope) == [.conversation("dave", "dave")])
                #expect(dave.first?.readers == [])
            }
        }
    }

    /// A fresh database with only migration 1 applied, as a node before read receipts left it.
    private static func withVersionOneDatabase(
        _ backend: StoreBackend, _ body: (DatabaseURL, RawDatabase) async throws -> Void
    ) async throws {
        let first = try #require(Migration.all.first { $0.version == 1 })
        switch backend {
        case .sqliteMemory:
            throw TestFailure("an in-memory SQLite database cannot be opened twice")
        case .sqliteFile:
            try await StoreHarness.withTemporaryDirectory { directory in
                let path = directory.appendingPathComponent("chorus.db").path
                let database = RawDatabase.sqlite(path: path)
                for statement in [Migration.sqliteVersionTable] + first.sqlite {
                    try await database.execute(statement)
                }
                try await database.execute("INSERT INTO schema_migrations (version, name, applied_at) VALUES (1, 'users and messages', 0)")
                try await body(.sqliteFile(path), database)
            }
        case .postgres:
            try await PostgresProcess.withServer { server in
                try await server.createDatabase("chorus")
                let url = try DatabaseURL(parsing: server.url(database: "chorus"))
                guard case .postgres(let settings) = url else { throw TestFailure("not a PostgreSQL URL") }
                let database = RawDatabase.postgres(settings)
                for statement in [Migration.postgresVersionTable] + first.postgres {
                    try await database.execute(statement)
                }
                try await database.execute("INSERT INTO schema_migrations (version, name, applied_at) VALUES (1, 'users and messages', 0)")
                try await body(url, database)
            }
        }
    }
}
