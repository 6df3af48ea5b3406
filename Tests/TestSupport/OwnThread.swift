import Foundation

/// Runs `work` on a thread of its own and returns its result.
///
/// For the few blocking calls the test support makes (plain-socket round trips to Redis,
/// removing a large folder): on a loaded machine they can take a long moment, and on Swift's
/// cooperative pool (as wide as the cores) they would stall every other test of the process
/// meanwhile. Child processes are started on ``SpawnThread`` instead, which never ends.
public func onOwnThread<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        let thread = Thread {
            continuation.resume(with: Result { try work() })
        }
        thread.stackSize = 1 << 20
        thread.start()
    }
}
