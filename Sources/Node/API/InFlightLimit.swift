import Synchronization

/// At most ``perKey`` requests per key at a time (a user's conversation listing, whose cost
/// grows with that user's conversations; a caller's history reads, which wait in the queue every
/// recovery of that Redis server uses): one more while they run is refused, so one caller
/// cannot queue many such reads in front of everyone else's.
///
/// Thread-safe: one mutex around the counts of running keys, which holds only requests in flight.
final class InFlightLimit: Sendable {
    let perKey: Int
    private let running = Mutex<[String: Int]>([:])

    init(perKey: Int) {
        precondition(perKey > 0, "a limit of at least one")
        self.perKey = perKey
    }

    /// Runs `work` unless ``perKey`` run for `key` already; nil then.
    func run<T: Sendable>(_ key: String, _ work: () async throws -> T) async rethrows -> T? {
        let admitted = running.withLock { running in
            guard running[key, default: 0] < perKey else { return false }
            running[key, default: 0] += 1
            return true
        }
        guard admitted else { return nil }
        defer {
            running.withLock { running in
                running[key]! -= 1
                if running[key] == 0 { running[key] = nil }
            }
        }
        return try await work()
    }
}
