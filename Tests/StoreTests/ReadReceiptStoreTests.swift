import Foundation
import SQLiteNIO
@testable import Store
import Testing

/// Read receipts and conversation listings, whatever the database.
@Suite("Read receipts in the store", .timeLimit(.minutes(5)))
struct ReadReceiptStoreTests {
    @Test("a read position only moves forward; an older read is acknowledged and changes nothing", arguments: StoreBackend.allCases)
    func forwardOnly(_ backend: StoreBackend) async throws {
        try await backend.withStore { store in
            var posted: [StoredMessage] = []
            for index in 0..<3 {
                posted.append(try await store.createMessage(NewMessage(authorId: "alice", topic: "rooms.lobby", content: "m\(index)")))
            }
            let second = try #require(try await store.markRead(messageId: posted[1].id, by: "bob"))
            #expect(second.advanced)
            #expect(second.message == posted[1])
            #expect(second.position == ReadPosition(userId: "bob", messageId: posted[1].id, readAt: second.readAt))

            let older = try #require(try await store.markRead(messageId: posted[0].id, by: "bob"))
            #expect(!older.advanced)
            #expect(older.position == second.position, "the position stays at the later message")
            let again = try #require(try await store.markRead(messageId: posted[1].id, by: "bob"))
            #expect(!again.advanced)

            let third = try #require(try await store.markRead(messageId: posted[2].id, by: "bob"))
            #expect(third.advanced)
            #expect(third.position.messageId == posted[2].id)
            #expect(try await store.markRead(messageId: "no-such-message", by: "bob") == nil)
        }
    }

    @Test("a message posted again with its id (a retry) records its conversation's members, which the first try may have lost: the recipient lists the conversation")
    func retryRecordsMembers() async throws {
        try await StoreHarness.withTemporaryDirectory { directory in
            let path = directory.appendingPathComponent("chorus.db").path
            try await StoreHarness.running(.sqliteFile(path), configuration: .init()) { store in
                let new = NewMessage(id: UUID().uuidString.lowercased(), authorId: "alice", recipientId: "bob", content: "hi")
                _ = try await store.createMessage(new)
                // The first try's second step lost: no read positions for the conversation.
                let connection = try await SQLiteConnection.open(storage: .file(path: path))
                _ = try await connection.query("DELETE FROM read_receipts")
                try await connection.close()
                #expect(try await store.conversations(of: "bob", before: nil, limit: 10).conversations.isEmpty)
                await #expect(throws: StoreError.duplicateMessageId) { try await store.createMessage(new) }
                #expect(try await store.conversations(of: "bob", before: nil, limit: 10).conversations.count == 1)
            }
        }
    }

    @Test("concurrent reads of one conversation by one user end at the furthest message", arguments: StoreBackend.allCases)
    func concurrentReads(_ backend: StoreBackend) async throws {
        try await backend.withStore { store in
            var posted: [StoredMessage] = []
            for index in 0..<20 {
                posted.append(try await store.createMessage(NewMessage(authorId: "alice", recipientId: "bob", content: "\(index)")))
            }
            try await withThrowingTaskGroup(of: Void.self) { group in
                for message in posted.shuffled() {
                    group.addTask { _ = try await store.markRead(messageId: message.id, by: "bob") }
                }
                try await group.waitForAll()
            }
            let listed = try await store.conversations(of: "bob", before: nil, limit: 10).conversations
            #expect(listed.count == 1)
            #expect(listed.first?.lastRead?.messageId == posted.last?.id)
            #expect(listed.first?.unreadCount == 0)
        }
    }

    @Test("conversations show the newest message, the caller's unread count and the others' positions", arguments: StoreBackend.allCases)
    func listing(_ backend: StoreBackend) async throws {
        try await backend.withStore { store in
            // A topic: alice posts 4, bob posts 1 (which counts as reading up to it), then alice 2 more.
            var lobby: [StoredMessage] = []
            for index in 0..<4 {
                lobby.append(try await store.createMessage(NewMessage(authorId: "alice", topic: "rooms.lobby", content: "a\(index)")))
            }
            lobby.append(try await store.createMessage(NewMessage(authorId: "bob", topic: "rooms.lobby", content: "b")))
            for index in 0..<2 {
                lobby.append(try await store.createMessage(NewMessage(authorId: "alice", topic: "rooms.lobby", content: "c\(index)")))
            }
            // A direct conversation carol -> bob, newer than the lobby: bob has read nothing of it.
            let direct = [
                try await store.createMessage(NewMessage(authorId: "carol", recipientId: "bob", content: "hi bob")),
                try await store.createMessage(NewMessage(authorId: "carol", recipientId: "bob", content: "you there?")),
            ]
            // Noise bob is no member of.
            _ = try await store.createMessage(NewMessage(authorId: "dave", topic: "rooms.other", content: "x"))

            let page = try await store.conversations(of: "bob", before: nil, limit: 10)
            #expect(page.nextCursor == nil)
            try #require(page.conversations.count == 2)
            let (dm, room) = (page.conversations[0], page.conversations[1])
            #expect(dm.scope == .conversation("bob", "carol"))
            #expect(dm.lastMessage == direct[1])
            #expect(dm.unreadCount == 2)
            #expect(dm.lastRead == nil)
            #expect(dm.readers.map(\.userId) == ["carol"])
            #expect(dm.readers.first?.messageId == direct[1].id, "posting counts as reading")

            #expect(room.scope == .topic("rooms.lobby"))
            #expect(room.lastMessage == lobby[6])
            #expect(room.unreadCount == 2)
            #expect(room.lastRead?.messageId == lobby[4].id)
            #expect(room.readers.map(\.userId) == ["alice"])
            #expect(room.readers.first?.messageId == lobby[6].id)

            // Bob reads the direct conversation; carol sees how far he got.
            #expect(try await store.markRead(messageId: direct[0].id, by: "bob")?.advanced == true)
            let carol = try await store.conversations(of: "carol", before: nil, limit: 10).conversations
            #expect(carol.map(\.scope) == [.conversation("bob", "carol")])
            #expect(carol.first?.unreadCount == 0)
            #expect(carol.first?.readers == [ReadPosition(userId: "bob", messageId: direct[0].id, readAt: carol.first?.readers.first?.readAt ?? Date())])
            #expect(try await store.conversations(of: "bob", before: nil, limit: 10).conversations.first?.unreadCount == 1)

            // Reading a topic one never posted to makes one a member; dave's room now lists for bob.
            let other = try await store.messages(in: .topic("rooms.other"), before: nil, limit: 1).messages[0]
            _ = try await store.markRead(messageId: other.id, by: "bob")
            #expect(try await store.conversations(of: "bob", before: nil, limit: 10).conversations.map(\.scope) == [
                .topic("rooms.other"), .conversation("bob", "carol"), .topic("rooms.lobby"),
            ])
            #expect(try await store.conversations(of: "nobody", before: nil, limit: 10) == ConversationPage(conversations: [], nextCursor: nil))
        }
    }

    @Test("conversations page by newest activity with a cursor, each once", arguments: StoreBackend.allCases)
    func paging(_ backend: StoreBackend) async throws {
        try await backend.withStore { store in
            for index in 0..<7 {
                _ = try await store.createMessage(NewMessage(authorId: "bob", topic: "rooms.r\(index)", content: "\(index)"))
            }
            // A conversation whose only message was deleted sorts last.
            let gone = try await store.createMessage(NewMessage(authorId: "bob", recipientId: "eve", content: "oops"))
            #expect(try await store.deleteMessage(id: gone.id))

            var seen: [MessageScope] = []
            var cursor: String?
            var pages = 0
            repeat {
                let page = try await store.conversations(of: "bob", before: cursor, limit: 3)
                seen += page.conversations.map(\.scope)
                cursor = page.nextCursor
                pages += 1
            } while cursor != nil && pages < 10
            #expect(pages == 3)
            #expect(seen == (0..<7).reversed().map { .topic("rooms.r\($0)") } + [.conversation("bob", "eve")])

            // A page cut short (as the HTTP route does past its byte budget) continues after its last item.
            let cut = try await store.conversations(of: "bob", before: nil, limit: 5).prefix(2)
            #expect(cut.conversations.map(\.scope) == [.topic("rooms.r6"), .topic("rooms.r5")])
            let rest = try await store.conversations(of: "bob", before: cut.nextCursor, limit: 10)
            #expect(rest.conversations.map(\.scope) == (0..<5).reversed().map { .topic("rooms.r\($0)") } + [.conversation("bob", "eve")])
            for bad in ["", "garbage", "v", "v1", "v1.0", "v-1.1", "c1", "v1.1 "] {
                await #expect(throws: StoreError.invalidCursor, "cursor '\(bad)'") {
                    try await store.conversations(of: "bob", before: bad, limit: 3)
                }
            }
        }
    }
}
