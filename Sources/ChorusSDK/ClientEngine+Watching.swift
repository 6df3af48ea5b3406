import Foundation

/// What the app watches (state, events, messages to the user) and callers parked until something happens.
extension ClientEngine {
    func currentState() -> ConnectionState { state }

    /// The topic's own subscription's position, else the furthest a pattern delivered.
    func position(of topic: String) -> StreamPosition? {
        topics[topic]?.positions[topic] ?? topics.values.compactMap { $0.positions[topic] }.max { $0.offset < $1.offset }
            ?? leftPositions[topic]
    }

    func stateStream() -> AsyncStream<ConnectionState> {
        let (stream, continuation) = AsyncStream.makeStream(of: ConnectionState.self)
        let id = newId()
        stateWatchers[id] = continuation
        continuation.yield(state)
        continuation.onTermination = { _ in Task { await self.dropStateWatcher(id) } }
        return stream
    }

    func eventStream() -> AsyncStream<ClientEvent> {
        let (stream, continuation) = AsyncStream.makeStream(of: ClientEvent.self)
        let id = newId()
        eventWatchers[id] = continuation
        continuation.onTermination = { _ in Task { await self.dropEventWatcher(id) } }
        return stream
    }

    func userMessageStream() -> AsyncStream<ChorusMessage> {
        let (stream, continuation) = AsyncStream.makeStream(
            of: ChorusMessage.self, bufferingPolicy: .bufferingOldest(configuration.messageBufferLimit))
        let id = newId()
        userMessageWatchers[id] = continuation
        continuation.onTermination = { _ in Task { await self.dropUserMessageWatcher(id) } }
        return stream
    }

    func dropUserMessageWatcher(_ id: Int) { userMessageWatchers[id] = nil }
    func dropStateWatcher(_ id: Int) { stateWatchers[id] = nil }
    func dropEventWatcher(_ id: Int) { eventWatchers[id] = nil }

    func setState(_ new: ConnectionState) {
        guard new != state else { return }
        state = new
        for watcher in stateWatchers.values { watcher.yield(new) }
        switch new {
        case .connected:
            resume(.connected, with: nil)
        case .failed(let error):
            resume(.connected, with: error)
        case .disconnected:
            resume(.connected, with: ChorusError.closed)
        case .connecting, .reconnecting:
            break
        }
    }

    func emit(_ event: ClientEvent) {
        for watcher in eventWatchers.values { watcher.yield(event) }
    }

    /// Resumes the callers parked for `wait`: with `error` thrown, or returning.
    func resume(_ wait: Wait, with error: (any Error)?) {
        let resumed = waiters.filter { $0.value.wait == wait }
        for id in resumed.keys { waiters[id] = nil }
        for (_, waiter) in resumed {
            if let error { waiter.continuation.resume(throwing: error) } else { waiter.continuation.resume() }
        }
    }

    /// Parks the caller until ``resume(_:with:)`` for `wait`; a cancelled caller stops waiting.
    func park(until wait: Wait) async throws {
        let id = newId()
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                if Task.isCancelled {
                    continuation.resume(throwing: CancellationError())
                } else {
                    waiters[id] = (wait, continuation)
                }
            }
        } onCancel: {
            Task { await self.unpark(id) }
        }
    }

    func unpark(_ id: Int) {
        waiters.removeValue(forKey: id)?.continuation.resume(throwing: CancellationError())
    }
}
