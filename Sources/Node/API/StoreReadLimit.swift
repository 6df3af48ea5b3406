import Hummingbird

/// How many reads of a shared store (history, presence) one user and one client network may
/// have in flight at a time; more are refused with 429 at once.
///
/// On Redis a history read waits in the queue that its server's `subscribe` recoveries use, a
/// presence read on the presence store's read connection once the changes queued before it are
/// written; while Redis does not answer each one holds its request (and up to a page of about
/// 1 MiB once answered) until `PUBSUB_REDIS_TIMEOUT`: without a cap one user could queue
/// thousands of reads in front of everyone else's.
struct StoreReadLimit: Sendable {
    /// What is being read, for the refusal ("history", "presence").
    let what: String
    private let callers = InFlightLimit(perKey: StoreReadLimit.perCaller)
    private let networks = InFlightLimit(perKey: StoreReadLimit.perNetwork)

    static let perCaller = 4
    static let perNetwork = 16

    init(of what: String) {
        self.what = what
    }

    /// Runs `read` for `caller` from `network`, or throws 429 when either has its reads in flight.
    /// The application's `API_KEY` is not limited: a backend may fan its reads out.
    func run<T: Sendable>(for caller: Caller, from network: String, _ read: () async throws -> T) async throws -> T {
        guard case .user(let user) = caller else { return try await read() }
        let result = try await networks.run(network) {
            try await callers.run("user \(user.id)") { try await read() }
        }
        guard let result, let value = result else {
            var error = APIError(
                429, "at most \(Self.perCaller) \(what) reads in flight per caller (\(Self.perNetwork) per address): wait for one")
            error.retryAfter = 1
            throw error
        }
        return value
    }
}
