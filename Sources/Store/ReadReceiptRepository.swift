/// Where read receipts live: per user and conversation (a topic, or the direct messages of two
/// users), the last message read.
///
/// A message belongs to the conversation of its topic, or when it has none, to the direct
/// conversation of its author and recipient. A user is a member of a conversation once they
/// posted in it, received a direct message in it, or marked one of its messages read; posting
/// counts as reading up to one's own message, so one's own messages are never unread.
public protocol ReadReceiptRepository: Sendable {
    /// Moves `userId`'s position in the message's conversation forward to the message; a message
    /// at or before the current position leaves it where it is (``ReadRecord/advanced`` false).
    /// Nil when there is no such message. The caller decides who may read what.
    func markRead(messageId: String, by userId: String) async throws -> ReadRecord?

    /// The conversations `userId` is a member of, most recent activity first, at most `limit`
    /// (clamped to 1...``StoreConfiguration/maximumPageSize``), after `cursor` (a
    /// ``ConversationPage/nextCursor``; nil for the first page).
    ///
    /// Each unread count is an index range count (`seq` above the position, on the index of
    /// the topic or the conversation): its cost grows with the unread messages, not with the
    /// conversation's length. Throws ``StoreError/invalidCursor`` for a cursor no listing made.
    func conversations(of userId: String, before cursor: String?, limit: Int) async throws -> ConversationPage
}
