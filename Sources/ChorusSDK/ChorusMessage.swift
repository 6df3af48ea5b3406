import Foundation

/// A message delivered on a topic.
public struct ChorusMessage: Sendable, Equatable {
    /// The concrete topic it was published to (also under a wildcard subscription).
    public var topic: String
    /// `message.sent` unless the publisher chose another.
    public var eventType: String
    public var data: JSONValue
    /// The publisher's metadata; `senderId` is always set by the node.
    public var metadata: [String: JSONValue]
    /// ISO 8601 timestamp, as the node wrote it.
    public var timestamp: String
    /// The message's position in the topic's history (topics with history only).
    public var position: StreamPosition?
    /// The publisher's idempotency key, when the node passes it on.
    public var messageId: String?

    /// The publisher's user id (`server` for the node's API key).
    public var senderId: String? { metadata["senderId"]?.stringValue }

    /// `data` decoded as `type`.
    public func decode<T: Decodable>(_ type: T.Type = T.self) throws -> T {
        try data.decode(type)
    }

    init(_ fields: [String: JSONValue]) throws {
        guard let topic = fields["topic"]?.stringValue else {
            throw ChorusError.protocolViolation("a message without a topic")
        }
        self.topic = topic
        self.eventType = fields["eventType"]?.stringValue ?? "message.sent"
        self.data = fields["data"] ?? .null
        self.metadata = fields["metadata"]?.objectValue ?? [:]
        self.timestamp = fields["timestamp"]?.stringValue ?? ""
        self.position = StreamPosition(fields)
        self.messageId = fields["messageId"]?.stringValue
    }
}

extension StreamPosition {
    /// The `offset` and `epoch` members of a message or reply, when it has both.
    init?(_ fields: [String: JSONValue]) {
        guard let offset = fields["offset"]?.intValue, let epoch = fields["epoch"]?.stringValue else { return nil }
        self.init(offset: offset, epoch: epoch)
    }
}

/// The node's answer to a publish: its `published` reply.
public struct PublishReceipt: Sendable, Equatable {
    public var topic: String
    /// The idempotency key the client sent (generated unless the app gave one).
    public var messageId: String
    /// Where the message landed in the topic's history (topics with history only).
    public var position: StreamPosition?
    /// True when the node had this `messageId` already: it was not delivered again.
    public var duplicate: Bool
    /// False when ``ChorusClient/Configuration/publishAcknowledgements`` is off: the node
    /// took the publish without refusing it (its `pong` to the `ping` behind it came), and
    /// did not confirm it otherwise.
    public var acknowledged: Bool
}
