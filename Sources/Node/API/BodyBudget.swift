import Synchronization

/// The bytes of HTTP request bodies a node holds while they arrive, charged as they arrive
/// (a request that sends nothing holds nothing) and given back once the body is whole or the
/// request ends. Each holder (a user, or a client network for requests without a token) may
/// hold an eighth of it; past either bound the request is answered 503. Without it each
/// connection could hold a body's worth of memory for as long as its client sent slowly: a
/// drill held 3 GB with 3,000 such requests. Thread-safe.
final class BodyBudget: Sendable {
    /// Bytes held at once: 64 bodies of the largest size.
    let capacity: Int
    /// What one holder may hold of it.
    let perHolder: Int

    private struct Held {
        var total = 0
        var byHolder: [String: Int] = [:]
    }

    private let held = Mutex(Held())

    init(maxBodySize: Int) {
        capacity = 64 * maxBodySize
        perHolder = max(maxBodySize, capacity / 8)
    }

    /// The holder of a request made with a user's token.
    static func holder(user id: String) -> String { "user " + id }

    /// The holder of a request made with the application's `API_KEY`.
    static let applicationHolder = "application"

    /// Charges `bytes` to `holder`; false when they do not fit.
    func charge(_ bytes: Int, to holder: String) -> Bool {
        held.withLock { held in
            let mine = held.byHolder[holder, default: 0]
            guard held.total + bytes <= capacity, mine + bytes <= perHolder else { return false }
            held.total += bytes
            held.byHolder[holder] = mine + bytes
            return true
        }
    }

    /// Gives back `bytes` charged to `holder`.
    func release(_ bytes: Int, from holder: String) {
        guard bytes > 0 else { return }
        held.withLock { held in
            held.total -= bytes
            let left = held.byHolder[holder, default: 0] - bytes
            held.byHolder[holder] = left > 0 ? left : nil
        }
    }
}
