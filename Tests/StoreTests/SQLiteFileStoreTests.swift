import Foundation
import Store
import Testing

@Suite("SQLite file store", .timeLimit(.minutes(2)))
struct SQLiteFileStoreTests {
    @Test("data survives closing and reopening; migrations run again harmlessly")
    func reopen() async throws {
        try await StoreHarness.withTemporaryDirectory { directory in
            let path = directory.appendingPathComponent("chorus.db").path
            let (user, page) = try await StoreHarness.running(.sqliteFile(path)) { store in
                let user = try await store.createUser(username: "alice", passwordHash: "h")
                for index in 0..<5 {
                    _ = try await store.createMessage(NewMessage(authorId: user.id, topic: "t", content: "\(index)"))
                }
                return (user, try await store.messages(in: .topic("t"), before: nil, limit: 2))
            }
            #expect(try await SchemaInspection.versions(ofSQLiteFile: path) == [1, 2, 3, 4])

            try await StoreHarness.running(.sqliteFile(path)) { store in
                #expect(try await store.user(named: "alice") == user)
                await #expect(throws: StoreError.duplicateUsername) {
                    try await store.createUser(username: "alice", passwordHash: "again")
                }
                // A cursor handed out before the restart still means the same place.
                let rest = try await store.messages(in: .topic("t"), before: page.nextCursor, limit: 10)
                #expect(rest.messages.map(\.content) == ["2", "1", "0"])
                let next = try await store.createMessage(NewMessage(authorId: user.id, topic: "t", content: "5"))
                #expect(try await store.messages(in: .topic("t"), before: nil, limit: 1).messages == [next])
            }
            #expect(try await SchemaInspection.versions(ofSQLiteFile: path) == [1, 2, 3, 4])
        }
    }

    /// Twenty rounds, each on a new file: the two stores then switch it to WAL at the same
    /// moment, which SQLite answers with busy at once in a few rounds in a hundred. The busy
    /// timeout is far shorter than a migration, as a loaded machine makes the default 5 s, so
    /// that the second store finds the first one's migration holding the write lock.
    @Test("two stores started at once on one new file both open and share it, round after round")
    func twoStoresOneFile() async throws {
        let configuration = StoreConfiguration(sqliteBusyTimeout: .milliseconds(1))
        for round in 0..<20 {
            try await StoreHarness.withTemporaryDirectory { directory in
                let url = DatabaseURL.sqliteFile(directory.appendingPathComponent("shared.db").path)
                try await StoreHarness.runningAll([url, url], configuration: configuration) { stores in
                    let user = try await stores[0].createUser(username: "shared", passwordHash: "h")
                    #expect(try await stores[1].user(named: "shared") == user, "round \(round)")
                    await #expect(throws: StoreError.duplicateUsername) {
                        try await stores[1].createUser(username: "shared", passwordHash: "h")
                    }
                    let message = try await stores[1].createMessage(NewMessage(authorId: user.id, topic: "t", content: "hi"))
                    #expect(try await stores[0].message(id: message.id) == message, "round \(round)")
                }
                #expect(try await SchemaInspection.versions(ofSQLiteFile: url.path) == [1, 2, 3, 4], "round \(round)")
            }
        }
    }
}

extension DatabaseURL {
    /// The file of a `sqliteFile` URL.
    var path: String {
        guard case .sqliteFile(let path) = self else { return "" }
        return path
    }
}
