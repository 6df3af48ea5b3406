import Synchronization

/// A value computed at most once per `maxAge`, however many callers ask at once: callers
/// within `maxAge` of the last computation get its result, and callers arriving while one is
/// under way wait for that one instead of starting their own. `GET /stats?scope=cluster` reads
/// the cluster directory through it, so the directory is read at most once a second whatever
/// the request rate.
///
/// Thread-safe: the state is behind a mutex; `compute` runs in an unstructured task, so a
/// caller that is cancelled does not cancel the computation the others wait for.
final class CachedValue<Value: Sendable>: Sendable {
    private struct State {
        var value: Value?
        var computedAt: ContinuousClock.Instant?
        var running: (task: Task<Value, Never>, startedAt: ContinuousClock.Instant)?
    }

    private enum Step {
        case cached(Value)
        case wait(Task<Value, Never>)
    }

    private let maxAge: Duration
    private let compute: @Sendable () async -> Value
    private let state = Mutex(State())

    init(maxAge: Duration, compute: @escaping @Sendable () async -> Value) {
        self.maxAge = maxAge
        self.compute = compute
    }

    /// The cached value if it was computed less than `maxAge` before `now`, else a fresh one.
    func get(now: ContinuousClock.Instant = .now) async -> Value {
        let step: Step = state.withLock { state in
            if let value = state.value, let at = state.computedAt, now - at < maxAge {
                return .cached(value)
            }
            if let running = state.running { return .wait(running.task) }
            let compute = self.compute
            let task = Task { await compute() }
            state.running = (task, now)
            return .wait(task)
        }
        switch step {
        case .cached(let value):
            return value
        case .wait(let task):
            let value = await task.value
            state.withLock { state in
                if let running = state.running, running.task == task {
                    state.running = nil
                    state.value = value
                    state.computedAt = running.startedAt
                }
            }
            return value
        }
    }
}
