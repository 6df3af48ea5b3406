import Foundation
import Synchronization

/// Limits login attempts per key (client address and user name) to `perMinute`, as a token
/// bucket: a burst of `perMinute`, refilled evenly over a minute. Password guessing from one
/// address is slowed without locking the account for everyone else.
///
/// Bounded: idle keys are dropped once the table holds `maxKeys`.
final class LoginThrottle: Sendable {
    private struct Bucket {
        var tokens: Double
        var updated: ContinuousClock.Instant
    }

    private let perMinute: Double
    private let maxKeys: Int
    private let buckets = Mutex<[String: Bucket]>([:])

    init(perMinute: Int, maxKeys: Int = 100_000) {
        self.perMinute = Double(perMinute)
        self.maxKeys = maxKeys
    }

    /// Takes one attempt for `key`; false when none is left.
    func attempt(_ key: String, now: ContinuousClock.Instant = .now) -> Bool {
        buckets.withLock { buckets in
            if buckets.count >= maxKeys { prune(&buckets, now: now) }
            var bucket = buckets[key] ?? Bucket(tokens: perMinute, updated: now)
            let elapsed = Double((now - bucket.updated).components.seconds) + Double((now - bucket.updated).components.attoseconds) / 1e18
            bucket.tokens = min(perMinute, bucket.tokens + elapsed * perMinute / 60)
            bucket.updated = now
            guard bucket.tokens >= 1 else {
                buckets[key] = bucket
                return false
            }
            bucket.tokens -= 1
            buckets[key] = bucket
            return true
        }
    }

    /// Drops buckets that have refilled completely (they behave like absent ones); if every
    /// key is busy, drops them all rather than grow without bound.
    private func prune(_ buckets: inout [String: Bucket], now: ContinuousClock.Instant) {
        buckets = buckets.filter { now - $0.value.updated < .seconds(60) }
        if buckets.count >= maxKeys { buckets.removeAll() }
    }
}
