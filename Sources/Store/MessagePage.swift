/// One page of a message listing.
public struct MessagePage: Sendable, Equatable {
    /// Newest first.
    public var messages: [StoredMessage]
    /// Pass it as `before` to get the next, older page; nil when there is nothing older.
    /// Opaque: its format may change, so clients must not take it apart.
    public var nextCursor: String?
    /// For each message, the cursor of a page that would end with it: what lets a reader cut
    /// the page shorter (``prefix(_:)``) and still continue exactly after it.
    public var cursors: [String]

    public init(messages: [StoredMessage], nextCursor: String?, cursors: [String] = []) {
        self.messages = messages
        self.nextCursor = nextCursor
        self.cursors = cursors
    }

    /// The first `count` messages (at least one), continued after the last of them.
    public func prefix(_ count: Int) -> MessagePage {
        let count = max(1, count)
        guard count < messages.count, count <= cursors.count else { return self }
        return MessagePage(
            messages: Array(messages.prefix(count)), nextCursor: cursors[count - 1], cursors: Array(cursors.prefix(count)))
    }
}
