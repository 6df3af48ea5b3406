import Broker
import Foundation

/// One message a client sends over the WebSocket, decoded once from its JSON text.
///
/// Every request may carry an `id` (any JSON string or number) that the node echoes on the reply,
/// so clients can match replies to requests.
public struct ClientMessage: Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        case auth(token: String)
        case subscribe(TopicPattern)
        case unsubscribe(TopicPattern)
        case message(topic: Topic, data: JSONValue, metadata: JSONValue?, eventType: String?)
        case ping
    }

    public var kind: Kind
    public var id: JSONValue?

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
    /// The fields of a client message, read from the parsed object (wrong types read as absent).
    private struct Wire {
        var type: String?
        var id: JSONValue?
        var token: String?
        var topic: String?
        var data: JSONValue?
        var metadata: JSONValue?
        var eventType: String?

        init(_ fields: [String: JSONValue]) {
            type = fields["type"]?.stringValue
            id = fields["id"]
            token = fields["token"]?.stringValue
            topic = fields["topic"]?.stringValue
            data = fields["data"]
            metadata = fields["metadata"]
            eventType = fields["eventType"]?.stringValue
        }
    }

    /// Decodes one text frame.
    public static func decode(_ bytes: some Collection<UInt8>) throws(ClientMessageError) -> ClientMessage {
        guard case .object(let fields)? = try? JSONValue(parsing: bytes) else {
            throw ClientMessageError(message: "malformed JSON: expected an object with a 'type' field")
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
                throw fail("illegal topic: \(error)", .object(["topic": .string(text)]))
            }
        }
        switch wire.type {
        case "auth":
            guard let token = wire.token, !token.isEmpty else { throw fail("'auth' needs a 'token'") }
            return ClientMessage(.auth(token: token), id: id)
        case "subscribe":
            return ClientMessage(.subscribe(try pattern()), id: id)
        case "unsubscribe":
            return ClientMessage(.unsubscribe(try pattern()), id: id)
        case "message":
            let text = try topicField()
            let topic: Topic
            do {
                topic = try Topic(text)
            } catch {
                throw fail("illegal topic: \(error)", .object(["topic": .string(text)]))
            }
            guard let data = wire.data else { throw fail("'message' needs 'data'") }
            if let metadata = wire.metadata, case .object = metadata {} else if wire.metadata != nil {
                throw fail("'metadata' must be an object")
            }
            return ClientMessage(
                .message(topic: topic, data: data, metadata: wire.metadata, eventType: wire.eventType), id: id)
        case "ping":
            return ClientMessage(.ping, id: id)
        case nil:
            throw fail("missing 'type': expected auth, subscribe, unsubscribe, message or ping")
        case let other?:
            throw fail(
                "unknown message type '\(other)': expected auth, subscribe, unsubscribe, message or ping",
                .object(["type": .string(other)]))
        }
    }
}
