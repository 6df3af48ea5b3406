import Broker
import Foundation

/// Every message the node sends to a client, in the seed's shapes. Timestamps are ISO 8601 with
/// milliseconds. Replies echo the request's `id` when it had one.
public enum ServerMessage: Sendable, Equatable {
    /// `expiresAt`: the token's `exp`, sent as `expiresIn` (milliseconds from the reply, by the
    /// node's clock, so a client's clock does not matter) for clients that renew ahead of it.
    /// `maxMessageSize`: the largest frame the node reads (`WEBSOCKET_MAX_MESSAGE_SIZE`), so that
    /// a client refuses a larger one itself instead of having its connection closed (1009).
    case authSuccess(userId: String, expiresAt: Date?, maxMessageSize: Int? = nil, id: JSONValue?)
    case authError(message: String, code: Int, id: JSONValue?)
    /// The connection's token expired: delivery stops until a new `auth` succeeds.
    case authExpired
    case subscribed(topic: String, id: JSONValue?)
    case unsubscribed(topic: String, id: JSONValue?)
    case message(Envelope)
    case error(code: Int, message: String, details: JSONValue?, id: JSONValue?)
    case pong(id: JSONValue?)
    /// The reply to `read`: the message marked read, when, and whether the reader's position
    /// moved (false: a later message was read already).
    case readRecorded(messageId: String, readAt: Date, advanced: Bool, id: JSONValue?)
    /// `subscribed` to a topic with history: its current position, and for a `since`, whether
    /// every message after it follows (`recovered`). See ``HistoryRecovery``.
    case subscribedWithHistory(topic: String, id: JSONValue?, recovered: Bool?, position: HistoryPosition?, nodeOnly: Bool = false)
    /// A publish with an `id` was accepted (for a topic with history: stored at `position`).
    case published(topic: String, id: JSONValue?, messageId: String?, outcome: PublishOutcome)
}

extension ServerMessage {
    /// The JSON text of this message, `type` first. Written by hand (``JSONWriter``): this runs
    /// once per delivered message per node and once per reply.
    ///
    /// A delivered message's `data` and `metadata` are copied in as the publisher's bytes.
    public func encoded(now: Date = Date()) -> [UInt8] {
        var json: JSONWriter
        if case .message(let envelope) = self {
            json = JSONWriter(capacity: 192 + envelope.data.bytes.count + (envelope.metadata?.bytes.count ?? 2))
        } else {
            json = JSONWriter()
        }
        func field(_ name: String, _ text: String) {
            json.raw(",\"\(name)\":")
            json.string(text)
        }
        func field(_ name: String, _ value: JSONValue) {
            json.raw(",\"\(name)\":")
            json.value(value)
        }
        func id(_ value: JSONValue?) {
            if let value { field("id", value) }
        }
        func type(_ name: String) {
            json.raw("{\"type\":\"\(name)\"")
        }
        var stamp = now
        switch self {
        case .authSuccess(let userId, let expiresAt, let maxMessageSize, let requestId):
            type("auth_success")
            id(requestId)
            field("userId", userId)
            if let expiresIn = AuthenticatedUser.expiresIn(expiresAt, now: now) {
                json.raw(",\"expiresIn\":\(expiresIn)")
            }
            if let maxMessageSize { json.raw(",\"maxMessageSize\":\(maxMessageSize)") }
            // This node ends a membership on `subscribe` with `presence: false`, keeping the
            // subscription (``PresenceRequest/leaves``): clients need not unsubscribe to leave.
            json.raw(",\"presenceLeave\":true")
        case .authError(let message, let code, let requestId):
            type("auth_error")
            id(requestId)
            field("code", .number(JSONNumber(code)))
            field("message", message)
        case .authExpired:
            type("auth_expired")
            field("code", .number(401))
            field("message", "token expired: send 'auth' with a fresh token to receive messages again")
        case .subscribed(let topic, let requestId):
            type("subscribed")
            id(requestId)
            field("topic", topic)
        case .unsubscribed(let topic, let requestId):
            type("unsubscribed")
            id(requestId)
            field("topic", topic)
        case .message(let envelope):
            type("message")
            if let topic = envelope.topic { field("topic", topic.name) }
            if let offset = envelope.offset, let epoch = envelope.epoch {
                json.raw(",\"offset\":\(offset)")
                field("epoch", epoch)
            }
            if let messageId = envelope.messageId { field("messageId", messageId) }
            field("eventType", envelope.eventType ?? "message.sent")
            json.raw(",\"data\":")
            json.raw(envelope.data)
            json.raw(",\"metadata\":")
            json.raw(envelope.metadata ?? .emptyObject)
            stamp = envelope.timestamp
        case .error(let code, let message, let details, let requestId):
            type("error")
            id(requestId)
            field("code", .number(JSONNumber(code)))
            field("message", message)
            field("details", details ?? .object([:]))
        case .pong(let requestId):
            type("pong")
            id(requestId)
        case .readRecorded(let messageId, let readAt, let advanced, let requestId):
            type("read_recorded")
            id(requestId)
            field("messageId", messageId)
            field("readAt", ISO8601.string(readAt))
            field("advanced", .bool(advanced))
        case .subscribedWithHistory(let topic, let requestId, let recovered, let position, let nodeOnly):
            type("subscribed")
            id(requestId)
            field("topic", topic)
            if let recovered { json.raw(recovered ? ",\"recovered\":true" : ",\"recovered\":false") }
            if let position {
                json.raw(",\"offset\":\(position.offset)")
                field("epoch", position.epoch)
            }
            if nodeOnly { json.raw(",\"scope\":\"node\"") }
        case .published(let topic, let requestId, let messageId, let outcome):
            type("published")
            id(requestId)
            field("topic", topic)
            if let messageId { field("messageId", messageId) }
            if let position = outcome.position {
                json.raw(",\"offset\":\(position.offset)")
                field("epoch", position.epoch)
            }
            json.raw(outcome.duplicate ? ",\"duplicate\":true" : ",\"duplicate\":false")
            if outcome.nodeOnly { json.raw(",\"scope\":\"node\"") }
            if outcome.uncertain { json.raw(",\"uncertain\":true") }
        }
        field("timestamp", ISO8601.string(stamp))
        json.raw("}")
        return json.bytes
    }
}

/// ISO 8601 timestamps with milliseconds, UTC.
enum ISO8601 {
    static func string(_ date: Date) -> String {
        Timestamp.string(date)
    }

    static func date(_ text: String) -> Date? {
        Timestamp.date(text)
    }

    /// JSON coders that write and read dates as these timestamps (stats documents).
    static func encoder() -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .custom { date, encoder in
            var container = encoder.singleValueContainer()
            try container.encode(string(date))
        }
        return encoder
    }

    static func decoder() -> JSONDecoder {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .custom { decoder in
            let container = try decoder.singleValueContainer()
            let text = try container.decode(String.self)
            guard let date = date(text) else {
                throw DecodingError.dataCorruptedError(in: container, debugDescription: "not an ISO 8601 timestamp: \(text)")
            }
            return date
        }
        return decoder
    }
}
