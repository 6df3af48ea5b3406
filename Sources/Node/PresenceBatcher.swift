import Broker
import Dispatch
import Foundation
import Synchronization

/// Keeps a join/leave storm from flooding subscribers: per topic, the first `rate` presence
/// events of each one-second window reach this node's watchers one by one; further events of
/// the window wait and go out together at its end as one batch:
/// `{"type":"presence","topic":..,"event":"batch","events":[{"event":"join","member":{..},"timestamp":..},..],"timestamp":..}`
/// (the events in the order they happened, each with its own timestamp). While a batch waits, every later event of the
/// topic joins it, so the order is kept.
///
/// Runs on the adapter's threads (``ConnectionHub/deliver(_:)``); the table is behind a mutex,
/// and batches go out from a dispatch queue through the closure given to ``init(rate:flush:)``.
final class PresenceBatcher: Sendable {
    private struct Window {
        var start: ContinuousClock.Instant
        var count: Int
        var pending: [RawJSON] = []
    }

    let rate: Int
    private let windows = Mutex<[Topic: Window]>([:])
    private let queue = DispatchQueue(label: "chorus.presence-batches")
    private let flush: @Sendable (Envelope) -> Void

    init(rate: Int, flush: @escaping @Sendable (Envelope) -> Void) {
        precondition(rate > 0, "the presence batch rate must be positive")
        self.rate = rate
        self.flush = flush
    }

    /// Whether `envelope` (a presence event) goes out now; false when it waits in a batch.
    func admit(_ envelope: Envelope, now: ContinuousClock.Instant = .now) -> Bool {
        guard let topic = envelope.topic else { return true }
        let (admitted, schedule) = windows.withLock { windows -> (Bool, Duration?) in
            var window = windows[topic] ?? Window(start: now, count: 0)
            if window.pending.isEmpty, now - window.start >= .seconds(1) {
                window = Window(start: now, count: 0)
            }
            if window.pending.isEmpty, window.count < rate {
                window.count += 1
                windows[topic] = window
                if windows.count > 10_000 { windows = windows.filter { now - $0.value.start < .seconds(1) || !$0.value.pending.isEmpty } }
                return (true, nil)
            }
            window.pending.append(
                envelope.data.isObject
                    ? envelope.data.settingMember("timestamp", to: .string(Timestamp.string(envelope.timestamp))) : envelope.data)
            windows[topic] = window
            return (false, window.pending.count == 1 ? max(.zero, .seconds(1) - (now - window.start)) : nil)
        }
        if let delay = schedule {
            let origin = envelope.origin
            queue.asyncAfter(deadline: .now() + .milliseconds(Int(delay.components.seconds * 1000
                + delay.components.attoseconds / 1_000_000_000_000_000))) { [self] in
                release(topic, origin: origin)
            }
        }
        return admitted
    }

    private func release(_ topic: Topic, origin: String) {
        let events = windows.withLock { windows -> [RawJSON] in
            guard var window = windows[topic] else { return [] }
            let events = window.pending
            window = Window(start: .now, count: 0)
            windows[topic] = window
            return events
        }
        guard !events.isEmpty else { return }
        var json = JSONWriter(capacity: 64 + events.reduce(0) { $0 + $1.bytes.count + 1 })
        json.raw("{\"event\":\"batch\",\"events\":[")
        for (index, event) in events.enumerated() {
            if index > 0 { json.raw(",") }
            json.raw(event)
        }
        json.raw("]}")
        guard let data = try? RawJSON(validating: json.bytes) else { return }
        var envelope = Envelope(id: "presence-batch", origin: origin, topic: topic, data: data)
        envelope.kind = .presence
        flush(envelope)
    }
}
