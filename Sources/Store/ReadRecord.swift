import Foundation

/// What ``ReadReceiptRepository/markRead(messageId:by:)`` did.
public struct ReadRecord: Sendable, Equatable {
    /// The message marked read.
    public var message: StoredMessage
    /// When this read was acknowledged, to the millisecond: the new position's `readAt` when it
    /// advanced.
    public var readAt: Date
    /// True when the reader's position moved forward to ``message``; false when they had already
    /// read it or a later message of the conversation (a position never moves back).
    public var advanced: Bool
    /// The reader's position in the conversation after this read.
    public var position: ReadPosition

    public init(message: StoredMessage, readAt: Date, advanced: Bool, position: ReadPosition) {
        self.message = message
        self.readAt = readAt
        self.advanced = advanced
        self.position = position
    }
}
