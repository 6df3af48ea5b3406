import Foundation

/// Where chat messages live.
public protocol MessageRepository: Sendable {
    /// Stores a message with a fresh id and the current time.
    func createMessage(_ message: NewMessage) async throws -> StoredMessage

    /// The message with this id, if any.
    func message(id: String) async throws -> StoredMessage?

    /// Newest first, at most `limit`, strictly older than `cursor` (a ``MessagePage/nextCursor``
    /// from an earlier page; nil for the newest page).
    ///
    /// Stable under concurrent inserts: messages are ordered by an internal, monotonically
    /// increasing sequence number, not by timestamp, and a cursor is a position in that sequence.
    /// Paging from the newest page to the end lists every message that existed when the first
    /// page was read exactly once; messages stored meanwhile are newer than every cursor and
    /// appear on a fresh newest page. `limit` is clamped to 1...``StoreConfiguration/maximumPageSize``.
    /// The page also ends after the message that takes the content and metadata it holds to
    /// `maxBytes` or past (the first message always goes in; see ``PageBudget``), with a
    /// `nextCursor` that continues after it.
    /// Throws ``StoreError/invalidCursor`` for a cursor no listing handed out.
    func messages(in scope: MessageScope, before cursor: String?, limit: Int, maxBytes: Int) async throws -> MessagePage

    /// Sets content (and metadata, unless `keep`), and `updatedAt` to now; nil when there is no such message.
    func updateMessage(id: String, content: String, metadata: MetadataEdit) async throws -> StoredMessage?

    /// False when there was no such message.
    func deleteMessage(id: String) async throws -> Bool

    /// Deletes messages created before `cutoff`, at most `limit`, oldest first, and at most
    /// `limit` ids of messages deleted before it, oldest first (which are then free to be
    /// posted again).
    func prune(before cutoff: Date, limit: Int) async throws -> PrunedRows
}

extension MessageRepository {
    /// A page of at most `limit` messages, whatever their size.
    public func messages(in scope: MessageScope, before cursor: String?, limit: Int) async throws -> MessagePage {
        try await messages(in: scope, before: cursor, limit: limit, maxBytes: .max)
    }
}
