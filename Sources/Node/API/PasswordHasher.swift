import HummingbirdBcrypt
import NIOPosix
import Synchronization

/// bcrypt for stored passwords, run on NIO's blocking thread pool: one hash costs tens of
/// milliseconds by design, which must not stall an event loop or a Swift concurrency thread.
struct PasswordHasher: Sendable {
    let cost: Int
    let pool: NIOThreadPool

    init(cost: Int, pool: NIOThreadPool = .singleton) {
        self.cost = cost
        self.pool = pool
    }

    func hash(_ password: String) async throws -> String {
        let cost = UInt8(cost)
        return try await pool.runIfActive { Bcrypt.hash(password, cost: cost) }
    }

    /// Checks `password` against `hash`; with no hash (an unknown user name) it checks against
    /// a decoy of the same cost and answers false, so that the answer takes as long either way.
    func verify(_ password: String, hash: String?) async throws -> Bool {
        let cost = UInt8(cost)
        return try await pool.runIfActive {
            guard let hash else {
                _ = Bcrypt.verify(password, hash: Self.decoy(cost: cost))
                return false
            }
            return Bcrypt.verify(password, hash: hash)
        }
    }

    /// One decoy hash per cost, made on first use (on the thread pool).
    private static let decoys = Mutex<[UInt8: String]>([:])

    private static func decoy(cost: UInt8) -> String {
        if let hash = decoys.withLock({ $0[cost] }) { return hash }
        let hash = Bcrypt.hash("decoy-\(UInt64.random(in: 0...UInt64.max))", cost: cost)
        decoys.withLock { $0[cost] = hash }
        return hash
    }
}
