/// A chat message to store: posted to a topic, sent directly to one user, or both.
public struct NewMessage: Sendable, Equatable {
    /// The id the client chose (a lowercase UUID), so that it can post the message again after
    /// a failure without storing it twice; nil for one made by the store.
    public var id: String?
    /// The sender's user id.
    public var authorId: String
    /// The topic it was posted to (`chat.lobby`), if any.
    public var topic: String?
    /// The user it was sent to directly, if any; it then belongs to the conversation of the
    /// author and the recipient (``MessageScope/conversation(_:_:)``).
    public var recipientId: String?
    public var content: String
    /// JSON text, stored and returned verbatim: the store never parses it, so clients may put
    /// anything there without a schema change.
    public var metadata: String?

    public init(
        id: String? = nil, authorId: String, topic: String? = nil, recipientId: String? = nil, content: String,
        metadata: String? = nil
    ) {
        self.id = id
        self.authorId = authorId
        self.topic = topic
        self.recipientId = recipientId
        self.content = content
        self.metadata = metadata
    }
}
