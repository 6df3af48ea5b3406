import Synchronization

/// Who may use the open database, and when.
///
/// The store's `run()` opens the gate with the database once it is migrated, and before closing
/// the database closes the gate and waits until the requests already inside have left. A request
/// that arrives before the gate opens waits for it, at most a given time. All state sits behind
/// one `Mutex`; waiters are continuations resumed outside the lock. Any thread may call any method.
final class StoreGate<Database: Sendable>: Sendable {
    private enum State {
        /// Not open yet; the waiters are resumed when it opens or fails.
        case starting(waiters: [Int: CheckedContinuation<Void, Never>])
        /// Open; `inside` requests are using the database.
        case open(Database, inside: Int)
        /// Closing: no request gets in; `drained` is resumed when the last one leaves.
        case closing(inside: Int, drained: CheckedContinuation<Void, Never>?)
        /// Failed to open, or closed: every request throws this.
        case shut(StoreError)
    }

    private let state = Mutex<State>(.starting(waiters: [:]))
    private let nextWaiter = Atomic<Int>(0)

    /// Lets requests in.
    func open(_ database: Database) {
        let waiters = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            guard case .starting(let waiters) = state else { return [] }
            state = .open(database, inside: 0)
            return Array(waiters.values)
        }
        waiters.forEach { $0.resume() }
    }

    /// Turns every request, waiting or to come, away with `error`: after a failed start, or
    /// once ``close()`` has returned.
    func shut(_ error: StoreError) {
        let (waiters, drained) = state.withLock { state -> ([CheckedContinuation<Void, Never>], CheckedContinuation<Void, Never>?) in
            defer { state = .shut(error) }
            switch state {
            case .starting(let waiters): return (Array(waiters.values), nil)
            case .closing(_, let drained): return ([], drained)
            case .open, .shut: return ([], nil)
            }
        }
        waiters.forEach { $0.resume() }
        drained?.resume()
    }

    /// Lets no new request in and returns once the requests inside have left.
    func close() async {
        await withCheckedContinuation { (drained: CheckedContinuation<Void, Never>) in
            let done = state.withLock { state -> Bool in
                guard case .open(_, let inside) = state, inside > 0 else {
                    if case .open = state { state = .closing(inside: 0, drained: nil) }
                    return true
                }
                state = .closing(inside: inside, drained: drained)
                return false
            }
            if done { drained.resume() }
        }
    }

    /// Runs `body` with the database once the gate is open, waiting for that at most `timeout`.
    func withDatabase<T>(waitingAtMost timeout: Duration, _ body: (Database) async throws -> T) async throws -> T {
        let database = try await enter(waitingAtMost: timeout)
        defer { leave() }
        return try await body(database)
    }

    /// Returns once the gate is open; throws the error it was shut with. No time limit.
    func waitUntilOpen() async throws {
        while try !isOpen() {
            await waitForChange()
            try Task.checkCancellation()
        }
    }

    // MARK: - Entering and leaving

    private func enter(waitingAtMost timeout: Duration) async throws -> Database {
        if let database = try tryEnter() { return database }
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await self.waitUntilOpen() }
            group.addTask {
                try await Task.sleep(for: timeout)
                throw StoreError.unavailable("the database is not open yet (waited \(timeout))")
            }
            defer { group.cancelAll() }
            _ = try await group.next()
        }
        guard let database = try tryEnter() else {
            throw StoreError.unavailable("the database is not open yet (waited \(timeout))")
        }
        return database
    }

    /// The database, counted as used, if the gate is open; nil while starting.
    private func tryEnter() throws -> Database? {
        try state.withLock { state in
            switch state {
            case .open(let database, let inside):
                state = .open(database, inside: inside + 1)
                return database
            case .starting:
                return nil
            case .closing:
                throw StoreError.unavailable("the store is shutting down")
            case .shut(let error):
                throw error
            }
        }
    }

    private func leave() {
        let drained = state.withLock { state -> CheckedContinuation<Void, Never>? in
            switch state {
            case .open(let database, let inside):
                state = .open(database, inside: inside - 1)
                return nil
            case .closing(let inside, let drained):
                guard inside == 1 else {
                    state = .closing(inside: inside - 1, drained: drained)
                    return nil
                }
                state = .closing(inside: 0, drained: nil)
                return drained
            case .starting, .shut:
                return nil
            }
        }
        drained?.resume()
    }

    /// True when open, false while starting; throws when closing or shut.
    private func isOpen() throws -> Bool {
        try state.withLock { state in
            switch state {
            case .open: return true
            case .starting: return false
            case .closing: throw StoreError.unavailable("the store is shutting down")
            case .shut(let error): throw error
            }
        }
    }

    /// Returns when the gate leaves `starting`, or at once if it has, or when the task is cancelled.
    private func waitForChange() async {
        let id = nextWaiter.add(1, ordering: .relaxed).newValue
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let waiting = state.withLock { state -> Bool in
                    guard case .starting(var waiters) = state, !Task.isCancelled else { return false }
                    waiters[id] = continuation
                    state = .starting(waiters: waiters)
                    return true
                }
                if !waiting { continuation.resume() }
            }
        } onCancel: {
            let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
                guard case .starting(var waiters) = state, let waiter = waiters.removeValue(forKey: id) else { return nil }
                state = .starting(waiters: waiters)
                return waiter
            }
            waiter?.resume()
        }
    }
}
