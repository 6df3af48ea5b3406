import Broker
import Foundation

/// One message a client sends over the WebSocket, decoded once from its JSON text.
///
/// Every request may carry an `id` (any JSON string or number) that the node echoes on the reply,
/// exactly as written, so clients can match replies to requests.
///
/// The frame is read by ``JSONParser``'s rules (one JSON path for the WebSocket and HTTP): a
/// duplicate key at any depth, nesting past ``JSONParser/maxDepth``, invalid UTF-8 or anything
/// RFC 8259 does not allow is refused with a 400 naming the problem. A message's `data` and
/// `metadata` are kept as the bytes the client sent (``RawJSON``).
public struct ClientMessage: Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        case auth(token: String)
        case subscribe(TopicPattern)
        case unsubscribe(TopicPattern)
        case message(topic: Topic, data: RawJSON, metadata: RawJSON?, eventType: String?)
        case ping
        /// `presence.get`: a page of a topic's members, those after user id `after` (from the
        /// first when nil; see docs/presence.md).
        case presenceGet(Topic, after: String?)
        /// `typing`: `state` `start` (true) or `stop` (false).
        case typing(Topic, start: Bool)
        /// Marks a stored message read (see ``ReadRequests``).
        case read(messageId: String)
    }

    public var kind: Kind
    public var id: JSONValue?
    /// A `subscribe`'s `presence` and `presenceEvents` fields; nil when it has neither.
    public var presence: PresenceRequest?
    /// `subscribe`: `since` or `replay` (history; see ``HistoryRequest``).
    public var history: HistoryRequest?
    /// `message`: the publisher's idempotency key.
    public var messageId: String?

    public init(_ kind: Kind, id: JSONValue? = nil) {
        self.kind = kind
        self.id = id
    }
}

/// Why a client frame could not be understood: sent back as the seed's `error` (code 400).
public struct ClientMessageError: Error, Equatable, CustomStringConvertible {
    public var message: String
    /// The request id, when the frame got far enough to have one.
    public var id: JSONValue?
    public var details: JSONValue?

    public var description: String { message }
}

extension ClientMessage {
    /// The fields of a client message, read from its members (wrong types read as absent).
    private struct Wire {
        var type: String?
        var id: JSONValue?
        var token: String?
        var topic: String?
        var data: RawJSON?
        var metadata: RawJSON?
        var eventType: String?
        var presence: RawJSON?
        var presenceEvents: RawJSON?
        var state: String?
        var since: JSONValue?
        var replay: JSONValue?
        var messageId: JSONValue?
        var after: String?

        init(_ fields: RawJSONObject) {
            for member in fields.members {
                switch member.key {
                case "type": type = member.value.stringValue
                case "id": id = member.value.value
                case "token": token = member.value.stringValue
                case "topic": topic = member.value.stringValue
                case "data": data = member.value
                case "metadata": metadata = member.value.isNull ? nil : member.value
                case "eventType": eventType = member.value.stringValue
                case "presence": presence = member.value
                case "presenceEvents": presenceEvents = member.value
                case "state": state = member.value.stringValue
                case "since": since = member.value.isNull ? nil : member.value.value
                case "replay": replay = member.value.isNull ? nil : member.value.value
                case "messageId": messageId = member.value.isNull ? nil : member.value.value
                case "after": after = member.value.stringValue
                default: break
                }
            }
        }
    }

    /// The `id` of a request (a string or a number), read without checking the rest: for a
    /// request dropped unhandled. Nil when the frame is no JSON object or has no usable id.
    public static func requestId(in bytes: some Collection<UInt8>) -> JSONValue? {
        guard let fields = try? RawJSONObject(parsing: bytes) else { return RequestIdScanner.id(in: bytes) }
        guard let id = Wire(fields).id else { return nil }
        switch id {
        case .string, .number: return id
        default: return nil
        }
    }

    /// Decodes one text frame.
    public static func decode(_ bytes: some Collection<UInt8>) throws(ClientMessageError) -> ClientMessage {
        let fields: RawJSONObject
        do {
            fields = try RawJSONObject(parsing: bytes)
        } catch {
            if error.problem == .notAnObject {
                throw ClientMessageError(message: "malformed JSON: expected an object with a 'type' field")
            }
            throw ClientMessageError(message: "malformed JSON: \(error)", id: RequestIdScanner.id(in: bytes))
        }
        let wire = Wire(fields)
        let id = wire.id
        func fail(_ message: String, _ details: JSONValue? = nil) -> ClientMessageError {
            ClientMessageError(message: message, id: id, details: details)
        }
        if let id, !(id.stringValue != nil || { if case .number = id { true } else { false } }()) {
            throw fail("'id' must be a string or a number")
        }
        func topicField() throws(ClientMessageError) -> String {
            guard let topic = wire.topic else { throw fail("'\(wire.type ?? "")' needs a 'topic'") }
            return topic
        }
        func pattern() throws(ClientMessageError) -> TopicPattern {
            let text = try topicField()
            do {
                return try TopicPattern(text)
            } catch {
                throw fail("illegal topic: \(error)", .object(["topic": .string(EchoedText.cut(text))]))
            }
        }
        switch wire.type {
        case "auth":
            guard let token = wire.token, !token.isEmpty else { throw fail("'auth' needs a 'token'") }
            return ClientMessage(.auth(token: token), id: id)
        case "subscribe":
            let subscribed = try pattern()
            var message = ClientMessage(.subscribe(subscribed), id: id)
            message.presence = try PresenceRequest.decode(presence: wire.presence, events: wire.presenceEvents, id: id)
            message.history = try HistoryRequest.decode(since: wire.since, replay: wire.replay, pattern: subscribed, fail: fail)
            return message
        case "presence.get", "typing":
            let text = try topicField()
            let topic: Topic
            do {
                topic = try Topic(text)
            } catch {
                throw fail("illegal topic: \(error) (presence and typing need a concrete topic)", .object(["topic": .string(EchoedText.cut(text))]))
            }
            guard wire.type == "typing" else { return ClientMessage(.presenceGet(topic, after: wire.after), id: id) }
            guard let state = wire.state, state == "start" || state == "stop" else {
                throw fail("'typing' needs 'state': \"start\" or \"stop\"", .object(["field": .string("state")]))
            }
            return ClientMessage(.typing(topic, start: state == "start"), id: id)
        case "unsubscribe":
            return ClientMessage(.unsubscribe(try pattern()), id: id)
        case "message":
            let text = try topicField()
            let topic: Topic
            do {
                topic = try Topic(text)
            } catch {
                throw fail("illegal topic: \(error)", .object(["topic": .string(EchoedText.cut(text))]))
            }
            guard let data = wire.data else { throw fail("'message' needs 'data'") }
            if let metadata = wire.metadata, !metadata.isObject { throw fail("'metadata' must be an object") }
            var message = ClientMessage(
                .message(topic: topic, data: data, metadata: wire.metadata, eventType: wire.eventType), id: id)
            message.messageId = try HistoryRequest.decodeMessageId(wire.messageId, fail: fail)
            return message
        case "ping":
            return ClientMessage(.ping, id: id)
        case "read":
            guard let messageId = fields["messageId"]?.stringValue, !messageId.isEmpty else {
                throw fail("'read' needs a 'messageId' (a string)")
            }
            return ClientMessage(.read(messageId: messageId), id: id)
        case nil:
            throw fail("missing 'type': expected auth, subscribe, unsubscribe, message, ping, read, presence.get or typing")
        case let other?:
            let shown = EchoedText.cut(other)
            throw fail(
                "unknown message type '\(shown)': expected auth, subscribe, unsubscribe, message, ping, read, presence.get or typing",
                .object(["type": .string(shown)]))
        }
    }
}
