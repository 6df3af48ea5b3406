import Foundation

/// Runs `work` on a thread of its own and returns its result.
///
/// For the few blocking calls the test support makes (`posix_spawn`, which suspends the caller
/// until the child has exec'd, and plain-socket round trips to Redis): on a loaded machine
/// they can take a long moment, and on Swift's cooperative pool (as wide as the cores) they
/// would stall every other test of the process meanwhile.
public func onOwnThread<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        let thread = Thread {
            continuation.resume(with: Result { try work() })
        }
        thread.stackSize = 1 << 20
        thread.start()
    }
}

extension ChildProcess {
    /// Starts a child like ``init(_:_:environment:log:)`` does, from a thread of its own.
    public static func spawn(
        _ executable: String, _ arguments: [String], environment: [String: String] = [:], log: URL
    ) async throws -> ChildProcess {
        try await onOwnThread { try ChildProcess(executable, arguments, environment: environment, log: log) }
    }
}
