import HummingbirdBcrypt
import NIOPosix
import Synchronization

/// bcrypt for stored passwords. One check costs tens of milliseconds by design, so it runs on
/// a thread pool of its own: never on an event loop or a Swift concurrency thread, and not on
/// NIO's shared pool either, where the SQLite store runs its queries (a burst of logins would
/// otherwise stall every database request).
///
/// At most `maxPending` checks wait or run at once; beyond that ``hash(_:)`` and
/// ``verify(_:hash:)`` throw ``Busy`` (the routes answer 503), so a flood cannot queue
/// unbounded work.
struct PasswordHasher: Sendable {
    struct Busy: Error {}

    let cost: Int
    let maxPending: Int

    init(cost: Int, maxPending: Int = 64) {
        self.cost = cost
        self.maxPending = maxPending
    }

    /// Shared by the nodes of a process; two threads keep a core free for everything else.
    private static let pool: NIOThreadPool = {
        let pool = NIOThreadPool(numberOfThreads: 2)
        pool.start()
        return pool
    }()

    private static let pending = Atomic<Int>(0)

    func hash(_ password: String) async throws -> String {
        let cost = UInt8(cost)
        return try await run { Bcrypt.hash(password, cost: cost) }
    }

    /// Checks `password` against `hash`; with no hash (an unknown user name) it checks against
    /// a decoy of the same cost and answers false, so that the answer takes as long either way.
    func verify(_ password: String, hash: String?) async throws -> Bool {
        let cost = UInt8(cost)
        return try await run {
            guard let hash else {
                _ = Bcrypt.verify(password, hash: Self.decoy(cost: cost))
                return false
            }
            return Bcrypt.verify(password, hash: hash)
        }
    }

    private func run<T: Sendable>(_ work: @escaping @Sendable () -> T) async throws -> T {
        guard Self.pending.add(1, ordering: .relaxed).newValue <= maxPending else {
            Self.pending.subtract(1, ordering: .relaxed)
            throw Busy()
        }
        defer { Self.pending.subtract(1, ordering: .relaxed) }
        return try await Self.pool.runIfActive(work)
    }

    /// One decoy hash per cost, made on first use (on the pool).
    private static let decoys = Mutex<[UInt8: String]>([:])

    private static func decoy(cost: UInt8) -> String {
        if let hash = decoys.withLock({ $0[cost] }) { return hash }
        let hash = Bcrypt.hash("decoy-\(UInt64.random(in: 0...UInt64.max))", cost: cost)
        decoys.withLock { $0[cost] = hash }
        return hash
    }
}
