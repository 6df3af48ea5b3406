import Synchronization

/// Runs `body` and returns its result, or throws a ``TestFailure`` naming `what` once `timeout`
/// has passed without one.
///
/// For the waits of the test support that do not end by themselves on cancellation (a
/// `posix_spawn` on the spawning thread, a WebSocket upgrade that a proxy answers late, a NIO
/// future): `body` runs in a task of its own, which is cancelled at the deadline and left to end
/// on its own; its late result is dropped. So the caller always gets an answer in time, and a
/// test that waits on something that never comes fails saying what it waited for instead of
/// hanging past its time limit. Cancelling the caller cancels `body` and answers at once with
/// `CancellationError`.
public func withDeadline<T: Sendable>(
    _ timeout: Duration, _ what: @autoclosure () -> String, _ body: @escaping @Sendable () async throws -> T
) async throws -> T {
    let description = what()
    let answer = DeadlineAnswer<T>()
    return try await withTaskCancellationHandler {
        try await withCheckedThrowingContinuation { continuation in
            answer.wait(with: continuation)
            let work = Task {
                let result = await Result(catching: { try await body() })
                answer.give(result)
            }
            let timer = Task {
                do { try await Task.sleep(for: timeout) } catch { return }  // answered first
                answer.give(.failure(TestFailure("\(description): no answer within \(timeout)")))
            }
            answer.setTasks(work: work, timer: timer)
        }
    } onCancel: {
        answer.give(.failure(CancellationError()))
    }
}

/// The one answer of a ``withDeadline(_:_:_:)`` wait: the first of the body's result, the
/// deadline and a cancellation; later ones are dropped. Any thread may give.
private final class DeadlineAnswer<T: Sendable>: Sendable {
    private struct State {
        var continuation: CheckedContinuation<T, any Error>?
        /// Given before the continuation was set (a cancellation that came first).
        var early: Result<T, any Error>?
        var done = false
        var work: Task<Void, Never>?
        var timer: Task<Void, Never>?
    }
    private let state = Mutex(State())

    func wait(with continuation: CheckedContinuation<T, any Error>) {
        let early = state.withLock { state -> Result<T, any Error>? in
            if let early = state.early {
                state.early = nil
                return early
            }
            state.continuation = continuation
            return nil
        }
        if let early { continuation.resume(with: early) }
    }

    /// The body's task (cancelled when the answer is a deadline or a cancellation) and the
    /// deadline's (cancelled once there is an answer).
    func setTasks(work: Task<Void, Never>, timer: Task<Void, Never>) {
        let finished = state.withLock { state in
            state.work = work
            state.timer = timer
            return state.done
        }
        if finished {
            work.cancel()
            timer.cancel()
        }
    }

    func give(_ result: Result<T, any Error>) {
        let (continuation, tasks) = state.withLock { state -> (CheckedContinuation<T, any Error>?, [Task<Void, Never>]) in
            guard !state.done else { return (nil, []) }
            state.done = true
            let tasks = [state.work, state.timer].compactMap { $0 }
            guard let continuation = state.continuation else {
                state.early = result
                return (nil, tasks)
            }
            state.continuation = nil
            return (continuation, tasks)
        }
        for task in tasks { task.cancel() }  // a finished body's task: no effect
        continuation?.resume(with: result)
    }
}

extension Result where Failure == any Error {
    /// The result of an async throwing body.
    init(catching body: () async throws -> Success) async {
        do {
            self = .success(try await body())
        } catch {
            self = .failure(error)
        }
    }
}
