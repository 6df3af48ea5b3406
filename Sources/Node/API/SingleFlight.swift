import Synchronization

/// At most one request per key at a time (a user's conversation listing, whose cost grows
/// with that user's conversations): a second one while the first runs is refused, so one user
/// cannot queue many such reads in front of everyone else's on the database.
///
/// Thread-safe: one mutex around the set of running keys, which holds only requests in flight.
final class SingleFlight: Sendable {
    private let running = Mutex<Set<String>>([])

    /// Runs `work` unless one runs for `key` already; nil then.
    func run<T: Sendable>(_ key: String, _ work: () async throws -> T) async rethrows -> T? {
        guard running.withLock({ $0.insert(key).inserted }) else { return nil }
        defer { _ = running.withLock { $0.remove(key) } }
        return try await work()
    }
}
