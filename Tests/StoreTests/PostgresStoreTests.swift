import Foundation
import Store
import Testing
import TestSupport

/// What only a shared PostgreSQL shows: several nodes on one database.
@Suite("PostgreSQL store", .timeLimit(.minutes(3)))
struct PostgresStoreTests {
    @Test("two nodes racing to create the same username: exactly one wins, every time")
    func usernameRace() async throws {
        try await PostgresProcess.withServer { server in
            try await server.createDatabase("chorus")
            let url = try DatabaseURL(parsing: server.url(database: "chorus"))
            // Started at once, the two stores also race through the migrations.
            try await StoreHarness.runningAll([url, url]) { stores in
                for round in 0..<20 {
                    let name = "racer-\(round)"
                    async let first = Self.outcome { try await stores[0].createUser(username: name, passwordHash: "a") }
                    async let second = Self.outcome { try await stores[1].createUser(username: name, passwordHash: "b") }
                    let outcomes = await [first, second]
                    let winners = outcomes.compactMap { try? $0.get() }
                    #expect(winners.count == 1, "round \(round): \(outcomes)")
                    let losers = outcomes.compactMap { result -> StoreError? in
                        if case .failure(let error) = result { return error as? StoreError }
                        return nil
                    }
                    #expect(losers == [.duplicateUsername], "round \(round)")
                    #expect(try await stores[0].user(named: name) == winners.first)
                    #expect(try await stores[1].user(named: name) == winners.first)
                }
                let message = try await stores[0].createMessage(NewMessage(authorId: "a", topic: "chat.lobby", content: "from node 1"))
                #expect(try await stores[1].messages(in: .topic("chat.lobby"), before: nil, limit: 5).messages == [message])
            }
            guard case .postgres(let settings) = url else { return }
            #expect(try await SchemaInspection.versions(ofPostgres: settings) == [1, 2, 3, 4])
        }
    }

    @Test("a message whose id is kept as deleted already (a post that raced an earlier delete of the same id) is still deleted, and the delete says so: it is announced, not answered 404")
    func deleteOfAnIdKeptAlready() async throws {
        try await PostgresProcess.withServer { server in
            try await server.createDatabase("chorus")
            let url = try DatabaseURL(parsing: server.url(database: "chorus"))
            guard case .postgres(let settings) = url else { return }
            try await StoreHarness.running(url) { store in
                let message = try await store.createMessage(NewMessage(id: "m-raced", authorId: "a", topic: "chat.lobby", content: "back"))
                try await SchemaInspection.execute(
                    "INSERT INTO deleted_messages (id, author_id, deleted_at) VALUES ('m-raced', 'a', 1)", onPostgres: settings)
                #expect(try await store.deleteMessage(id: message.id), "the message row was deleted")
                #expect(try await store.message(id: message.id) == nil)
            }
        }
    }

    @Test("data survives a restart of the store; migrations run again harmlessly")
    func reopen() async throws {
        try await PostgresProcess.withServer { server in
            try await server.createDatabase("chorus")
            let url = try DatabaseURL(parsing: server.url(database: "chorus"))
            guard case .postgres(let settings) = url else { return }
            let user = try await StoreHarness.running(url) { store in
                let user = try await store.createUser(username: "alice", passwordHash: "h")
                _ = try await store.createMessage(NewMessage(authorId: user.id, recipientId: "bob", content: "hi"))
                return user
            }
            #expect(try await SchemaInspection.versions(ofPostgres: settings) == [1, 2, 3, 4])
            try await StoreHarness.running(url) { store async throws in
                #expect(try await store.user(named: "alice") == user)
                #expect(try await store.messages(in: .conversation("bob", user.id), before: nil, limit: 5).messages.map(\.content) == ["hi"])
            }
            #expect(try await SchemaInspection.versions(ofPostgres: settings) == [1, 2, 3, 4])
        }
    }

    @Test("a server that cannot be reached fails run() and ready() with the reason")
    func unreachable() async throws {
        let port = try LoopbackPort.reserve()  // nothing listens on it
        let url = try DatabaseURL(parsing: "postgres://chorus:secret@127.0.0.1:\(port)/chorus")
        let store = makeStore(url, logger: StoreHarness.logger, configuration: StoreConfiguration(openTimeout: .milliseconds(500)))
        let run = Task { try await store.run() }
        let error = await #expect(throws: StoreError.self) { try await store.ready() }
        guard case .unavailable(let reason) = error else { Issue.record("got \(String(describing: error))"); return }
        #expect(reason.contains("cannot connect to PostgreSQL at 127.0.0.1:\(port)/chorus"), "reason: \(reason)")
        #expect(!reason.contains("secret"))
        await #expect(throws: StoreError.self) { try await run.value }
    }

    @Test("a database that does not exist is reported at once, in PostgreSQL's words")
    func missingDatabase() async throws {
        try await PostgresProcess.withServer { server in
            let url = try DatabaseURL(parsing: server.url(database: "nowhere"))
            // A long open timeout: a refusal by the server itself must not be retried.
            let store = makeStore(url, logger: StoreHarness.logger, configuration: StoreConfiguration(openTimeout: .seconds(600)))
            let run = Task { try await store.run() }
            let error = await #expect(throws: StoreError.self) { try await store.ready() }
            guard case .unavailable(let reason) = error else { Issue.record("got \(String(describing: error))"); return }
            #expect(reason.contains(#"database "nowhere" does not exist"#), "reason: \(reason)")
            await #expect(throws: StoreError.self) { try await run.value }
        }
    }

    @Test("sslmode=prefer falls back to plain TCP; sslmode=require refuses a server without TLS")
    func sslModes() async throws {
        try await PostgresProcess.withServer { server in
            try await server.createDatabase("chorus")
            let prefer = try DatabaseURL(parsing: server.url(database: "chorus") + "?sslmode=prefer")
            try await StoreHarness.running(prefer) { store in
                let user = try await store.createUser(username: "tls-maybe", passwordHash: "h")
                #expect(try await store.user(id: user.id) == user)
            }
            let require = try DatabaseURL(parsing: server.url(database: "chorus") + "?sslmode=require")
            let store = makeStore(require, logger: StoreHarness.logger, configuration: StoreConfiguration(openTimeout: .seconds(600)))
            let run = Task { try await store.run() }
            let error = await #expect(throws: StoreError.self) { try await store.ready() }
            guard case .unavailable(let reason) = error else { Issue.record("got \(String(describing: error))"); return }
            #expect(reason.contains("does not offer TLS"), "reason: \(reason)")
            await #expect(throws: StoreError.self) { try await run.value }
        }
    }

    private static func outcome(_ body: () async throws -> UserAccount) async -> Result<UserAccount, any Error> {
        do { return .success(try await body()) } catch { return .failure(error) }
    }
}
