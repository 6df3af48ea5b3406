import Foundation
import Logging
import PostgresNIO

/// The users and messages of an open, migrated PostgreSQL database. Every method is one
/// statement on a pooled connection; writes return their row with `RETURNING`. Read receipts:
/// `PostgresRepository+ReadReceipts.swift`.
struct PostgresRepository: UserRepository, MessageRepository, ReadReceiptRepository {
    let client: PostgresClient
    let logger: Logger

    /// `unique_violation`: the only unique index a caller can hit is the one on `username`.
    private static let uniqueViolation = "23505"

    // MARK: - Users

    func createUser(username: String, passwordHash: String) async throws -> UserAccount {
        let id = UUID().uuidString.lowercased()
        let now = Milliseconds.now()
        do {
            try await client.query(
                "INSERT INTO users (id, username, password_hash, created_at) VALUES (\(id), \(username), \(passwordHash), \(now))",
                logger: logger)
        } catch let error as PSQLError where error.serverInfo?[.sqlState] == Self.uniqueViolation {
            throw StoreError.duplicateUsername
        }
        return UserAccount(id: id, username: username, passwordHash: passwordHash, createdAt: Milliseconds.date(now))
    }

    func user(named username: String) async throws -> UserAccount? {
        try await users(client.query(
            "SELECT id, username, password_hash, created_at FROM users WHERE username = \(username)", logger: logger)
        ).first
    }

    func user(id: String) async throws -> UserAccount? {
        try await users(client.query(
            "SELECT id, username, password_hash, created_at FROM users WHERE id = \(id)", logger: logger)
        ).first
    }

    // MARK: - Messages

    func createMessage(_ message: NewMessage) async throws -> StoredMessage {
        let id = message.id ?? UUID().uuidString.lowercased()
        let pair = ConversationKey(message)
        let rows = try await client.query(
            """
            INSERT INTO messages (id, author_id, topic, recipient_id, peer_low, peer_high, content, metadata, created_at)
            SELECT \(id), \(message.authorId), \(message.topic), \(message.recipientId), \(pair?.low), \(pair?.high),
                   \(message.content), \(message.metadata), \(Milliseconds.now())
            WHERE NOT EXISTS (SELECT 1 FROM deleted_messages WHERE id = \(id))
            ON CONFLICT (id) DO NOTHING RETURNING \(unescaped: Self.messageColumns)
            """,
            logger: logger)
        guard let stored = try await messages(rows).first else {
            if message.id != nil { throw StoreError.duplicateMessageId }
            throw StoreError.unavailable("PostgreSQL returned no row for a stored message")
        }
        return stored.message
    }

    func message(id: String) async throws -> StoredMessage? {
        try await messages(client.query(
            "SELECT \(unescaped: Self.messageColumns) FROM messages WHERE id = \(id)", logger: logger)
        ).first?.message
    }

    func messages(in scope: MessageScope, before cursor: String?, limit: Int, maxBytes: Int) async throws -> MessagePage {
        let below = try cursor.map { try MessageCursor(parsing: $0).sequence } ?? Int64.max
        // Sizes first (one row more than asked tells whether an older page exists), then whole
        // only the rows the page keeps (``PageBudget``); rows stored meanwhile are above `newest`.
        let fetch = Int64(limit + 1)
        let size = "(octet_length(content) + coalesce(octet_length(metadata), 0))::bigint"
        var sized: [(sequence: Int64, size: Int64)] = []
        let sizes: PostgresRowSequence
        switch scope {
        case .topic(let topic):
            sizes = try await client.query(
                "SELECT seq, \(unescaped: size) FROM messages WHERE topic = \(topic) AND seq < \(below) ORDER BY seq DESC LIMIT \(fetch)",
                logger: logger)
        case .conversation(let first, let second):
            let pair = ConversationKey(first, second)
            sizes = try await client.query(
                """
                SELECT seq, \(unescaped: size) FROM messages
                WHERE peer_low = \(pair.low) AND peer_high = \(pair.high) AND seq < \(below) ORDER BY seq DESC LIMIT \(fetch)
                """,
                logger: logger)
        }
        for try await row in sizes.decode((Int64, Int64).self) { sized.append(row) }
        let kept = PageBudget.rows(sizes: sized.map { Int($0.size) }, limit: limit, maxBytes: maxBytes)
        guard let newest = sized.first?.sequence, kept > 0 else { return MessagePage(messages: [], nextCursor: nil) }
        let oldest = sized[kept - 1].sequence
        let rows: PostgresRowSequence
        switch scope {
        case .topic(let topic):
            rows = try await client.query(
                """
                SELECT \(unescaped: Self.messageColumns) FROM messages
                WHERE topic = \(topic) AND seq BETWEEN \(oldest) AND \(newest) ORDER BY seq DESC
                """,
                logger: logger)
        case .conversation(let first, let second):
            let pair = ConversationKey(first, second)
            rows = try await client.query(
                """
                SELECT \(unescaped: Self.messageColumns) FROM messages
                WHERE peer_low = \(pair.low) AND peer_high = \(pair.high) AND seq BETWEEN \(oldest) AND \(newest) ORDER BY seq DESC
                """,
                logger: logger)
        }
        let found = try await messages(rows)
        if found.isEmpty, sized.count > kept {
            // Every kept row was deleted between the two reads: the page goes on below them,
            // rather than come back empty with a cursor (a client may stop at an empty page).
            return try await messages(in: scope, before: MessageCursor(sequence: oldest).text, limit: limit, maxBytes: maxBytes)
        }
        let cursors = found.map { MessageCursor(sequence: $0.sequence).text }
        return MessagePage(
            messages: found.map(\.message), nextCursor: sized.count > kept ? MessageCursor(sequence: oldest).text : nil,
            cursors: cursors)
    }

    func updateMessage(id: String, content: String, metadata: MetadataEdit) async throws -> StoredMessage? {
        switch metadata {
        case .keep:
            try await messages(client.query(
                """
                UPDATE messages SET content = \(content), updated_at = \(Milliseconds.now())
                WHERE id = \(id) RETURNING \(unescaped: Self.messageColumns)
                """,
                logger: logger)
            ).first?.message
        case .set(let metadata):
            try await messages(client.query(
                """
                UPDATE messages SET content = \(content), metadata = \(metadata), updated_at = \(Milliseconds.now())
                WHERE id = \(id) RETURNING \(unescaped: Self.messageColumns)
                """,
                logger: logger)
            ).first?.message
        }
    }

    func deleteMessage(id: String) async throws -> Bool {
        var deleted = false
        // The id is kept in the same statement (``Migration`` 3): it stays taken. Deleted is
        // what the message table says, as in SQLite: an id already kept (a post that raced an
        // earlier delete of it) still deletes its message, and the delete is announced.
        for try await _ in try await client.query(
            """
            WITH gone AS (DELETE FROM messages WHERE id = \(id) RETURNING id, author_id, seq),
            kept AS (
                INSERT INTO deleted_messages (id, author_id, deleted_at) SELECT id, author_id, \(Milliseconds.now()) FROM gone
                ON CONFLICT (id) DO NOTHING)
            SELECT 1 FROM gone
            """, logger: logger)
            .decode(Int.self)
        {
            deleted = true
        }
        return deleted
    }

    /// As SQLite's (``SQLiteRepository/prune(before:limit:)``); each statement counts what it
    /// deleted rather than returning the rows.
    func prune(before cutoff: Date, limit: Int) async throws -> PrunedRows {
        let before = Milliseconds.of(cutoff)
        let messages = try await count(client.query(
            """
            WITH gone AS (
                DELETE FROM messages WHERE seq IN (
                    SELECT seq FROM messages WHERE created_at < \(before) ORDER BY created_at LIMIT \(limit)
                )
                RETURNING 1
            ) SELECT count(*) FROM gone
            """, logger: logger))
        let ids = try await count(client.query(
            """
            WITH gone AS (
                DELETE FROM deleted_messages WHERE id IN (
                    SELECT id FROM deleted_messages WHERE deleted_at < \(before) ORDER BY deleted_at LIMIT \(limit)
                )
                RETURNING 1
            ) SELECT count(*) FROM gone
            """, logger: logger))
        return PrunedRows(messages: messages, deletedIds: ids)
    }

    private func count(_ rows: PostgresRowSequence) async throws -> Int {
        var total = 0
        for try await value in rows.decode(Int64.self) { total += Int(value) }
        return total
    }

    // MARK: - Rows

    private static let messageColumns =
        "seq, id, author_id, topic, recipient_id, content, metadata, created_at, updated_at"

    private func users(_ rows: PostgresRowSequence) async throws -> [UserAccount] {
        var users: [UserAccount] = []
        for try await (id, username, hash, created) in rows.decode((String, String, String, Int64).self) {
            users.append(UserAccount(id: id, username: username, passwordHash: hash, createdAt: Milliseconds.date(created)))
        }
        return users
    }

    private func messages(_ rows: PostgresRowSequence) async throws -> [(sequence: Int64, message: StoredMessage)] {
        var messages: [(sequence: Int64, message: StoredMessage)] = []
        for try await (seq, id, author, topic, recipient, content, metadata, created, updated) in rows.decode(
            (Int64, String, String, String?, String?, String, String?, Int64, Int64?).self)
        {
            let message = StoredMessage(
                id: id, authorId: author, topic: topic, recipientId: recipient, content: content, metadata: metadata,
                createdAt: Milliseconds.date(created), updatedAt: updated.map(Milliseconds.date))
            messages.append((seq, message))
        }
        return messages
    }
}
