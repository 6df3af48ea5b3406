import ChorusClient
import Foundation

/// A topic's position as a `subscribed` or `published` reply states it.
public struct HistoryMark: Sendable, Equatable, CustomStringConvertible {
    public var offset: Int
    public var epoch: String

    public init(offset: Int, epoch: String) {
        self.offset = offset
        self.epoch = epoch
    }

    public init?(_ json: [String: Any]) {
        guard let offset = json["offset"] as? Int, let epoch = json["epoch"] as? String else { return nil }
        self.init(offset: offset, epoch: epoch)
    }

    public var description: String { "\(offset)@\(epoch)" }
}

extension WebSocketClient {
    /// Subscribes to a topic with history and returns the `subscribed` reply, skipping
    /// deliveries of other subscriptions that arrive first. `since` or `replay` as asked.
    public func subscribeWithHistory(
        _ topic: String, since: HistoryMark? = nil, replay: Int? = nil, timeout: Duration = .seconds(20)
    ) async throws -> [String: Any] {
        var request: [String: Any] = ["type": "subscribe", "topic": topic, "id": "subscribe \(topic)"]
        if let since { request["since"] = ["offset": since.offset, "epoch": since.epoch] }
        if let replay { request["replay"] = replay }
        try await send(json: request)
        while true {
            let reply = try await nextJSON(timeout: timeout)
            if reply["type"] as? String == "message", reply["topic"] as? String != topic { continue }
            guard reply["type"] as? String == "subscribed", reply["topic"] as? String == topic else {
                throw TestFailure("subscribe \(topic): expected 'subscribed', got \(reply)")
            }
            return reply
        }
    }

    /// Publishes with a request id (and `messageId` when given) and returns the `published`
    /// reply, skipping deliveries that arrive first.
    public func publishAcknowledged(
        topic: String, data: [String: Any], messageId: String? = nil, timeout: Duration = .seconds(20)
    ) async throws -> [String: Any] {
        let requestId = UUID().uuidString
        var message: [String: Any] = ["type": "message", "topic": topic, "data": data, "id": requestId]
        if let messageId { message["messageId"] = messageId }
        try await send(json: message)
        while true {
            let reply = try await nextJSON(timeout: timeout)
            if reply["type"] as? String == "message" { continue }
            guard reply["type"] as? String == "published", reply["id"] as? String == requestId else {
                throw TestFailure("publish to \(topic): expected 'published', got \(reply)")
            }
            return reply
        }
    }

    /// Delivered messages of `topic` (others skipped) until one at offset `last` arrived; throws
    /// with what did arrive when it does not come within `timeout` of the previous one.
    public func messages(of topic: String, through last: Int, timeout: Duration = .seconds(20)) async throws -> [[String: Any]] {
        var received: [[String: Any]] = []
        while true {
            let message: [String: Any]
            do {
                message = try await nextJSON(timeout: timeout)
            } catch {
                let offsets = received.compactMap { $0["offset"] as? Int }
                throw TestFailure("waiting for offset \(last) on \(topic): \(error); got offsets \(offsets)")
            }
            guard message["type"] as? String == "message", message["topic"] as? String == topic else { continue }
            received.append(message)
            if let offset = message["offset"] as? Int, offset >= last { return received }
        }
    }
}
