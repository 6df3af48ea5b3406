/// The node's `read_recorded` answer to ``ChorusClient/markRead(_:)``.
public struct ReadReceipt: Sendable, Equatable {
    /// The message marked read.
    public var messageId: String
    /// When the node recorded the read (ISO 8601, by the node's clock).
    public var readAt: String
    /// False when the user's read position was at this message or past it already (read on
    /// another device, or a later message read first): nothing changed, and no `message.read`
    /// event went out.
    public var advanced: Bool

    public init(messageId: String, readAt: String, advanced: Bool) {
        self.messageId = messageId
        self.readAt = readAt
        self.advanced = advanced
    }
}
