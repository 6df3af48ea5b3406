import Foundation
import Synchronization

/// Limits attempts per key to `perMinute`, as a token bucket: a burst of `perMinute`, refilled
/// evenly over a minute. Password guessing is slowed without locking the account for everyone.
///
/// Keys name a client's network, not its address (``network(of:)``): an IPv6 client usually
/// holds a whole /64 and can rotate through it, so IPv6 is counted per /64, IPv4 per address.
///
/// Bounded: the table holds at most `maxKeys` keys. When it is full, the least recently used
/// key is forgotten to make room, so a flood of new keys never refuses anyone else; a key in
/// use (an account being guessed at right now) is the last to go.
///
/// Thread-safe: one mutex around the table; every call is O(1).
final class LoginThrottle: Sendable {
    private struct Bucket {
        var tokens: Double
        var updated: ContinuousClock.Instant
    }

    private let perMinute: Double
    private let table: Mutex<RecencyTable<String, Bucket>>

    init(perMinute: Int, maxKeys: Int = 100_000) {
        self.perMinute = Double(perMinute)
        self.table = Mutex(RecencyTable(capacity: maxKeys))
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
                bucket.tokens = min(perMinute, bucket.tokens + seconds * perMinute / 60)
            } else {
                bucket = Bucket(tokens: perMinute, updated: now)
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

    /// The part of a client address the throttle counts: ``IPAddress/clientNetwork(of:)``.
    static func network(of address: String) -> String {
        IPAddress.clientNetwork(of: address)
    }
}
