import Synchronization

/// A call that answers within a deadline whether or not the work under it does.
///
/// A task group that races work against a timer still waits for the work to end, and a
/// database library does not always end a query when its task is cancelled (a connection to a
/// server that stopped answering mid-query). Here the work runs in a task of its own: the caller
/// gets the work's result or `expired()`, whichever comes first, and the work, cancelled, ends
/// when it can without holding the caller (or a route, or shutdown) any longer.
enum RequestDeadline {
    static func run<T: Sendable>(
        _ timeout: Duration, expired: @escaping @Sendable () -> any Error,
        _ work: @escaping @Sendable () async throws -> T
    ) async throws -> T {
        let outcome = Outcome<T>()
        let worker = Task {
            do {
                outcome.resume(.success(try await work()))
            } catch {
                outcome.resume(.failure(error))
            }
        }
        let timer = Task {
            try? await Task.sleep(for: timeout)
            guard !Task.isCancelled, outcome.resume(.failure(expired())) else { return }
            worker.cancel()
        }
        defer { timer.cancel() }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { outcome.wait($0) }
        } onCancel: {
            if outcome.resume(.failure(CancellationError())) { worker.cancel() }
        }
    }
}

/// The first result handed to it, delivered once to the one waiter, whichever comes first.
/// Any thread may call either method.
private final class Outcome<T: Sendable>: Sendable {
    private enum State {
        case empty
        case waiting(CheckedContinuation<T, any Error>)
        case decided(Result<T, any Error>)
        case delivered
    }

    private let state = Mutex<State>(.empty)

    func wait(_ continuation: CheckedContinuation<T, any Error>) {
        let decided = state.withLock { state -> Result<T, any Error>? in
            guard case .decided(let result) = state else {
                state = .waiting(continuation)
                return nil
            }
            state = .delivered
            return result
        }
        if let decided { continuation.resume(with: decided) }
    }

    /// Decides the outcome unless it is decided already; true when this call decided it.
    @discardableResult
    func resume(_ result: Result<T, any Error>) -> Bool {
        let (decided, waiter) = state.withLock { state -> (Bool, CheckedContinuation<T, any Error>?) in
            switch state {
            case .empty:
                state = .decided(result)
                return (true, nil)
            case .waiting(let continuation):
                state = .delivered
                return (true, continuation)
            case .decided, .delivered:
                return (false, nil)
            }
        }
        waiter?.resume(with: result)
        return decided
    }
}
