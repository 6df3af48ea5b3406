import Broker
import Store

/// The JSON forms of read receipts and conversations in the HTTP API.
extension ReadRecord {
    /// `{"messageId","userId","readAt","advanced","lastRead":{"messageId","readAt"}}`: the
    /// message marked read, when, whether the position moved, and where it is now.
    var json: JSONValue {
        .object([
            "messageId": .string(message.id), "userId": .string(position.userId),
            "readAt": .string(ISO8601.string(readAt)), "advanced": .bool(advanced),
            "lastRead": position.json,
        ])
    }
}

extension ReadPosition {
    /// `{"messageId","readAt"}`; with `userId` for another member's position.
    var json: JSONValue {
        .object(["messageId": .string(messageId), "readAt": .string(ISO8601.string(readAt))])
    }

    var memberJSON: JSONValue {
        .object(["userId": .string(userId), "messageId": .string(messageId), "readAt": .string(ISO8601.string(readAt))])
    }
}

extension ConversationSummary {
    /// A topic: `{"type":"topic","topic":...}`; a direct conversation: `{"type":"direct","with":<the
    /// other user>}`; then `lastMessage` (null when none is left), `unreadCount`, `lastRead`
    /// (the caller's, null before any read) and `readers` (the others').
    func json(for userId: String) -> RawJSON {
        var writer = JSONWriter()
        switch scope {
        case .topic(let topic):
            writer.raw("{\"type\":\"topic\",\"topic\":")
            writer.string(topic)
        case .conversation(let low, let high):
            writer.raw("{\"type\":\"direct\",\"with\":")
            writer.string(low == userId ? high : low)
        }
        writer.raw(",\"lastMessage\":")
        if let lastMessage { writer.raw(lastMessage.json) } else { writer.raw("null") }
        writer.raw(",\"unreadCount\":\(unreadCount),\"lastRead\":")
        if let lastRead { writer.value(lastRead.json) } else { writer.raw("null") }
        writer.raw(",\"readers\":")
        writer.value(.array(readers.map(\.memberJSON)))
        writer.raw("}")
        return (try? RawJSON(validating: writer.bytes)) ?? .emptyObject  // always valid: written above
    }
}
