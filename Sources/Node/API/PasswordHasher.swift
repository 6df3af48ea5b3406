import HummingbirdBcrypt
import NIOPosix

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

    func verify(_ password: String, hash: String) async throws -> Bool {
        try await pool.runIfActive { Bcrypt.verify(password, hash: hash) }
    }

    /// A hash of a random password, verified against when the user name is unknown so that
    /// a login for a missing user costs as much as one with a wrong password.
    static let decoy = Bcrypt.hash("decoy-\(UInt64.random(in: 0...UInt64.max))", cost: 10)
}
