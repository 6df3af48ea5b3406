import Foundation
import Synchronization

/// The one thread that starts every child process of the tests, for the life of the test process.
///
/// Two reasons for a thread of its own. `posix_spawn` blocks its caller until the child has
/// exec'd, which on a loaded machine can take a long moment: on Swift's cooperative pool (as
/// wide as the cores) that would stall every other test of the process. And children are
/// started with a parent-death signal (see ``ChildProcess``), which Linux sends when the
/// *thread* that forked them ends, not the process: a short-lived thread, or a pool thread that
/// the system retires when idle, would kill its children with it. This thread never ends.
///
/// Jobs run one at a time, in order, under `condition`; callers wait with a continuation.
enum SpawnThread {
    private final class Queue: @unchecked Sendable {
        /// Guards `jobs`; signalled when one is added.
        let condition = NSCondition()
        var jobs: [@Sendable () -> Void] = []
    }

    private static let queue: Queue = {
        let queue = Queue()
        let thread = Thread {
            while true {
                queue.condition.lock()
                while queue.jobs.isEmpty { queue.condition.wait() }
                let job = queue.jobs.removeFirst()
                queue.condition.unlock()
                job()
            }
        }
        thread.name = "test-spawner"
        thread.stackSize = 1 << 20
        thread.start()
        return queue
    }()

    /// Runs `work` on the spawning thread and returns its result.
    static func run<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            let queue = self.queue
            queue.condition.lock()
            queue.jobs.append { continuation.resume(with: Result { try work() }) }
            queue.condition.signal()
            queue.condition.unlock()
        }
    }
}
