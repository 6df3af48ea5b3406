import Foundation

/// A member of a topic's presence: one user, however many connections.
public struct PresenceMember: Sendable, Equatable {
    public var userId: String
    /// What the member joined with (``ChorusClient/join(_:data:)``).
    public var data: JSONValue?
    /// The user's connections present on the topic, when the node counts them.
    public var connections: Int?

    init?(_ value: JSONValue?) {
        guard let fields = value?.objectValue, let userId = fields["userId"]?.stringValue else { return nil }
        self.userId = userId
        self.data = fields["data"]
        self.connections = fields["connections"]?.intValue
    }
}

/// A topic's presence as the node's `presence.state` reply gives it.
public struct PresenceState: Sendable, Equatable {
    public var topic: String
    public var members: [PresenceMember]
    public var count: Int
    /// `"node"` when the node could not reach the cluster's presence (Redis) and answered with
    /// its own members only; `nil` for the whole cluster's.
    public var scope: String? = nil
    /// True when more members follow this page (a page holds at most 1,000, and no more than
    /// a quarter of the node's `WEBSOCKET_MAX_PENDING_BYTES`): ``members`` holds the first of
    /// them by user id, ``count`` all of them; `members(_:after:)` with the last listed user id
    /// gives the next page.
    public var truncated = false
}

/// Someone joined, left or changed their presence data on a topic; or (``Kind/resync``) events
/// of the topic may have been lost.
public struct PresenceEvent: Sendable, Equatable {
    public enum Kind: String, Sendable, Equatable {
        case join, leave, update
        /// Events may have been lost (the node's link to Redis was down, or this client's
        /// connection): read the list again with ``ChorusClient/members(_:after:)``.
        case resync
    }

    public var topic: String
    public var kind: Kind
    /// Who joined, left or changed; nil for ``Kind/resync``.
    public var member: PresenceMember?
    public var timestamp: String

    /// Now, as the node writes timestamps (ISO 8601, milliseconds, UTC).
    static func now() -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter.string(from: Date())
    }

    /// The events of one `presence` message: one, or several in the node's batched form
    /// (`members` or `events` arrays).
    static func events(in fields: [String: JSONValue]) -> [PresenceEvent] {
        guard let topic = fields["topic"]?.stringValue else { return [] }
        let timestamp = fields["timestamp"]?.stringValue ?? ""
        func event(_ fields: [String: JSONValue], defaultKind: String?) -> PresenceEvent? {
            guard let kind = Kind(rawValue: fields["event"]?.stringValue ?? defaultKind ?? "") else { return nil }
            let member = PresenceMember(fields["member"] ?? .object(fields))
            guard member != nil || kind == .resync else { return nil }
            return PresenceEvent(topic: topic, kind: kind, member: member, timestamp: fields["timestamp"]?.stringValue ?? timestamp)
        }
        if let batch = fields["events"]?.arrayValue {
            return batch.compactMap { $0.objectValue.flatMap { event($0, defaultKind: nil) } }
        }
        if let members = fields["members"]?.arrayValue, fields["member"] == nil {
            return members.compactMap { $0.objectValue.flatMap { event($0, defaultKind: fields["event"]?.stringValue) } }
        }
        return event(fields, defaultKind: nil).map { [$0] } ?? []
    }
}

/// Another user started or stopped typing on a topic.
public struct TypingEvent: Sendable, Equatable {
    public var topic: String
    public var userId: String
    /// True for `start`, false for `stop`.
    public var isTyping: Bool
    public var timestamp: String

    init?(_ fields: [String: JSONValue]) {
        guard let topic = fields["topic"]?.stringValue, let userId = fields["userId"]?.stringValue,
            let state = fields["state"]?.stringValue
        else { return nil }
        self.topic = topic
        self.userId = userId
        self.isTyping = state == "start"
        self.timestamp = fields["timestamp"]?.stringValue ?? ""
    }
}
