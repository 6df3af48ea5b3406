import Foundation

/// A chat message as the store holds it.
public struct StoredMessage: Sendable, Equatable {
    /// A lowercase UUID string, made by the store.
    public var id: String
    public var authorId: String
    public var topic: String?
    public var recipientId: String?
    public var content: String
    /// JSON text, exactly as it was given.
    public var metadata: String?
    /// When it was stored, to the millisecond.
    public var createdAt: Date
    /// When it was last edited, to the millisecond; nil if it never was.
    public var updatedAt: Date?

    public init(
        id: String, authorId: String, topic: String?, recipientId: String?, content: String, metadata: String?,
        createdAt: Date, updatedAt: Date?
    ) {
        self.id = id
        self.authorId = authorId
        self.topic = topic
        self.recipientId = recipientId
        self.content = content
        self.metadata = metadata
        self.createdAt = createdAt
        self.updatedAt = updatedAt
    }
}
