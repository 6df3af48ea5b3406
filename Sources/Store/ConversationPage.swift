/// One page of a user's conversations.
public struct ConversationPage: Sendable, Equatable {
    /// Most recent activity (newest message) first.
    public var conversations: [ConversationSummary]
    /// Pass it as `before` for the next page; nil when there is none. Opaque.
    public var nextCursor: String?

    public init(conversations: [ConversationSummary], nextCursor: String?) {
        self.conversations = conversations
        self.nextCursor = nextCursor
    }
}
