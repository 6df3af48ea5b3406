import Synchronization

/// One call of the token provider, given up after a deadline: a provider that never answers (a
/// fetch without a timeout on a dead network) fails as one that throws, so the client asks again
/// after its backoff instead of waiting in `connecting` for good. The provider's task is
/// cancelled at the deadline and its late answer dropped; the caller does not wait for it.
enum TokenRequest {
    static func ask(
        _ provider: @escaping ClientEngine.TokenProvider, within limit: Duration
    ) async throws -> String {
        let answer = Answer()
        let asking = Task {
            do { answer.settle(.success(try await provider())) } catch { answer.settle(.failure(error)) }
        }
        let deadline = Task {
            do { try await Task.sleep(for: limit) } catch { return }
            answer.settle(.failure(ChorusError.tokenUnavailable(message: "no answer within \(limit)")))
        }
        defer {
            asking.cancel()
            deadline.cancel()
        }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { answer.wait(with: $0) }
        } onCancel: {
            answer.settle(.failure(CancellationError()))
        }
    }

    /// The first outcome of the provider, the deadline or a cancellation, kept until the caller
    /// waits for it (any of them may come first).
    private final class Answer: Sendable {
        private enum State {
            case pending
            case waiting(CheckedContinuation<String, any Error>)
            case settled(Result<String, any Error>)
            case done
        }
        private let state = Mutex(State.pending)

        func settle(_ outcome: Result<String, any Error>) {
            let waiter: CheckedContinuation<String, any Error>? = state.withLock { state in
                switch state {
                case .pending:
                    state = .settled(outcome)
                    return nil
                case .waiting(let continuation):
                    state = .done
                    return continuation
                case .settled, .done:
                    return nil
                }
            }
            waiter?.resume(with: outcome)
        }

        func wait(with continuation: CheckedContinuation<String, any Error>) {
            let ready: Result<String, any Error>? = state.withLock { state in
                if case .settled(let outcome) = state {
                    state = .done
                    return outcome
                }
                state = .waiting(continuation)
                return nil
            }
            if let ready { continuation.resume(with: ready) }
        }
    }
}
