import Foundation
@testable import Store
import Testing

/// Unread counts stay cheap in long conversations: the listing counts index entries above the
/// reader's position, and the plans show it.
@Suite("Unread counts use the indexes", .timeLimit(.minutes(5)))
struct UnreadCountPlanTests {
    static let size = 10_000

    @Test("10,000 messages in a topic and in a direct conversation: right counts, and no scan of messages", arguments: [StoreBackend.sqliteFile, .postgres])
    func tenThousand(_ backend: StoreBackend) async throws {
        try await backend.withStoreAndDatabase { store, database in
            // Bulk-filled directly (the store would take a while): a topic alice fills, a direct
            // conversation of bob and carol, and noise in another topic.
            let series = switch database {
            case .sqlite: "(WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < \(Self.size)) SELECT i FROM n)"
            case .postgres: "(SELECT generate_series(1, \(Self.size)) AS i)"
            }
            try await database.execute("""
                INSERT INTO messages (id, author_id, topic, content, created_at)
                SELECT 'room-' || s.i, 'alice', 'rooms.big', 'm' || s.i, 1700000000000 + s.i FROM \(series) s
                """)
            try await database.execute("""
                INSERT INTO messages (id, author_id, recipient_id, peer_low, peer_high, content, created_at)
                SELECT 'dm-' || s.i, 'carol', 'bob', 'bob', 'carol', 'd' || s.i, 1700000000000 + s.i FROM \(series) s
                """)
            // As in a real database, many other topics and conversations (the planner's
            // estimates depend on how many there are).
            try await database.execute("""
                INSERT INTO messages (id, author_id, topic, content, created_at)
                SELECT 'noise-' || s.i, 'dave', 'rooms.noise-' || (s.i % 200), 'n' || s.i, 1700000000000 + s.i FROM \(series) s
                """)
            try await database.execute("""
                INSERT INTO messages (id, author_id, recipient_id, peer_low, peer_high, content, created_at)
                SELECT 'other-' || s.i, 'dave', 'user-' || (s.i % 200), 'dave', 'user-' || (s.i % 200), 'o' || s.i,
                       1700000000000 + s.i FROM \(series) s
                """)
            // Other users' memberships: 10,000 readers spread over the noise topics.
            try await database.execute("""
                INSERT INTO read_receipts (user_id, topic, last_read_seq, message_id, read_at)
                SELECT 'reader-' || s.i, 'rooms.noise-' || (s.i % 200), s.i, 'noise-' || s.i, 1700000000000 + s.i FROM \(series) s
                """)

            // Bob has read up to 10 before the end of the room, 5 before the end of the conversation.
            #expect(try await store.markRead(messageId: "room-\(Self.size - 10)", by: "bob")?.advanced == true)
            #expect(try await store.markRead(messageId: "dm-\(Self.size - 5)", by: "bob")?.advanced == true)
            try await database.execute("ANALYZE")

            let clock = ContinuousClock()
            var listed = ConversationPage(conversations: [], nextCursor: nil)
            let elapsed = try await clock.measure {
                listed = try await store.conversations(of: "bob", before: nil, limit: 20)
            }
            // The conversation was filled after the room: it comes first.
            #expect(listed.conversations.map(\.scope) == [.conversation("bob", "carol"), .topic("rooms.big")])
            #expect(listed.conversations.map(\.unreadCount) == [5, 10])
            #expect(listed.conversations.map { $0.lastMessage?.id } == ["dm-\(Self.size)", "room-\(Self.size)"])
            // Far behind (9,999 unread): counted up to the most a summary gives, not to the end.
            #expect(try await store.markRead(messageId: "room-1", by: "erin")?.advanced == true)
            let behind = try await store.conversations(of: "erin", before: nil, limit: 20)
            #expect(behind.conversations.map(\.unreadCount) == [ConversationSummary.maximumUnreadCount])
            #expect(try await store.markRead(messageId: "room-\(Self.size - ConversationSummary.maximumUnreadCount + 1)", by: "erin")?.advanced == true)
            let justUnder = try await store.conversations(of: "erin", before: nil, limit: 20)
            #expect(justUnder.conversations.map(\.unreadCount) == [ConversationSummary.maximumUnreadCount - 1], "counted exactly below it")
            print("conversations of bob (\(backend.rawValue), \(Self.size) messages per conversation): \(elapsed)")

            let plan = try await database.plan(
                ReadReceiptSQL.conversations, [.text("bob"), .integer(.max), .integer(.max), .integer(21)])
            print("plan of the conversation listing (\(backend.rawValue)):\n" + plan.joined(separator: "\n"))
            switch database {
            case .sqlite:
                // `SCAN <alias>` is a full scan; messages appear as m and last (mine and page are the CTEs).
                let fullScans = plan.filter { ["SCAN m", "SCAN last", "SCAN messages"].contains($0.split(separator: " ").prefix(2).joined(separator: " ")) }
                #expect(fullScans.isEmpty, "no full scan of messages")
                #expect(plan.contains { $0.contains("messages_topic (topic=? AND seq>?)") }, "topic unread count on the index")
                #expect(plan.contains { $0.contains("messages_conversation (peer_low=? AND peer_high=? AND seq>?)") },
                        "direct unread count on the index")
                #expect(plan.contains { $0.contains("read_receipts_user (user_id=?)") })
            case .postgres:
                #expect(!plan.contains { $0.contains("Seq Scan on messages") }, "no full scan of messages")
                #expect(plan.contains { $0.contains("using read_receipts_user on read_receipts") }, "the caller's rows by index")
                #expect(!plan.contains { $0.contains("using messages_pkey on messages m") }, "no walk of all newer messages")
                #expect(plan.contains { $0.contains("Index Cond: ((topic = ") && $0.contains(" AND (seq > ") },
                        "topic unread count on messages_topic")
                #expect(plan.contains { $0.contains("Index Cond: ((peer_low = ") && $0.contains(" AND (seq > ") },
                        "direct unread count on messages_conversation")
            }
        }
    }
}
