import ChorusClient
import Foundation

/// One message delivered to a subscriber (`{"type":"message",...}`).
public struct Delivery: @unchecked Sendable, CustomStringConvertible {
    /// The whole JSON object as received.
    public let json: [String: Any]

    public var topic: String? { json["topic"] as? String }
    public var eventType: String? { json["eventType"] as? String }
    public var data: [String: Any] { json["data"] as? [String: Any] ?? [:] }
    public var senderId: String? { (json["metadata"] as? [String: Any])?["senderId"] as? String }

    /// `data[key]` as a string (tests put `"via"` and `"seq"` keys in their messages).
    public func string(_ key: String) -> String? {
        switch data[key] {
        case let text as String: text
        case let number as NSNumber: number.stringValue
        default: nil
        }
    }

    /// `data.seq` as a whole number.
    public var seq: Int? { string("seq").flatMap { Int($0) } }

    public var description: String {
        "\(topic ?? "-") \(eventType ?? "-") \(String(decoding: (try? JSONSerialization.data(withJSONObject: data, options: [.sortedKeys])) ?? Data(), as: UTF8.self))"
    }
}

/// Probes: messages a test publishes only to learn that a route through Redis is open
/// (``WebSocketClient/awaitRoute(to:topic:within:)``). Receiving helpers skip them.
public enum Probe {
    public static let eventType = "test.probe"
}

/// Markers: messages a test publishes after the ones it checks, so that "nothing more arrives"
/// (no duplicate, nothing after an unsubscribe) is judged by the next delivery, not by a
/// moment of silence that a loaded machine can outlast (``WebSocketClient/messages(before:timeout:)-(String,_)``).
public enum Marker {
    public static let eventType = "test.marker"
}

extension WebSocketClient {
    /// Subscribes to `topic` (a topic or pattern) and waits for `subscribed`.
    ///
    /// `subscribed` comes once Redis has confirmed the subscription (or at once in fallback): a
    /// message published after it, on any node, arrives. Throws if a message precedes the reply.
    public func subscribe(_ topic: String) async throws {
        try await send(json: ["type": "subscribe", "topic": topic, "id": "subscribe \(topic)"])
        let reply = try await nextJSON(timeout: .seconds(20))
        guard reply["type"] as? String == "subscribed", reply["topic"] as? String == topic else {
            throw TestFailure("subscribe \(topic): expected 'subscribed', got \(reply)")
        }
    }

    /// Publishes `data` to `topic` (no reply is expected).
    public func publish(topic: String, data: [String: Any], eventType: String? = nil) async throws {
        var message: [String: Any] = ["type": "message", "topic": topic, "data": data]
        if let eventType { message["eventType"] = eventType }
        try await send(json: message)
    }

    /// The next delivered message, skipping probes and `gap` notices (a Redis outage's: tests
    /// of it read them with `next(type: "gap")`). Anything else (an `error`, a close) throws.
    public func nextDelivery(timeout: Duration = .seconds(10)) async throws -> Delivery {
        while true {
            let message = try await nextJSON(timeout: timeout)
            if message["type"] as? String == "gap" { continue }
            guard message["type"] as? String == "message" else {
                throw TestFailure("expected a delivered message, got \(message)")
            }
            let delivery = Delivery(json: message)
            if delivery.eventType != Probe.eventType { return delivery }
        }
    }

    /// The next `count` delivered messages (probes skipped), all within `timeout`; throws with
    /// what did arrive when fewer came.
    public func deliveries(_ count: Int, within timeout: Duration = .seconds(20)) async throws -> [Delivery] {
        let deadline = ContinuousClock.now + timeout
        var received: [Delivery] = []
        while received.count < count {
            let remaining = deadline - ContinuousClock.now
            do {
                guard remaining > .zero else { throw WebSocketClient.Failure.timeout }
                received.append(try await nextDelivery(timeout: remaining))
            } catch WebSocketClient.Failure.timeout {
                throw TestFailure(
                    "expected \(count) messages within \(timeout), got \(received.count): \(received.suffix(5).map(\.description))")
            }
        }
        return received
    }

    /// Publishes a marker to `topic` (a message of event type ``Marker/eventType``) and returns
    /// its id, for ``messages(before:timeout:)``: published after the messages under test, from
    /// the same connection, it travels the same route behind them.
    public func publishMarker(topic: String) async throws -> String {
        let id = UUID().uuidString
        try await publish(topic: topic, data: ["marker": id], eventType: Marker.eventType)
        return id
    }

    /// What this connection receives before the marker `id` (probes and pings skipped; any other
    /// frame, described), reading until the marker arrives: empty when nothing more, a late
    /// duplicate included, was delivered ahead of it. Throws when the marker does not arrive
    /// within `timeout`.
    public func messages(before marker: String, timeout: Duration = .seconds(20)) async throws -> [String] {
        try await messages(before: [marker], timeout: timeout)
    }

    /// Like ``messages(before:timeout:)-(String,_)``, reading until every marker of `markers` has
    /// arrived (one per route: a topic on each Redis server, say).
    public func messages(before markers: [String], timeout: Duration = .seconds(20)) async throws -> [String] {
        let deadline = ContinuousClock.now + timeout
        var waiting = Set(markers)
        var extra: [String] = []
        while !waiting.isEmpty {
            let remaining = deadline - ContinuousClock.now
            let frame: WebSocketClient.Event
            do {
                guard remaining > .zero else { throw WebSocketClient.Failure.timeout }
                frame = try await next(timeout: remaining)
            } catch WebSocketClient.Failure.timeout {
                throw TestFailure("\(waiting.count) marker(s) did not arrive within \(timeout); before them: \(extra)")
            }
            switch frame {
            case .ping, .pong: continue
            case .text(let text):
                let message = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any]
                let eventType = message?["type"] as? String == "message" ? message?["eventType"] as? String : nil
                if eventType == Probe.eventType { continue }
                if eventType == Marker.eventType, let id = (message?["data"] as? [String: Any])?["marker"] as? String,
                    waiting.remove(id) != nil
                {
                    continue
                }
                extra.append(text)
            case .binary:
                extra.append("\(frame)")
            case .close, .disconnected:
                throw TestFailure("the connection ended (\(frame)) before \(waiting.count) marker(s); before that: \(extra)")
            }
        }
        return extra
    }

    /// Publishes probes to `topic` from this connection until each of `subscribers` has received
    /// one: from then on every message this connection publishes to `topic` reaches them.
    ///
    /// A node answers `subscribed` before Redis has confirmed its `SUBSCRIBE`, so the first
    /// messages from other nodes may pass a fresh subscriber by. Anything but a probe arriving at
    /// a subscriber meanwhile throws.
    public func awaitRoute(to subscribers: [WebSocketClient], topic: String, within timeout: Duration = .seconds(20)) async throws {
        let deadline = ContinuousClock.now + timeout
        var waiting = subscribers.indices.map { $0 }
        var probe = 0
        while !waiting.isEmpty {
            guard ContinuousClock.now < deadline else {
                throw TestFailure("\(waiting.count) of \(subscribers.count) subscribers got no probe on '\(topic)' within \(timeout)")
            }
            probe += 1
            try await publish(topic: topic, data: ["probe": probe], eventType: Probe.eventType)
            var still: [Int] = []
            for index in waiting {
                if try await !subscribers[index].receivesProbe(within: .milliseconds(200)) { still.append(index) }
            }
            waiting = still
        }
        // A subscriber that got a late probe may have later ones still on their way: read up
        // to a marker behind them, so that the test's next read is its own message.
        guard probe > 1 else { return }
        let marker = try await publishMarker(topic: topic)
        for subscriber in subscribers {
            let extra = try await subscriber.messages(before: marker)
            guard extra.isEmpty else { throw TestFailure("expected only probes while waiting for a route, got \(extra)") }
        }
    }

    /// True when a probe arrives within `window`; false when nothing does; throws on anything else.
    private func receivesProbe(within window: Duration) async throws -> Bool {
        do {
            let message = try await nextJSON(timeout: window)
            guard message["type"] as? String == "message", message["eventType"] as? String == Probe.eventType else {
                throw TestFailure("expected only probes while waiting for a route, got \(message)")
            }
            return true
        } catch WebSocketClient.Failure.timeout {
            return false
        }
    }
}
