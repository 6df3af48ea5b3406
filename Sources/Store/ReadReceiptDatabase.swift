import Foundation

/// A database that runs ``ReadReceiptSQL``'s statements: what SQLite and PostgreSQL each provide
/// (``rows(_:_:)``), and on top of it, once for both, the read receipts and conversation
/// listings of ``ReadReceiptRepository``.
///
/// Marking a message read, and recording the members of a message just stored, are each a few
/// statements, not one transaction (SQLite's one shared connection cannot hold a transaction per
/// request); each statement is a forward-only upsert, so concurrent or repeated ones end in the
/// same state.
protocol ReadReceiptDatabase: Sendable {
    /// Runs one statement with `$n` parameters and returns its rows.
    func rows(_ sql: String, _ binds: [ReadReceiptSQL.Value]) async throws -> [ReadReceiptRow]
}

/// One result row of a ``ReadReceiptDatabase``: its values by column name.
struct ReadReceiptRow: Sendable {
    var values: [String: ReadReceiptSQL.Value]

    func string(_ column: String) -> String? {
        if case .text(let text)? = values[column] { return text }
        return nil
    }

    func integer(_ column: String) -> Int64? {
        if case .integer(let number)? = values[column] { return number }
        return nil
    }

    func date(_ column: String) -> Date? { integer(column).map(Milliseconds.date) }

    /// The message in the row's message columns; nil when `id` is NULL (an outer join found none).
    var message: StoredMessage? {
        guard let id = string("id") else { return nil }
        return StoredMessage(
            id: id, authorId: string("author_id") ?? "", topic: string("topic"), recipientId: string("recipient_id"),
            content: string("content") ?? "", metadata: string("metadata"),
            createdAt: date("created_at") ?? Date(timeIntervalSince1970: 0), updatedAt: date("updated_at"))
    }
}

extension ReadReceiptDatabase {
    /// Records the author (and recipient) of a message just stored as members of its
    /// conversation: see ``ReadReceiptRepository``.
    func recordMembers(ofMessage id: String) async throws {
        for statement in ReadReceiptSQL.recordMembers {
            _ = try await rows(statement, [.text(id)])
        }
    }

    func markRead(messageId: String, by userId: String) async throws -> ReadRecord? {
        guard let row = try await rows(ReadReceiptSQL.message, [.text(messageId)]).first, let message = row.message,
              let sequence = row.integer("seq")
        else { return nil }
        let now = Milliseconds.now()
        let advanced: Bool
        let position: [ReadReceiptRow]
        if let topic = message.topic {
            advanced = try await !rows(
                ReadReceiptSQL.advanceInTopic,
                [.text(userId), .text(topic), .integer(sequence), .text(message.id), .integer(now)]).isEmpty
            position = advanced ? [] : try await rows(ReadReceiptSQL.positionInTopic, [.text(topic), .text(userId)])
        } else if let low = row.string("peer_low"), let high = row.string("peer_high") {
            advanced = try await !rows(
                ReadReceiptSQL.advanceInDirect,
                [.text(userId), .text(low), .text(high), .integer(sequence), .text(message.id), .integer(now)]).isEmpty
            position = advanced ? [] : try await rows(ReadReceiptSQL.positionInDirect, [.text(low), .text(high), .text(userId)])
        } else {
            // Neither topic nor recipient: no conversation to read in (the API never stores one).
            return nil
        }
        let readAt = Milliseconds.date(now)
        let current = position.first.flatMap { row -> ReadPosition? in
            guard let id = row.string("message_id"), let at = row.date("read_at") else { return nil }
            return ReadPosition(userId: userId, messageId: id, readAt: at)
        }
        return ReadRecord(
            message: message, readAt: readAt, advanced: advanced,
            position: current ?? ReadPosition(userId: userId, messageId: message.id, readAt: readAt))
    }

    func conversations(of userId: String, before cursor: String?, limit: Int) async throws -> ConversationPage {
        let after = try cursor.map(ConversationCursor.init(parsing:)) ?? .start
        // One row more than asked tells whether another page exists.
        let found = try await rows(
            ReadReceiptSQL.conversations,
            [.text(userId), .integer(after.lastSequence), .integer(after.receipt), .integer(Int64(limit + 1))])
        let page = found.prefix(limit)
        var summaries: [ConversationSummary] = []
        for row in page {
            let scope: MessageScope
            let readers: [ReadReceiptRow]
            let most = Int64(ConversationSummary.maximumReaders)
            if let topic = row.string("conversation_topic") {
                scope = .topic(topic)
                readers = try await rows(ReadReceiptSQL.readersInTopic, [.text(topic), .text(userId), .integer(most)])
            } else {
                let (low, high) = (row.string("conversation_low") ?? "", row.string("conversation_high") ?? "")
                scope = .conversation(low, high)
                readers = try await rows(ReadReceiptSQL.readersInDirect, [.text(low), .text(high), .text(userId), .integer(most)])
            }
            let own = row.string("read_message_id").flatMap { id in
                row.date("read_at").map { ReadPosition(userId: userId, messageId: id, readAt: $0) }
            }
            summaries.append(ConversationSummary(
                scope: scope, lastMessage: row.message, unreadCount: Int(row.integer("unread") ?? 0), lastRead: own,
                readers: readers.compactMap { reader in
                    guard let user = reader.string("user_id"), let id = reader.string("message_id"), let at = reader.date("read_at")
                    else { return nil }
                    return ReadPosition(userId: user, messageId: id, readAt: at)
                }))
        }
        let cursors = page.map {
            ConversationCursor(lastSequence: $0.integer("newest_seq") ?? 0, receipt: $0.integer("receipt_id") ?? 0).text
        }
        return ConversationPage(conversations: summaries, nextCursor: found.count > limit ? cursors.last : nil, cursors: cursors)
    }
}
