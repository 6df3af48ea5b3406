import Synchronization

/// The bytes of HTTP request bodies a node holds while they arrive, charged as they arrive
/// (a request that sends nothing holds nothing) and given back once the body is whole or the
/// request ends. Each share (a user, a client network, the application) may hold an eighth of
/// it; past either bound the request is answered 503. Without it each connection could hold a
/// body's worth of memory for as long as its client sent slowly: a drill held 3 GB with 3,000
/// such requests. Thread-safe.
final class BodyBudget: Sendable {
    /// Bytes held at once: 64 bodies of the largest size.
    let capacity: Int
    /// What one share may hold of it.
    let perShare: Int

    /// The shares a request's body is charged to; it must fit each of them. Each kind of share
    /// has its own prefix, so that no client address (an `X-Forwarded-For` entry a trusted
    /// proxy passed on unchecked) can name a user's or the application's share.
    struct Holder: Sendable, Equatable {
        let shares: [String]

        /// A request with a user's token: the user's share and its client network's, so that
        /// one network holds at most an eighth however many accounts it signs in with.
        static func user(_ id: String, network: String) -> Holder { Holder(shares: ["user " + id, "network " + network]) }

        /// A request without a token (login, registration): its client network's share.
        static func network(_ network: String) -> Holder { Holder(shares: ["network " + network]) }

        /// A request with the application's `API_KEY`: one share for the application's servers.
        static let application = Holder(shares: ["application"])
    }

    private struct Held {
        var total = 0
        var byShare: [String: Int] = [:]
    }

    private let held = Mutex(Held())

    init(maxBodySize: Int) {
        capacity = 64 * maxBodySize
        perShare = max(maxBodySize, capacity / 8)
    }

    /// Charges `bytes` to each of `holder`'s shares; false (nothing charged) when they do not
    /// fit the node's budget or one of the shares.
    func charge(_ bytes: Int, to holder: Holder) -> Bool {
        held.withLock { held in
            guard held.total + bytes <= capacity,
                holder.shares.allSatisfy({ held.byShare[$0, default: 0] + bytes <= perShare })
            else { return false }
            held.total += bytes
            for share in holder.shares { held.byShare[share, default: 0] += bytes }
            return true
        }
    }

    /// Gives back `bytes` charged to `holder`.
    func release(_ bytes: Int, from holder: Holder) {
        guard bytes > 0 else { return }
        held.withLock { held in
            held.total -= bytes
            for share in holder.shares {
                let left = held.byShare[share, default: 0] - bytes
                held.byShare[share] = left > 0 ? left : nil
            }
        }
    }
}
