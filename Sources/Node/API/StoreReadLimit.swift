import Hummingbird

/// How many reads of a shared store (history, presence) one caller and one client network may
/// have in flight at a time; more are refused with 429 at once.
///
/// On Redis every such read waits in the queue that its server's `subscribe` recoveries and
/// presence calls use, and while Redis does not answer each one holds its request (and up to a
/// page of about 1 MiB once answered) until `PUBSUB_REDIS_TIMEOUT`: without a cap one caller
/// could queue thousands of reads in front of everyone else's.
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
    func run<T: Sendable>(for caller: Caller, from network: String, _ read: () async throws -> T) async throws -> T {
        let key = if case .user(let user) = caller { "user \(user.id)" } else { "api key" }
        let result = try await networks.run(network) {
            try await callers.run(key) { try await read() }
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
