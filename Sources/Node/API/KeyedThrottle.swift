import Foundation
import Synchronization

/// Limits attempts per key, as a token bucket: a burst of `burst`, refilled at `perSecond`.
/// Logins: `AUTH_LOGIN_ATTEMPTS_PER_MINUTE` per client network and user name (a minute's worth
/// of burst), so password guessing is slowed without locking the account for everyone. HTTP
/// publishes: `WEBSOCKET_MAX_MESSAGES_PER_SECOND` per user (a second's worth), as a WebSocket
/// connection gets.
///
/// Login keys name a client's network, not its address (``IPAddress/clientNetwork(of:)``):
/// an IPv6 client usually holds a whole /64 and can rotate through it, so IPv6 is counted per
/// /64, IPv4 per address.
///
/// Bounded: the table holds at most `maxKeys` keys. When it is full, the least recently used
/// key is forgotten to make room, so a flood of new keys never refuses anyone else; a key in
/// use (an account being guessed at right now) is the last to go.
///
/// Thread-safe: one mutex around the table; every call is O(1).
final class KeyedThrottle: Sendable {
    private struct Bucket {
        var tokens: Double
        var updated: ContinuousClock.Instant
    }

    private let perSecond: Double
    private let burst: Double
    private let table: Mutex<RecencyTable<String, Bucket>>

    init(perSecond: Double, burst: Int, maxKeys: Int = 100_000) {
        self.perSecond = perSecond
        self.burst = Double(burst)
        self.table = Mutex(RecencyTable(capacity: maxKeys))
    }

    /// A minute's worth of burst, refilled evenly over a minute.
    convenience init(perMinute: Int, maxKeys: Int = 100_000) {
        self.init(perSecond: Double(perMinute) / 60, burst: perMinute, maxKeys: maxKeys)
    }

    /// Takes one attempt (or `cost` of one, for a budget `1 / cost` times larger) for `key`;
    /// false when none is left.
    func attempt(_ key: String, cost: Double = 1, now: ContinuousClock.Instant = .now) -> Bool {
        table.withLock { table in
            var bucket: Bucket
            if let existing = table[key] {
                bucket = existing
                let elapsed = now - bucket.updated
                let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
                bucket.tokens = min(burst, bucket.tokens + seconds * perSecond)
            } else {
                bucket = Bucket(tokens: burst, updated: now)
            }
            bucket.updated = now
            let granted = bucket.tokens >= cost
            if granted { bucket.tokens -= cost }
            table[key] = bucket
            return granted
        }
    }

    /// Keys the table holds (for tests).
    var count: Int { table.withLock { $0.count } }
}
