import Broker
import Synchronization

/// How many topics with history one user may bring into use on this node in a minute
/// (`HISTORY_USER_TOPICS_PER_MINUTE`). A publish to such a topic, or a subscribe to it (which
/// reads its history), makes the topic's history: in Redis a stream and a meta hash (about
/// 5.8 KB for a one-byte message), or in the node's memory, kept for `HISTORY_TTL`. The message
/// rates bound how often a client sends, not to how many topics: without this budget one user
/// publishing to new topics could fill Redis and, under `volatile-lru`, have it evict other
/// topics' histories.
///
/// A user's ``recentPerUser`` most recent topics cost nothing; any other topic takes one of the
/// minute's allowance, refilled evenly. Per node; past ``maxUsers`` the least recently active
/// users are forgotten (their allowance starts full again). The application's `API_KEY` is not
/// limited. Thread-safe: one mutex around the table.
final class HistoryTopicBudget: Sendable {
    private struct Use {
        /// Hashes of the user's most recent topics, the newest last.
        var recent: [Int]
        var allowance: Double
        var updated: ContinuousClock.Instant
    }

    static let recentPerUser = 16
    /// 0: no limit.
    let perMinute: Int
    private let table: Mutex<RecencyTable<String, Use>>

    init(perMinute: Int, maxUsers: Int = 100_000) {
        self.perMinute = perMinute
        self.table = Mutex(RecencyTable(capacity: maxUsers))
    }

    /// Nil when `user` may use `topic` now (and it is counted); else how long until one more
    /// new topic is allowed.
    func admit(_ user: String, topic: Topic, now: ContinuousClock.Instant = .now) -> Duration? {
        guard perMinute > 0 else { return nil }
        let hash = topic.name.hashValue
        let perSecond = Double(perMinute) / 60
        return table.withLock { table -> Duration? in
            var use = table[user] ?? Use(recent: [], allowance: Double(perMinute), updated: now)
            let elapsed = now - use.updated
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            use.allowance = min(Double(perMinute), use.allowance + seconds * perSecond)
            use.updated = now
            defer { table[user] = use }
            if let index = use.recent.firstIndex(of: hash) {
                use.recent.remove(at: index)
                use.recent.append(hash)
                return nil
            }
            guard use.allowance >= 1 else {
                return .milliseconds(Int(((1 - use.allowance) / perSecond * 1000).rounded(.up)))
            }
            use.allowance -= 1
            use.recent.append(hash)
            if use.recent.count > Self.recentPerUser { use.recent.removeFirst() }
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
