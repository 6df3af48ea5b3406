import Broker
import Dispatch
import Foundation
import Synchronization

/// Keeps a join/leave storm from flooding subscribers: per topic, the first `rate` presence
/// events of each one-second window reach this node's watchers one by one; further events of
/// the window wait and go out together at its end:
/// `{"type":"presence","topic":..,"event":"batch","events":[{"event":"join","member":{..},"timestamp":..},..],"timestamp":..}`.
/// While a batch waits, every later event of the topic joins it, so the order is kept.
///
/// A batch holds at most two events per user, bringing a watcher to the user's state at the
/// window's end whether its list is from before the window or from a `presence.get` during it:
/// `update`s alone are the last `update`; a `join` or a `leave` followed by presence is one
/// `join` with the last data (a watcher adds or replaces the member); a `leave` at the end is
/// that `leave`, after a `join` when the user had joined in the window (so a watcher that listed
/// the user meanwhile drops them). So what waits, and what a watcher gets, grows with the users
/// who changed, not with how often one of them did (one user re-joining in a loop from many
/// connections makes one event a second). Users are listed in the order of their first event
/// in the window, each event with its own timestamp. A batch is sent as
/// several messages of at most `maxBatchBytes` each (one event may exceed it), so a batch never
/// closes a reading watcher for its pending bytes.
///
/// Runs on the adapter's threads (``ConnectionHub/deliver(_:)``); the table is behind a mutex,
/// and batches go out from a dispatch queue through the closure given to ``init(rate:maxBatchBytes:flush:)``.
final class PresenceBatcher: Sendable {
    /// One user's events in a waiting batch.
    private struct UserChange {
        /// Whether the user was absent before the window (its first event was a `join`).
        var joinedInWindow: Bool
        /// Whether a `leave` came in the window.
        var leftInWindow: Bool
        /// The last event that left the user present (a `join` or an `update`).
        var lastPresent: RawJSON?
        /// The last event, with its timestamp set.
        var last: RawJSON
        var lastKind: String
    }

    private struct Window {
        var start: ContinuousClock.Instant
        var count: Int
        /// Users (or, for an event without one, a unique key) in the order of their first event.
        var order: [String] = []
        var changes: [String: UserChange] = [:]
        /// The previous window's batch is being sent: an event now waits for the next batch
        /// instead of overtaking it (a `leave` delivered before the batch's `join` of the same
        /// user would leave a watcher listing a member who left).
        var releasing = false
        var isWaiting: Bool { !order.isEmpty || releasing }
    }

    private struct Table {
        var windows: [Topic: Window] = [:]
        var pruneAt = PresenceBatcher.minimumPruneAt
        var unkeyed = 0
    }

    /// The table is pruned of ended windows once it passes this size, then at twice what was
    /// left, so pruning stays linear in the events however many windows are recent.
    static let minimumPruneAt = 10_000

    let rate: Int
    let maxBatchBytes: Int
    private let table = Mutex(Table())
    private let queue = DispatchQueue(label: "chorus.presence-batches")
    private let flush: @Sendable (Envelope) -> Void

    init(rate: Int, maxBatchBytes: Int, flush: @escaping @Sendable (Envelope) -> Void) {
        precondition(rate > 0, "the presence batch rate must be positive")
        self.rate = rate
        self.maxBatchBytes = max(1, maxBatchBytes)
        self.flush = flush
    }

    /// Whether `envelope` (a presence event) goes out now; false when it waits in a batch.
    func admit(_ envelope: Envelope, now: ContinuousClock.Instant = .now) -> Bool {
        guard let topic = envelope.topic else { return true }
        let (admitted, schedule) = table.withLock { table -> (Bool, Duration?) in
            var window = table.windows[topic] ?? Window(start: now, count: 0)
            if !window.isWaiting, now - window.start >= .seconds(1) {
                window = Window(start: now, count: 0)
            }
            if !window.isWaiting, window.count < rate {
                window.count += 1
                table.windows[topic] = window
                if table.windows.count > table.pruneAt {
                    table.windows = table.windows.filter { now - $0.value.start < .seconds(1) || $0.value.isWaiting }
                    table.pruneAt = max(Self.minimumPruneAt, 2 * table.windows.count)
                }
                return (true, nil)
            }
            let first = window.order.isEmpty
            Self.add(envelope, to: &window, unkeyed: &table.unkeyed)
            table.windows[topic] = window
            return (false, first ? max(.zero, .seconds(1) - (now - window.start)) : nil)
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

    /// Adds an event to the waiting batch, in place of the same user's earlier one.
    private static func add(_ envelope: Envelope, to window: inout Window, unkeyed: inout Int) {
        let event = envelope.data.isObject
            ? envelope.data.settingMember("timestamp", to: .string(Timestamp.string(envelope.timestamp))) : envelope.data
        let fields = try? RawJSONObject(parsing: envelope.data.bytes)
        let kind = fields?["event"]?.stringValue ?? ""
        let userId = fields?["member"].flatMap { try? RawJSONObject(parsing: $0.bytes) }?["userId"]?.stringValue
        let key: String
        if let userId {
            key = userId
        } else {
            // Nothing to coalesce by: kept as it came.
            unkeyed &+= 1
            key = "\u{0}\(unkeyed)"
        }
        var change = window.changes[key] ?? UserChange(
            joinedInWindow: kind == "join", leftInWindow: false, lastPresent: nil, last: event, lastKind: kind)
        if window.changes[key] == nil { window.order.append(key) }
        change.last = event
        change.lastKind = kind
        if kind == "leave" { change.leftInWindow = true } else { change.lastPresent = event }
        window.changes[key] = change
    }

    /// The events a watcher needs for `change` (see the type's comment).
    private static func net(_ change: UserChange) -> [RawJSON] {
        switch change.lastKind {
        case "leave":
            guard change.joinedInWindow, let present = change.lastPresent else { return [change.last] }
            return [Self.renamed(present, "join"), change.last]
        case "update" where change.joinedInWindow || change.leftInWindow:
            return [Self.renamed(change.last, "join")]
        default:
            return [change.last]
        }
    }

    private static func renamed(_ event: RawJSON, _ kind: String) -> RawJSON {
        event.settingMember("event", to: .string(kind))
    }

    private func release(_ topic: Topic, origin: String) {
        let events = table.withLock { table -> [RawJSON] in
            guard let window = table.windows[topic] else { return [] }
            table.windows[topic] = Window(start: .now, count: 0, releasing: true)
            return window.order.flatMap { window.changes[$0].map(Self.net) ?? [] }
        }
        defer { table.withLock { $0.windows[topic]?.releasing = false } }
        var batch: [RawJSON] = []
        var bytes = 0
        for event in events {
            if !batch.isEmpty, bytes + event.bytes.count > maxBatchBytes {
                send(batch, topic: topic, origin: origin)
                batch = []
                bytes = 0
            }
            batch.append(event)
            bytes += event.bytes.count + 1
        }
        if !batch.isEmpty { send(batch, topic: topic, origin: origin) }
    }

    private func send(_ events: [RawJSON], topic: Topic, origin: String) {
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
