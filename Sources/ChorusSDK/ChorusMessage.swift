import Foundation

/// A message delivered on a topic, or addressed to the user by the application.
public struct ChorusMessage: Sendable, Equatable {
    /// The concrete topic it was published to (also under a wildcard subscription); empty
    /// for a message addressed to the user (see ``ChorusClient/userMessages()``).
    public var topic: String
    /// `message.sent` unless the publisher chose another.
    public var eventType: String
    /// `data` as a ``JSONValue``: integers past `Int64` and decimals past `Double` lose
    /// digits here; ``decode(_:)`` and ``rawData`` keep them.
    public var data: JSONValue
    /// `data`'s JSON text exactly as published (the node passes it through unchanged).
    public var rawData: String
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

    /// `data` decoded as `type` from its text as published, so a `Decimal`, `UInt64` or
    /// `String` member gets every digit the publisher sent.
    public func decode<T: Decodable>(_ type: T.Type = T.self) throws -> T {
        try JSONDecoder().decode(T.self, from: Data(rawData.utf8))
    }

    /// `fields` of a `message` the node sent, and its `data` member's text.
    init(_ fields: [String: JSONValue], data: String) throws {
        guard let topic = fields["topic"]?.stringValue else {
            throw ChorusError.protocolViolation("a message without a topic")
        }
        self.init(topic: topic, fields, data: data)
    }

    /// A message the application addressed to a user (`POST /api/publish` with `userId`):
    /// it has no topic and no position.
    init(addressedToUser fields: [String: JSONValue], data: String) {
        self.init(topic: "", fields, data: data)
    }

    private init(topic: String, _ fields: [String: JSONValue], data: String) {
        self.topic = topic
        self.rawData = data
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
    /// True when only the node's own subscribers received it (`"scope":"node"`): its link to
    /// Redis was down. The other nodes' subscribers get a `gap` notice once it is back.
    public var nodeOnly = false
    /// With ``nodeOnly`` (`"uncertain":true`): the message was on its way to Redis when the link
    /// fell back, and Redis may have published it to the other nodes after all.
    public var uncertain = false
}
