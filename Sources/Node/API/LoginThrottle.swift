import Foundation
import Synchronization

/// Limits attempts per key to `perMinute`, as a token bucket: a burst of `perMinute`, refilled
/// evenly over a minute. Password guessing is slowed without locking the account for everyone.
///
/// Bounded: the table holds at most `maxKeys` keys. When it is full, buckets that have refilled
/// completely (they behave like absent ones) are dropped, at most once a second; if it is still
/// full, new keys are refused rather than old ones forgotten, so junk keys cannot reset the
/// count of the account being guessed.
final class LoginThrottle: Sendable {
    private struct Bucket {
        var tokens: Double
        var updated: ContinuousClock.Instant
    }

    private struct Table {
        var buckets: [String: Bucket] = [:]
        var prunedAt: ContinuousClock.Instant?
    }

    private let perMinute: Double
    private let maxKeys: Int
    private let table = Mutex(Table())

    init(perMinute: Int, maxKeys: Int = 100_000) {
        self.perMinute = Double(perMinute)
        self.maxKeys = maxKeys
    }

    /// Takes one attempt (or `cost` of one, for a budget `1 / cost` times larger) for `key`;
    /// false when none is left (or the table is full).
    func attempt(_ key: String, cost: Double = 1, now: ContinuousClock.Instant = .now) -> Bool {
        table.withLock { table in
            var bucket: Bucket
            if let existing = table.buckets[key] {
                bucket = existing
                let elapsed = now - bucket.updated
                let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
                bucket.tokens = min(perMinute, bucket.tokens + seconds * perMinute / 60)
            } else {
                if table.buckets.count >= maxKeys { prune(&table, now: now) }
                guard table.buckets.count < maxKeys else { return false }
                bucket = Bucket(tokens: perMinute, updated: now)
            }
            bucket.updated = now
            guard bucket.tokens >= cost else {
                table.buckets[key] = bucket
                return false
            }
            bucket.tokens -= cost
            table.buckets[key] = bucket
            return true
        }
    }

    private func prune(_ table: inout Table, now: ContinuousClock.Instant) {
        if let last = table.prunedAt, now - last < .seconds(1) { return }
        table.prunedAt = now
        table.buckets = table.buckets.filter { now - $0.value.updated < .seconds(60) }
    }
}
