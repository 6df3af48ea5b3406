/// One conversation as its member sees it in a listing: where it is, its newest message, how many
/// messages the member has not read, and how far the others have read.
public struct ConversationSummary: Sendable, Equatable {
    /// `.topic(name)`, or `.conversation(low, high)` for direct messages (the two user ids in the
    /// store's fixed order, which does not say who wrote first).
    public var scope: MessageScope
    /// The newest message; nil when every message of the conversation has been deleted.
    public var lastMessage: StoredMessage?
    /// The messages after the member's own read position (all of them when nothing is read yet),
    /// counted up to ``maximumUnreadCount``: that number means that many or more.
    public var unreadCount: Int
    /// The member's own position; nil when they have read nothing yet.
    public var lastRead: ReadPosition?
    /// The other members who have read something, furthest first, at most
    /// ``ConversationSummary/maximumReaders``.
    public var readers: [ReadPosition]

    /// The most read positions of other members a summary carries (a large room has many).
    public static let maximumReaders = 50
    /// The highest unread count a summary gives ("999+" in an app): counting further would cost
    /// every unread message of every conversation on the page, for a member far behind.
    public static let maximumUnreadCount = 1_000

    public init(scope: MessageScope, lastMessage: StoredMessage?, unreadCount: Int, lastRead: ReadPosition?, readers: [ReadPosition]) {
        self.scope = scope
        self.lastMessage = lastMessage
        self.unreadCount = unreadCount
        self.lastRead = lastRead
        self.readers = readers
    }
}
