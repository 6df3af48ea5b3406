import Foundation
import Store
import Testing

/// What every store does, whatever the database: run against SQLite in memory, SQLite on a
/// file and a real PostgreSQL server.
@Suite("Store contract", .timeLimit(.minutes(3)))
struct StoreContractTests {
    @Test("a created user is found by name and by id", arguments: StoreBackend.allCases)
    func findUsers(_ backend: StoreBackend) async throws {
        try await backend.withStore { store in
            let alice = try await store.createUser(username: "alice", passwordHash: "$argon2id$hash-a")
            #expect(alice.username == "alice")
            #expect(alice.passwordHash == "$argon2id$hash-a")
            #expect(UUID(uuidString: alice.id) != nil)
            #expect(try await store.user(named: "alice") == alice)
            #expect(try await store.user(id: alice.id) == alice)
            #expect(try await store.user(named: "bob") == nil)
            #expect(try await store.user(id: UUID().uuidString.lowercased()) == nil)
        }
    }

    @Test("a taken username is refused, compared case-sensitively", arguments: StoreBackend.allCases)
    func duplicateUsernames(_ backend: StoreBackend) async throws {
        try await backend.withStore { store in
            let first = try await store.createUser(username: "alice", passwordHash: "one")
            await #expect(throws: StoreError.duplicateUsername) {
                try await store.createUser(username: "alice", passwordHash: "two")
            }
            let other = try await store.createUser(username: "Alice", passwordHash: "three")
            #expect(other.id != first.id)
            #expect(try await store.user(named: "alice")?.passwordHash == "one")
            #expect(try await store.user(named: "Alice")?.passwordHash == "three")
        }
    }

    @Test("a message posted with the client's id is stored once under it: the same id again is duplicateMessageId, also once the message is deleted", arguments: StoreBackend.allCases)
    func clientChosenIds(_ backend: StoreBackend) async throws {
        try await backend.withStore { store in
            let id = UUID().uuidString.lowercased()
            let new = NewMessage(id: id, authorId: "alice", topic: "chat.lobby", content: "once")
            let created = try await store.createMessage(new)
            #expect(created.id == id)
            await #expect(throws: StoreError.duplicateMessageId) { try await store.createMessage(new) }
            await #expect(throws: StoreError.duplicateMessageId) {
                try await store.createMessage(NewMessage(id: id, authorId: "bob", topic: "chat.other", content: "mine?"))
            }
            let page = try await store.messages(in: .topic("chat.lobby"), before: nil, limit: 10)
            #expect(page.messages.map(\.id) == [id], "stored once")
            #expect(try await store.message(id: id) == created)
            // Deleted, the id stays taken: a late retry does not bring the message back.
            #expect(try await store.deleteMessage(id: id))
            await #expect(throws: StoreError.duplicateMessageId) { try await store.createMessage(new) }
            #expect(try await store.message(id: id) == nil)
            #expect(try await !store.deleteMessage(id: id))
        }
    }

    @Test("a message is created, read, edited and deleted", arguments: StoreBackend.allCases)
    func messageLifecycle(_ backend: StoreBackend) async throws {
        try await backend.withStore { store in
            let metadata = #"{ "priority": "high", "tags": ["a", "ü"], "n": 1.50 }"#
            let created = try await store.createMessage(
                NewMessage(authorId: "alice", topic: "chat.lobby", content: "hello 👋", metadata: metadata))
            #expect(UUID(uuidString: created.id) != nil)
            #expect(created.authorId == "alice")
            #expect(created.topic == "chat.lobby")
            #expect(created.recipientId == nil)
            #expect(created.content == "hello 👋")
            #expect(created.metadata == metadata, "metadata is stored verbatim")
            #expect(created.updatedAt == nil)
            #expect(try await store.message(id: created.id) == created)

            let kept = try #require(try await store.updateMessage(id: created.id, content: "hello there", metadata: .keep))
            #expect(kept.content == "hello there" && kept.metadata == metadata, "kept as stored")
            let edited = try #require(try await store.updateMessage(id: created.id, content: "hello again", metadata: .set(nil)))
            #expect(edited.id == created.id)
            #expect(edited.content == "hello again")
            #expect(edited.metadata == nil)
            #expect(edited.createdAt == created.createdAt)
            let updatedAt = try #require(edited.updatedAt)
            #expect(updatedAt >= created.createdAt)
            #expect(try await store.message(id: created.id) == edited)

            #expect(try await store.deleteMessage(id: created.id))
            #expect(try await store.message(id: created.id) == nil)
            #expect(try await store.deleteMessage(id: created.id) == false)
            #expect(try await store.updateMessage(id: created.id, content: "gone", metadata: .keep) == nil)
        }
    }

    @Test("timestamps have millisecond precision and survive a round trip", arguments: StoreBackend.allCases)
    func timestamps(_ backend: StoreBackend) async throws {
        try await backend.withStore { store in
            let before = Date()
            let message = try await store.createMessage(NewMessage(authorId: "a", topic: "t", content: "x"))
            let user = try await store.createUser(username: "u", passwordHash: "h")
            for date in [message.createdAt, user.createdAt] {
                let milliseconds = date.timeIntervalSince1970 * 1000
                #expect(milliseconds == milliseconds.rounded(), "whole milliseconds")
                #expect(date >= before.addingTimeInterval(-0.001))
            }
            #expect(try await store.message(id: message.id)?.createdAt == message.createdAt)
            #expect(try await store.user(id: user.id)?.createdAt == user.createdAt)
        }
    }

    @Test(
        "a topic pages newest first without gaps or duplicates while messages keep arriving",
        arguments: StoreBackend.allCases)
    func topicPaging(_ backend: StoreBackend) async throws {
        try await backend.withStore { store in
            var posted: [StoredMessage] = []
            for index in 0..<25 {
                posted.append(try await store.createMessage(NewMessage(authorId: "u\(index % 3)", topic: "chat.lobby", content: "m\(index)")))
                _ = try await store.createMessage(NewMessage(authorId: "u0", topic: "chat.other", content: "noise \(index)"))
            }
            var seen: [StoredMessage] = []
            var cursor: String?
            var pages = 0
            repeat {
                let page = try await store.messages(in: .topic("chat.lobby"), before: cursor, limit: 10)
                seen += page.messages
                cursor = page.nextCursor
                pages += 1
                // Messages arriving between two page requests are newer than every cursor.
                _ = try await store.createMessage(NewMessage(authorId: "late", topic: "chat.lobby", content: "late \(pages)"))
            } while cursor != nil && pages < 10
            #expect(pages == 3)
            #expect(seen.map(\.content) == posted.reversed().map(\.content))
            #expect(seen == Array(posted.reversed()))

            let newest = try await store.messages(in: .topic("chat.lobby"), before: nil, limit: 3)
            #expect(newest.messages.map(\.content) == ["late 3", "late 2", "late 1"])
            #expect(newest.nextCursor != nil)
        }
    }

    @Test("a page that ends exactly at the oldest message has no next cursor", arguments: StoreBackend.allCases)
    func exactPage(_ backend: StoreBackend) async throws {
        try await backend.withStore { store in
            for index in 0..<4 {
                _ = try await store.createMessage(NewMessage(authorId: "a", topic: "t", content: "\(index)"))
            }
            let first = try await store.messages(in: .topic("t"), before: nil, limit: 2)
            #expect(first.messages.map(\.content) == ["3", "2"])
            let cursor: String = try #require(first.nextCursor)
            let second = try await store.messages(in: .topic("t"), before: cursor, limit: 2)
            #expect(second.messages.map(\.content) == ["1", "0"])
            #expect(second.nextCursor == nil)
            let all = try await store.messages(in: .topic("t"), before: nil, limit: 4)
            #expect(all.messages.count == 4)
            #expect(all.nextCursor == nil)
            let empty = try await store.messages(in: .topic("nobody-posts-here"), before: nil, limit: 10)
            #expect(empty == MessagePage(messages: [], nextCursor: nil))

            // A page cut short (as the HTTP route does past its byte budget) continues after its last message.
            let cut = all.prefix(1)
            #expect(cut.messages.map(\.content) == ["3"])
            let rest = try await store.messages(in: .topic("t"), before: cut.nextCursor, limit: 10)
            #expect(rest.messages.map(\.content) == ["2", "1", "0"])
            #expect(all.prefix(4) == all, "a prefix of the whole page is the page")
        }
    }

    @Test("a page stops at its byte budget of content and metadata, multibyte text counted in bytes, and its cursor continues after it", arguments: StoreBackend.allCases)
    func pageBytes(_ backend: StoreBackend) async throws {
        try await backend.withStore { store in
            // Oldest first: 400 bytes of content (100 four-byte scalars), 300, 200 + 100 of metadata, 100.
            _ = try await store.createMessage(NewMessage(authorId: "a", topic: "t", content: String(repeating: "😀", count: 100)))
            _ = try await store.createMessage(NewMessage(authorId: "a", topic: "t", content: String(repeating: "c", count: 300)))
            _ = try await store.createMessage(NewMessage(
                authorId: "a", topic: "t", content: String(repeating: "b", count: 200),
                metadata: "{\"k\":\"" + String(repeating: "m", count: 92) + "\"}"))
            _ = try await store.createMessage(NewMessage(authorId: "a", topic: "t", content: String(repeating: "a", count: 100)))

            // a (100 bytes) and b (300) reach 350: the message that crossed the budget ends the page.
            let first = try await store.messages(in: .topic("t"), before: nil, limit: 10, maxBytes: 350)
            #expect(first.messages.map(\.content.first) == ["a", "b"])
            #expect(first.cursors.count == 2)
            let second = try await store.messages(in: .topic("t"), before: first.nextCursor, limit: 10, maxBytes: 350)
            #expect(second.messages.map(\.content.first) == ["c", "😀"], "300 bytes, then 400: 300 < 350, so the 400 go in")
            #expect(second.nextCursor == nil)
            // The four-byte scalars count as 400 bytes, not 100 characters.
            let one = try await store.messages(in: .topic("t"), before: first.nextCursor, limit: 10, maxBytes: 300)
            #expect(one.messages.map(\.content.first) == ["c"])
            let oldest = try await store.messages(in: .topic("t"), before: one.nextCursor, limit: 10, maxBytes: 1)
            #expect(oldest.messages.map(\.content.count) == [100], "a page holds its first message whatever its size")
            #expect(oldest.nextCursor == nil)
            // The limit still ends a page within its budget.
            let limited = try await store.messages(in: .topic("t"), before: nil, limit: 1, maxBytes: 1_000_000)
            #expect(limited.messages.map(\.content.first) == ["a"])
            #expect(limited.nextCursor != nil)
        }
    }

    @Test("a conversation holds the direct messages of two users, both directions", arguments: StoreBackend.allCases)
    func conversations(_ backend: StoreBackend) async throws {
        try await backend.withStore { store in
            var between: [StoredMessage] = []
            for index in 0..<7 {
                let (from, to) = index.isMultiple(of: 2) ? ("alice", "bob") : ("bob", "alice")
                between.append(try await store.createMessage(NewMessage(authorId: from, recipientId: to, content: "dm \(index)")))
                _ = try await store.createMessage(NewMessage(authorId: "alice", recipientId: "carol", content: "other \(index)"))
                _ = try await store.createMessage(NewMessage(authorId: "bob", topic: "chat.lobby", content: "public \(index)"))
            }
            var seen: [StoredMessage] = []
            var cursor: String?
            repeat {
                let page = try await store.messages(in: .conversation("bob", "alice"), before: cursor, limit: 3)
                seen += page.messages
                cursor = page.nextCursor
                _ = try await store.createMessage(NewMessage(authorId: "alice", recipientId: "bob", content: "late"))
            } while cursor != nil && seen.count < 100
            #expect(seen == Array(between.reversed()))

            let reversed = try await store.messages(in: .conversation("alice", "bob"), before: nil, limit: 100)
            let forward = try await store.messages(in: .conversation("bob", "alice"), before: nil, limit: 100)
            #expect(reversed == forward)
            #expect(reversed.messages.count == 7 + 3)

            let toSelf = try await store.createMessage(NewMessage(authorId: "dave", recipientId: "dave", content: "note"))
            #expect(try await store.messages(in: .conversation("dave", "dave"), before: nil, limit: 10).messages == [toSelf])
        }
    }

    @Test("concurrent writers: every message is listed exactly once", arguments: StoreBackend.allCases)
    func concurrentWriters(_ backend: StoreBackend) async throws {
        try await backend.withStore { store in
            let ids = try await withThrowingTaskGroup(of: String.self) { group in
                for index in 0..<60 {
                    group.addTask { try await store.createMessage(NewMessage(authorId: "w\(index % 4)", topic: "busy", content: "\(index)")).id }
                }
                return try await group.reduce(into: Set<String>()) { $0.insert($1) }
            }
            #expect(ids.count == 60)
            var listed: [String] = []
            var cursor: String?
            repeat {
                let page = try await store.messages(in: .topic("busy"), before: cursor, limit: 7)
                listed += page.messages.map(\.id)
                cursor = page.nextCursor
            } while cursor != nil && listed.count <= 60
            #expect(listed.count == 60)
            #expect(Set(listed) == ids)
        }
    }

    @Test("a cursor that no page handed out is refused", arguments: StoreBackend.allCases)
    func invalidCursors(_ backend: StoreBackend) async throws {
        try await backend.withStore { store in
            _ = try await store.createMessage(NewMessage(authorId: "a", topic: "t", content: "x"))
            for cursor in ["", "garbage", "c", "c0", "c-1", "C1", "c01", "c+1", "czzzzzzzzzzzzzzzzzz", "1", "c1 "] {
                await #expect(throws: StoreError.invalidCursor, "cursor '\(cursor)'") {
                    try await store.messages(in: .topic("t"), before: cursor, limit: 10)
                }
            }
        }
    }

    @Test("limits are clamped to 1...maximumPageSize", arguments: StoreBackend.allCases)
    func limits(_ backend: StoreBackend) async throws {
        try await backend.withStore(configuration: StoreConfiguration(maximumPageSize: 5)) { store in
            for index in 0..<8 {
                _ = try await store.createMessage(NewMessage(authorId: "a", topic: "t", content: "\(index)"))
            }
            #expect(try await store.messages(in: .topic("t"), before: nil, limit: 0).messages.map(\.content) == ["7"])
            #expect(try await store.messages(in: .topic("t"), before: nil, limit: -3).messages.count == 1)
            let capped = try await store.messages(in: .topic("t"), before: nil, limit: 1000)
            #expect(capped.messages.count == 5)
            #expect(capped.nextCursor != nil)
        }
    }
}
