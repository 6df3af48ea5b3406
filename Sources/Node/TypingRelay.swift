import Broker
import Dispatch
import Foundation
import Synchronization

/// Typing indicators on both ends of the topic space: coalescing what this node's clients send,
/// and timing out what this node's subscribers were shown.
///
/// **Sending** (``outgoing(topic:userId:session:start:now:)``): per topic and user, repeated `start`s
/// leave the node at most once per ``interval`` (more are dropped: a client repeats `start`
/// every few seconds while its user types); a `stop` leaves only after a `start` did, and a
/// `start` after a `stop` at once (the user sent a line and types the next). At most
/// ``startsPerInterval`` starts leave per interval, so start/stop pairs in a loop cannot flood
/// the topic's subscribers; a `stop` is never held back (each follows a `start` that left, and
/// a lost one would leave the indicator on until the timeout). A user typing on several
/// connections (tabs, devices) of this node is typing until the last of them stops: the `stop`
/// of one leaves only when no other has sent a `start` within ``timeout``.
///
/// **Receiving** (``incoming(_:now:)``): per topic and user, a `start` reaches this node's
/// subscribers at most once per ``interval`` (so two devices of one user, on two nodes, do not
/// double it), and every `start` arms a timer: without another `start` or a `stop` within
/// ``shownFor``, the node shows its subscribers a `stop` itself. That ends indicators whose
/// client went silent, disconnected without a word, or whose node died. Starts are kept per
/// origin node: a `stop` from one node (the user's tab there stopped) is shown only when no
/// other node's `start` is still running (another tab of the user, on another node, types on).
///
/// Thread-safe: two small tables behind mutexes; timers run on a dispatch queue and deliver
/// through the closure given to ``init(timeout:deliverStop:)``.
final class TypingRelay: Sendable {
    struct Key: Hashable {
        var topic: Topic
        var userId: String
    }

    private struct Outgoing {
        var lastStart: ContinuousClock.Instant
        var active: Bool
        /// The user's connections whose last word here was a `start`, with when it came.
        var typists: [Int: ContinuousClock.Instant] = [:]
        /// Starts sent since `windowStart` (within one ``interval``).
        var windowStart: ContinuousClock.Instant
        var sent = 1

        /// Counts one more start sent at `now`; false when the interval's are used up.
        mutating func admit(now: ContinuousClock.Instant) -> Bool {
            if now - windowStart >= TypingRelay.interval {
                windowStart = now
                sent = 0
            }
            guard sent < TypingRelay.startsPerInterval else { return false }
            sent += 1
            return true
        }
    }

    private struct Incoming {
        var lastShown: ContinuousClock.Instant
        /// Origin nodes with a running `start`, each with the generation of its last one (the
        /// timer that ends it).
        var origins: [String: Int]
    }

    /// At most one repeated `start` per topic and user per interval.
    static let interval = Duration.seconds(1)
    /// At most this many `start`s per topic and user per interval: a line sent and the next
    /// begun within a second (start, stop, start) passes whole.
    static let startsPerInterval = 2

    let timeout: Duration
    /// How long a received `start` is shown without another: `TYPING_TIMEOUT` and one
    /// ``interval``, as the typist's node may have held back a refresh for up to an interval
    /// (a refresh 0.9 s after the start left with the next one, or not at all).
    var shownFor: Duration { timeout + Self.interval }
    private let outgoingTable = Mutex<(entries: [Key: Outgoing], pruneAt: Int)>(([:], TypingRelay.minimumPruneAt))
    /// The outgoing table is pruned of ended indicators once it passes this size, then at twice
    /// what was left: pruning costs the table's size, so the threshold doubles to keep that
    /// linear in the starts, however many of them are recent.
    static let minimumPruneAt = 4_096
    private let incomingTable = Mutex<(entries: [Key: Incoming], generation: Int)>(([:], 0))
    private let timers = DispatchQueue(label: "chorus.typing-timeouts")
    private let deliverStop: @Sendable (Envelope) -> Void

    /// - Parameter deliverStop: shows a timed-out `stop` to this node's subscribers (never
    ///   published: every node times out what it showed).
    init(timeout: Duration, deliverStop: @escaping @Sendable (Envelope) -> Void) {
        self.timeout = timeout
        self.deliverStop = deliverStop
    }

    // MARK: Sending

    /// Whether a `start`/`stop` of connection `session` should be published.
    func outgoing(topic: Topic, userId: String, session: Int = 0, start: Bool, now: ContinuousClock.Instant = .now) -> Bool {
        outgoingTable.withLock { table in
            let key = Key(topic: topic, userId: userId)
            if start {
                if var entry = table.entries[key] {
                    entry.typists[session] = now
                    defer { table.entries[key] = entry }
                    if entry.active, now - entry.lastStart < Self.interval { return false }
                    guard entry.admit(now: now) else { return false }
                    entry.lastStart = now
                    entry.active = true
                } else {
                    table.entries[key] = Outgoing(lastStart: now, active: true, typists: [session: now], windowStart: now)
                }
                if table.entries.count > table.pruneAt {
                    table.entries = table.entries.filter { $0.value.active && now - $0.value.lastStart < timeout * 2 }
                    table.pruneAt = max(Self.minimumPruneAt, 2 * table.entries.count)
                }
                return true
            }
            guard var entry = table.entries[key] else { return false }
            entry.typists[session] = nil
            entry.typists = entry.typists.filter { now - $0.value < timeout }  // the others' that ended
            defer { table.entries[key] = entry }
            guard entry.active, entry.typists.isEmpty else { return false }
            entry.active = false  // kept while its window counts
            return true
        }
    }

    /// Entries of the outgoing table, and the size that prunes it next (for tests).
    var outgoingCount: Int { outgoingTable.withLock { $0.entries.count } }
    var outgoingPruneAt: Int { outgoingTable.withLock { $0.pruneAt } }

    // MARK: Receiving

    /// Whether a typing envelope that reached this node is shown to its subscribers; arms or
    /// disarms the timeout.
    func incoming(_ envelope: Envelope, now: ContinuousClock.Instant = .now) -> Bool {
        guard let topic = envelope.topic, let fields = try? RawJSONObject(parsing: envelope.data.bytes),
            let userId = fields["userId"]?.stringValue, let state = fields["state"]?.stringValue
        else { return false }
        let key = Key(topic: topic, userId: userId)
        let origin = envelope.origin
        return incomingTable.withLock { table in
            table.generation += 1
            let generation = table.generation
            guard state == "start" else {
                guard var entry = table.entries[key] else { return false }
                entry.origins[origin] = nil
                guard entry.origins.isEmpty else {
                    table.entries[key] = entry
                    return false  // the user types on through another node
                }
                table.entries[key] = nil
                return true
            }
            var show = true
            if var entry = table.entries[key] {
                entry.origins[origin] = generation
                if now - entry.lastShown < Self.interval {
                    show = false
                } else {
                    entry.lastShown = now
                }
                table.entries[key] = entry
            } else {
                table.entries[key] = Incoming(lastShown: now, origins: [origin: generation])
            }
            let shown = shownFor
            timers.asyncAfter(deadline: .now() + .nanoseconds(Int(shown.components.seconds) * 1_000_000_000
                + Int(shown.components.attoseconds / 1_000_000_000))) { [self] in
                expire(key, generation: generation, origin: origin)
            }
            return show
        }
    }

    private func expire(_ key: Key, generation: Int, origin: String) {
        let due = incomingTable.withLock { table -> Bool in
            guard var entry = table.entries[key], entry.origins[origin] == generation else { return false }
            entry.origins[origin] = nil
            guard entry.origins.isEmpty else {
                table.entries[key] = entry
                return false
            }
            table.entries[key] = nil
            return true
        }
        guard due else { return }
        var stop = Envelope(
            id: "typing-timeout-\(generation)", origin: origin, topic: key.topic,
            data: PresenceFrames.typingData(userId: key.userId, state: "stop"))
        stop.kind = .typing
        deliverStop(stop)
    }
}
