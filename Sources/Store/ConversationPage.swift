/// One page of a user's conversations.
public struct ConversationPage: Sendable, Equatable {
    /// Most recent activity (newest message) first.
    public var conversations: [ConversationSummary]
    /// Pass it as `before` for the next page; nil when there is none. Opaque.
    public var nextCursor: String?
    /// For each conversation, the cursor of a page that would end with it (see
    /// ``prefix(_:)``).
    public var cursors: [String]

    public init(conversations: [ConversationSummary], nextCursor: String?, cursors: [String] = []) {
        self.conversations = conversations
        self.nextCursor = nextCursor
        self.cursors = cursors
    }

    /// Keeps the conversations that satisfy `isIncluded`, each with its cursor, so that
    /// ``prefix(_:)`` still continues after the last one kept. The page's own `nextCursor`
    /// stays: the conversations left out are behind it too.
    public mutating func filter(_ isIncluded: (ConversationSummary) -> Bool) {
        let aligned = cursors.count == conversations.count
        var (kept, keptCursors) = ([ConversationSummary](), [String]())
        for (index, conversation) in conversations.enumerated() where isIncluded(conversation) {
            kept.append(conversation)
            if aligned { keptCursors.append(cursors[index]) }
        }
        conversations = kept
        cursors = keptCursors
    }

    /// The first `count` conversations (at least one), continued after the last of them.
    public func prefix(_ count: Int) -> ConversationPage {
        let count = max(1, count)
        guard count < conversations.count, count <= cursors.count else { return self }
        return ConversationPage(
            conversations: Array(conversations.prefix(count)), nextCursor: cursors[count - 1],
            cursors: Array(cursors.prefix(count)))
    }
}
