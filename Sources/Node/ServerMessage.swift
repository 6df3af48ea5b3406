import Broker
import Foundation

/// Every message the node sends to a client, in the seed's shapes. Timestamps are ISO 8601 with
/// milliseconds. Replies echo the request's `id` when it had one.
public enum ServerMessage: Sendable, Equatable {
    case authSuccess(userId: String, id: JSONValue?)
    case authError(message: String, code: Int, id: JSONValue?)
    /// The connection's token expired: delivery stops until a new `auth` succeeds.
    case authExpired
    case subscribed(topic: String, id: JSONValue?)
    case unsubscribed(topic: String, id: JSONValue?)
    case message(Envelope)
    case error(code: Int, message: String, details: JSONValue?, id: JSONValue?)
    case pong(id: JSONValue?)
}

extension ServerMessage {
    private struct Wire: Encodable {
        var type: String
        var id: JSONValue?
        var userId: String?
        var topic: String?
        var eventType: String?
        var data: JSONValue?
        var metadata: JSONValue?
        var code: Int?
        var message: String?
        var details: JSONValue?
        var timestamp: String
    }

    /// The JSON text of this message.
    public func encoded(now: Date = Date()) -> [UInt8] {
        let stamp = ISO8601.string(now)
        let wire: Wire =
            switch self {
            case .authSuccess(let userId, let id):
                Wire(type: "auth_success", id: id, userId: userId, timestamp: stamp)
            case .authError(let message, let code, let id):
                Wire(type: "auth_error", id: id, code: code, message: message, timestamp: stamp)
            case .authExpired:
                Wire(
                    type: "auth_expired", code: 401,
                    message: "token expired: send 'auth' with a fresh token to receive messages again",
                    timestamp: stamp)
            case .subscribed(let topic, let id):
                Wire(type: "subscribed", id: id, topic: topic, timestamp: stamp)
            case .unsubscribed(let topic, let id):
                Wire(type: "unsubscribed", id: id, topic: topic, timestamp: stamp)
            case .message(let envelope):
                Wire(
                    type: "message", topic: envelope.topic?.name, eventType: envelope.eventType ?? "message.sent",
                    data: envelope.data, metadata: Self.metadata(of: envelope),
                    timestamp: ISO8601.string(envelope.timestamp))
            case .error(let code, let message, let details, let id):
                Wire(type: "error", id: id, code: code, message: message, details: details ?? .object([:]), timestamp: stamp)
            case .pong(let id):
                Wire(type: "pong", id: id, timestamp: stamp)
            }
        // Encoding plain values cannot fail.
        return Array(try! Self.encoder.encode(wire))
    }

    /// The publisher's metadata with `senderId` set by the node (never trusted from the client).
    private static func metadata(of envelope: Envelope) -> JSONValue {
        guard case .object(let members) = envelope.metadata ?? .object([:]) else { return .object([:]) }
        return .object(members)
    }

    private static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes]
        return encoder
    }()
}

/// ISO 8601 timestamps with milliseconds, UTC.
enum ISO8601 {
    private static let style = Date.ISO8601FormatStyle(includingFractionalSeconds: true, timeZone: .gmt)

    static func string(_ date: Date) -> String {
        date.formatted(style)
    }

    static func date(_ text: String) -> Date? {
        try? style.parse(text)
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
