import Broker

/// What a `subscribe` asks of a topic's history: recover from a position (`since`) or replay
/// the last messages (`replay`). Only for a concrete topic with history.
public enum HistoryRequest: Sendable, Equatable {
    /// `"since": {"offset": 41, "epoch": "e"}`: every message after offset 41 of stream `e`.
    case since(offset: Int, epoch: String)
    /// `"replay": 20`: the last 20 messages (at most `HISTORY_SIZE`).
    case replay(Int)
}

extension HistoryRequest {
    /// The request's field name, for errors.
    var field: String {
        if case .since = self { return "since" }
        return "replay"
    }

    /// The position a `since` names; nil for a `replay`.
    var since: HistoryPosition? {
        guard case .since(let offset, let epoch) = self else { return nil }
        return HistoryPosition(offset: offset, epoch: epoch)
    }

    /// Longest `messageId` a publish may carry (it becomes part of a Redis key).
    static let maxMessageIdLength = 256

    /// Reads `since` and `replay` of a `subscribe` to `pattern`; nil when neither is present.
    /// A wrong shape, both at once, or either on a wildcard pattern is a 400 naming the field.
    static func decode(
        since: JSONValue?, replay: JSONValue?, pattern: TopicPattern, fail: (String, JSONValue?) -> ClientMessageError
    ) throws(ClientMessageError) -> HistoryRequest? {
        guard since != nil || replay != nil else { return nil }
        let field = since != nil ? "since" : "replay"
        let details: JSONValue = .object(["topic": .string(pattern.text), "field": .string(field)])
        if since != nil, replay != nil {
            throw fail("'since' and 'replay' exclude each other: send one", details)
        }
        if pattern.isWildcard {
            throw fail("'\(field)' needs a concrete topic: history is per topic, and '\(pattern.text)' is a pattern", details)
        }
        if let since {
            guard case .number(let number)? = since["offset"], let offset = number.intValue,
                (0...HistoryPosition.maxOffset).contains(offset), let epoch = since["epoch"]?.stringValue
            else {
                throw fail("'since' must be {\"offset\": <integer 0...\(HistoryPosition.maxOffset)>, \"epoch\": \"<string>\"}", details)
            }
            return .since(offset: offset, epoch: epoch)
        }
        guard case .number(let number)? = replay, let count = number.intValue, count >= 0 else {
            throw fail("'replay' must be an integer >= 0", details)
        }
        return .replay(count)
    }

    /// Reads a publish's `messageId`: a non-empty string of at most ``maxMessageIdLength`` bytes.
    static func decodeMessageId(_ value: JSONValue?, fail: (String, JSONValue?) -> ClientMessageError) throws(ClientMessageError)
        -> String?
    {
        guard let value else { return nil }
        guard let text = value.stringValue, !text.isEmpty, text.utf8.count <= maxMessageIdLength else {
            throw fail("'messageId' must be a non-empty string of at most \(maxMessageIdLength) bytes", .object(["field": .string("messageId")]))
        }
        return text
    }
}
