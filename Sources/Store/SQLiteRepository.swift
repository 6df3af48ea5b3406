import Foundation
import SQLiteNIO

/// The users and messages of an open, migrated SQLite database. Every method is one statement
/// on the shared connection (see ``SQLiteDriver``); writes return their row with `RETURNING`.
/// Read receipts: `SQLiteRepository+ReadReceipts.swift`.
struct SQLiteRepository: UserRepository, MessageRepository, ReadReceiptRepository {
    let connection: SQLiteConnection

    // MARK: - Users

    func createUser(username: String, passwordHash: String) async throws -> UserAccount {
        let id = UUID().uuidString.lowercased()
        let now = Milliseconds.now()
        do {
            _ = try await connection.query(
                "INSERT INTO users (id, username, password_hash, created_at) VALUES (?, ?, ?, ?)",
                [.text(id), .text(username), .text(passwordHash), .integer(SQLiteInt64(now))])
        } catch let error as SQLiteError where error.reason == .constraintUniqueFailed {
            // The only unique index a caller can hit is the one on username.
            throw StoreError.duplicateUsername
        }
        return UserAccount(id: id, username: username, passwordHash: passwordHash, createdAt: Milliseconds.date(now))
    }

    func user(named username: String) async throws -> UserAccount? {
        try await connection.query("SELECT \(Self.userColumns) FROM users WHERE username = ?", [.text(username)])
            .first.map(Self.user)
    }

    func user(id: String) async throws -> UserAccount? {
        try await connection.query("SELECT \(Self.userColumns) FROM users WHERE id = ?", [.text(id)]).first.map(Self.user)
    }

    // MARK: - Messages

    func createMessage(_ message: NewMessage) async throws -> StoredMessage {
        let pair = ConversationKey(message)
        let rows = try await connection.query(
            """
            INSERT INTO messages (id, author_id, topic, recipient_id, peer_low, peer_high, content, metadata, created_at)
            SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9 WHERE NOT EXISTS (SELECT 1 FROM deleted_messages WHERE id = ?1)
            ON CONFLICT (id) DO NOTHING RETURNING \(Self.messageColumns)
            """,
            [
                .text(message.id ?? UUID().uuidString.lowercased()), .text(message.authorId), Self.text(message.topic),
                Self.text(message.recipientId), Self.text(pair?.low), Self.text(pair?.high), .text(message.content),
                Self.text(message.metadata), .integer(SQLiteInt64(Milliseconds.now())),
            ])
        guard let row = rows.first else {
            if message.id != nil { throw StoreError.duplicateMessageId }
            throw StoreError.unavailable("SQLite returned no row for a stored message")
        }
        return Self.message(row)
    }

    func message(id: String) async throws -> StoredMessage? {
        try await connection.query("SELECT \(Self.messageColumns) FROM messages WHERE id = ?", [.text(id)])
            .first.map(Self.message)
    }

    func messages(in scope: MessageScope, before cursor: String?, limit: Int, maxBytes: Int) async throws -> MessagePage {
        let below = try cursor.map { try MessageCursor(parsing: $0).sequence } ?? Int64.max
        let filter: String
        let binds: [SQLiteData]
        switch scope {
        case .topic(let topic):
            filter = "topic = ?"
            binds = [.text(topic)]
        case .conversation(let first, let second):
            let pair = ConversationKey(first, second)
            filter = "peer_low = ? AND peer_high = ?"
            binds = [.text(pair.low), .text(pair.high)]
        }
        // Sizes first (one row more than asked tells whether an older page exists), then whole
        // only the rows the page keeps (``PageBudget``); rows stored meanwhile are above `newest`.
        let sized = try await connection.query(
            """
            SELECT seq, octet_length(content) + coalesce(octet_length(metadata), 0) AS size FROM messages
            WHERE \(filter) AND seq < ? ORDER BY seq DESC LIMIT ?
            """,
            binds + [.integer(SQLiteInt64(below)), .integer(SQLiteInt64(limit + 1))])
        let sequences = sized.map { Int64($0.column("seq")?.integer ?? 0) }
        let kept = PageBudget.rows(sizes: sized.map { $0.column("size")?.integer ?? 0 }, limit: limit, maxBytes: maxBytes)
        guard let newest = sequences.first, kept > 0 else { return MessagePage(messages: [], nextCursor: nil) }
        let oldest = sequences[kept - 1]
        let rows = try await connection.query(
            "SELECT \(Self.messageColumns) FROM messages WHERE \(filter) AND seq BETWEEN ? AND ? ORDER BY seq DESC",
            binds + [.integer(SQLiteInt64(oldest)), .integer(SQLiteInt64(newest))])
        if rows.isEmpty, sequences.count > kept {
            // Every kept row was deleted between the two reads: the page goes on below them,
            // rather than come back empty with a cursor (a client may stop at an empty page).
            return try await messages(in: scope, before: MessageCursor(sequence: oldest).text, limit: limit, maxBytes: maxBytes)
        }
        let cursors = rows.map { MessageCursor(sequence: Int64($0.column("seq")?.integer ?? 0)).text }
        return MessagePage(
            messages: rows.map(Self.message), nextCursor: sequences.count > kept ? MessageCursor(sequence: oldest).text : nil,
            cursors: cursors)
    }

    func updateMessage(id: String, content: String, metadata: MetadataEdit) async throws -> StoredMessage? {
        let now = SQLiteData.integer(SQLiteInt64(Milliseconds.now()))
        return switch metadata {
        case .keep:
            try await connection.query(
                "UPDATE messages SET content = ?, updated_at = ? WHERE id = ? RETURNING \(Self.messageColumns)",
                [.text(content), now, .text(id)]
            ).first.map(Self.message)
        case .set(let metadata):
            try await connection.query(
                "UPDATE messages SET content = ?, metadata = ?, updated_at = ? WHERE id = ? RETURNING \(Self.messageColumns)",
                [.text(content), Self.text(metadata), now, .text(id)]
            ).first.map(Self.message)
        }
    }

    /// Keeps the id first (``Migration`` 3), so that it stays taken even if the delete fails.
    func deleteMessage(id: String) async throws -> Bool {
        _ = try await connection.query(
            """
            INSERT INTO deleted_messages (id, author_id, deleted_at) SELECT id, author_id, ? FROM messages WHERE id = ?
            ON CONFLICT (id) DO NOTHING
            """,
            [.integer(SQLiteInt64(Milliseconds.now())), .text(id)])
        let deleted = try await connection.query("DELETE FROM messages WHERE id = ? RETURNING seq", [.text(id)])
        return !deleted.isEmpty
    }

    /// The oldest rows first, found through ``Migration`` 4's indexes on their age.
    func prune(before cutoff: Date, limit: Int) async throws -> PrunedRows {
        let before = SQLiteData.integer(SQLiteInt64(Milliseconds.of(cutoff)))
        let messages = try await connection.query(
            """
            DELETE FROM messages WHERE seq IN (SELECT seq FROM messages WHERE created_at < ? ORDER BY created_at LIMIT ?)
            RETURNING seq
            """,
            [before, .integer(SQLiteInt64(limit))])
        let ids = try await connection.query(
            """
            DELETE FROM deleted_messages WHERE id IN (
                SELECT id FROM deleted_messages WHERE deleted_at < ? ORDER BY deleted_at LIMIT ?
            ) RETURNING id
            """,
            [before, .integer(SQLiteInt64(limit))])
        return PrunedRows(messages: messages.count, deletedIds: ids.count)
    }

    // MARK: - Rows

    private static let userColumns = "id, username, password_hash, created_at"
    private static let messageColumns =
        "seq, id, author_id, topic, recipient_id, content, metadata, created_at, updated_at"

    private static func user(_ row: SQLiteRow) -> UserAccount {
        UserAccount(
            id: row.column("id")?.string ?? "", username: row.column("username")?.string ?? "",
            passwordHash: row.column("password_hash")?.string ?? "",
            createdAt: Milliseconds.date(Int64(row.column("created_at")?.integer ?? 0)))
    }

    private static func message(_ row: SQLiteRow) -> StoredMessage {
        StoredMessage(
            id: row.column("id")?.string ?? "", authorId: row.column("author_id")?.string ?? "",
            topic: row.column("topic")?.string, recipientId: row.column("recipient_id")?.string,
            content: row.column("content")?.string ?? "", metadata: row.column("metadata")?.string,
            createdAt: Milliseconds.date(Int64(row.column("created_at")?.integer ?? 0)),
            updatedAt: row.column("updated_at")?.integer.map { Milliseconds.date(Int64($0)) })
    }

    static func text(_ value: String?) -> SQLiteData { value.map { .text($0) } ?? .null }
}
