import Foundation

/// How far one user has read in one conversation: the last message they marked read, and when.
public struct ReadPosition: Sendable, Equatable {
    public var userId: String
    /// The id of the last message read (it may have been deleted since).
    public var messageId: String
    /// When that read was recorded, to the millisecond.
    public var readAt: Date

    public init(userId: String, messageId: String, readAt: Date) {
        self.userId = userId
        self.messageId = messageId
        self.readAt = readAt
    }
}
