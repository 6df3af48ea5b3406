/// One page of a message listing.
public struct MessagePage: Sendable, Equatable {
    /// Newest first.
    public var messages: [StoredMessage]
    /// Pass it as `before` to get the next, older page; nil when there is nothing older.
    /// Opaque: its format may change, so clients must not take it apart.
    public var nextCursor: String?

    public init(messages: [StoredMessage], nextCursor: String?) {
        self.messages = messages
        self.nextCursor = nextCursor
    }
}
