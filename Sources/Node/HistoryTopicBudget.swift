import Broker
import NIOCore
import Synchronization

/// How many distinct topics with history one user may use on this node within a minute
/// (`HISTORY_USER_TOPICS_PER_MINUTE`). A publish to such a topic, or a subscribe to it (which
/// reads its history), makes the topic's history: in Redis a stream and a meta hash (about
/// 5.8 KB for a one-byte message), or in the node's memory, kept for `HISTORY_TTL`. The message
/// rates bound how often a client sends, not to how many topics: without this budget one user
/// publishing to new topics could fill Redis and, under `volatile-lru`, have it evict other
/// topics' histories.
///
/// A topic the user used within the last minute costs nothing again, however often; a
/// sliding window, so a user moving between rooms is never limited below the budget. Per
/// node; past ``maxEntries`` topics over all users (or 100,000 users) the least recently
/// active users are forgotten (their windows start empty again). The application's `API_KEY`
/// is not limited. Thread-safe: one mutex around the table.
final class HistoryTopicBudget: Sendable {
    /// One user's topics of the last minute; a class, so that a request changes it in place
    /// rather than copying it out of the table and back.
    private final class Window {
        /// Topic (its name's hash) -> when it was last used.
        var lastUsed: [Int: ContinuousClock.Instant] = [:]
        /// The topics in the order they came in, with the time each was queued: the oldest
        /// first, so that expiry looks at the front alone.
        var order = CircularBuffer<(topic: Int, at: ContinuousClock.Instant)>()

        /// Forgets the topics not used since `cutoff`, and returns how many; one used again
        /// since it was queued (and still within the window) goes to the back with its
        /// latest time.
        func expire(before cutoff: ContinuousClock.Instant) -> Int {
            var forgotten = 0
            while let first = order.first, let latest = lastUsed[first.topic] {
                if latest <= cutoff {
                    order.removeFirst()
                    lastUsed[first.topic] = nil
                    forgotten += 1
                } else if latest != first.at {
                    order.removeFirst()
                    order.append((first.topic, latest))
                } else {
                    break
                }
            }
            return forgotten
        }
    }

    private struct Table {
        var users: RecencyTable<String, Window>
        /// Topics held over all users' windows, bounded by ``maxEntries``.
        var entries = 0
    }

    static let window = Duration.seconds(60)
    /// 0: no limit.
    let perMinute: Int
    let maxEntries: Int
    private let table: Mutex<Table>

    /// - Parameter maxEntries: topics remembered over all users (about 70 bytes each); past it
    ///   the least recently active users are forgotten, their windows starting empty again.
    init(perMinute: Int, maxUsers: Int = 100_000, maxEntries: Int = 1_000_000) {
        self.perMinute = perMinute
        self.maxEntries = max(maxEntries, perMinute)
        self.table = Mutex(Table(users: RecencyTable(capacity: maxUsers)))
    }

    /// Nil when `user` may use `topic` now (and it is counted); else how long until the oldest
    /// of the user's topics of the last minute leaves the window.
    func admit(_ user: String, topic: Topic, now: ContinuousClock.Instant = .now) -> Duration? {
        guard perMinute > 0 else { return nil }
        let hash = topic.name.hashValue
        return table.withLock { table -> Duration? in
            let window: Window
            if let known = table.users[user] {
                window = known
            } else {
                window = Window()
                if let forgotten = table.users.count == table.users.capacity ? table.users.removeOldest() : nil {
                    table.entries -= forgotten.lastUsed.count
                }
                table.users[user] = window
            }
            table.entries -= window.expire(before: now - Self.window)
            if window.lastUsed[hash] != nil {
                window.lastUsed[hash] = now
                return nil
            }
            guard window.lastUsed.count < perMinute else {
                let oldest = window.order.first.map { $0.at + Self.window } ?? now
                return max(.milliseconds(1), oldest - now)
            }
            window.lastUsed[hash] = now
            window.order.append((hash, now))
            table.entries += 1
            // Other users' windows go, least recently active first (never this one's).
            while table.entries > maxEntries, let oldest = table.users.removeOldest() {
                table.entries -= oldest.lastUsed.count
                if oldest === window { table.users[user] = window; table.entries += window.lastUsed.count; break }
            }
            return nil
        }
    }
}

extension HistoryTopicBudget {
    /// For an HTTP route: throws 429 (with `Retry-After`) when `userId` may not use `topic`, a
    /// topic with history under `policy`, now.
    func admit(_ userId: String, topic: Topic, policy: HistoryPolicy) throws(APIError) {
        guard policy.covers(topic), let wait = admit(userId, topic: topic) else { return }
        var error = APIError(
            429, "more than \(perMinute) topics with history a minute for this user (HISTORY_USER_TOPICS_PER_MINUTE)",
            field: "topic")
        error.retryAfter = max(1, Int((wait / .seconds(1)).rounded(.up)))
        throw error
    }
}
