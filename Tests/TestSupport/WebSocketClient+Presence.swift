import ChorusClient
import Foundation

extension WebSocketClient {
    /// Subscribes to `topic` with presence fields and waits for `subscribed`: with `member`, the
    /// connection's user becomes a member (with `data`, if given); with `events`, it receives
    /// the topic's `presence` events.
    public func subscribe(_ topic: String, member: Bool, data: [String: Any]? = nil, events: Bool) async throws {
        var message: [String: Any] = ["type": "subscribe", "topic": topic, "id": "subscribe \(topic)"]
        if member { message["presence"] = data.map { ["data": $0] } ?? [:] }
        if events { message["presenceEvents"] = true }
        try await send(json: message)
        let reply = try await next(type: "subscribed", timeout: .seconds(20))
        guard reply["topic"] as? String == topic else { throw TestFailure("subscribe \(topic): got \(reply)") }
    }

    /// The next `presence` event as (event, userId, data), skipping other messages.
    public func nextPresence(timeout: Duration = .seconds(30)) async throws -> PresenceEvent {
        let message = try await next(type: "presence", timeout: timeout)
        return PresenceEvent(json: message)
    }

    /// `presence.get` for `topic`: the `presence.state` reply.
    public func presenceState(_ topic: String) async throws -> PresenceState {
        let id = "get-\(UUID().uuidString)"
        try await send(json: ["type": "presence.get", "topic": topic, "id": id])
        while true {
            let message = try await nextJSON(timeout: .seconds(20))
            if message["type"] as? String == "error" { throw TestFailure("presence.get \(topic): \(message)") }
            if message["type"] as? String == "presence.state", message["id"] as? String == id {
                return PresenceState(json: message)
            }
        }
    }

    /// Sends `typing` with `state` (`start` or `stop`).
    public func typing(_ topic: String, _ state: String) async throws {
        try await send(json: ["type": "typing", "topic": topic, "state": state])
    }
}

/// One `presence` message, as received.
public struct PresenceEvent: CustomStringConvertible, Sendable {
    public let event: String
    public let topic: String
    public let userId: String
    public let status: String?

    init(json: [String: Any]) {
        event = json["event"] as? String ?? "?"
        topic = json["topic"] as? String ?? "?"
        let member = json["member"] as? [String: Any] ?? [:]
        userId = member["userId"] as? String ?? "?"
        status = (member["data"] as? [String: Any])?["status"] as? String
    }

    public var description: String { "\(event) \(userId)\(status.map { " (\($0))" } ?? "") on \(topic)" }
}

/// A `presence.state` reply: members by user id, with their connection counts.
public struct PresenceState: Sendable {
    public let count: Int
    public let connections: [String: Int]
    /// Each member's `data` as JSON text (keys sorted); absent without data.
    public let data: [String: String]
    public let scope: String?

    init(json: [String: Any]) {
        count = json["count"] as? Int ?? -1
        var connections: [String: Int] = [:]
        var data: [String: String] = [:]
        for member in json["members"] as? [[String: Any]] ?? [] {
            guard let user = member["userId"] as? String else { continue }
            connections[user] = member["connections"] as? Int ?? -1
            if let value = member["data"], let text = try? JSONSerialization.data(withJSONObject: value, options: [.sortedKeys, .fragmentsAllowed]) {
                data[user] = String(decoding: text, as: UTF8.self)
            }
        }
        self.connections = connections
        self.data = data
        scope = json["scope"] as? String
    }
}
