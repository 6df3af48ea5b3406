import Foundation

/// Starting, connecting, stopping, and the token.
extension ClientEngine {
    /// Starts the run loop unless it runs; with `restart`, also after a failure or a close.
    func start() {
        guard runner == nil else { return }
        generation += 1
        policy.reset()
        let generation = self.generation
        setState(connectedBefore ? .reconnecting(attempt: 0, delay: .zero) : .connecting)
        runner = Task { await self.run(generation) }
    }

    /// Starts if needed and waits until connected, cutting a reconnect's backoff short; throws
    /// when the client fails or is closed first. A cancelled caller stops waiting (the client
    /// carries on connecting).
    func connect() async throws {
        start()
        if state.isConnected { return }
        // Waiting out the backoff between attempts: the next one goes now, the queue kept.
        backoffSleep?.cancel()
        if case .failed(let error) = state { throw error }
        try await park(until: .connected)
    }

    /// Stops the run loop, closes the connection (1000), ends every subscription and fails
    /// every waiting call with ``ChorusError/closed``.
    /// Ends the connection and every subscription and ``userMessageStream()`` (``close()``);
    /// `released` (the client was released) ends the state and event streams as well, which
    /// otherwise carry on across `close()` and a later `connect()`.
    func shutdown(released: Bool = false) {
        generation += 1
        runner?.cancel()
        let connection = self.connection
        self.connection = nil
        // A connect() after close() starts afresh (`connecting`), as the JavaScript SDK's does.
        connectedBefore = false
        stop(failingWith: .closed)
        if released {
            finish(&stateWatchers)
            finish(&eventWatchers)
        }
        connection?.close(code: 1000)
    }

    /// The client stops for good (``close()``, or the end of the connection without
    /// reconnects): waiting calls and queued publishes throw `error`, every subscription and
    /// ``userMessageStream()`` ends, and the state is ``ConnectionState/disconnected``.
    func stop(failingWith error: ChorusError) {
        runner = nil
        resume(.freshToken, with: error)
        lostConnection(failingWith: error)
        for (key, publish) in publishes {
            publishes[key] = nil
            publish.continuation.resume(throwing: error)
        }
        for (topic, state) in topics {
            for waiter in state.waiters.values { waiter.resume(throwing: error) }
            for handle in state.handles.values { handle.finish() }
            topics[topic] = nil
            keepPosition(of: topic, state)
        }
        finish(&userMessageWatchers)
        setState(.disconnected)
    }

    func finish<Element>(_ watchers: inout [Int: AsyncStream<Element>.Continuation]) {
        let finished = watchers
        watchers = [:]
        for watcher in finished.values { watcher.finish() }
    }

    /// Gives up until the app acts (from the run loop): subscribes waiting for a confirmation
    /// and queued publishes fail with `error`; confirmed subscriptions stay, to be sent again
    /// once a new token starts the client again.
    func fail(_ error: ChorusError) {
        runner = nil
        for (topic, state) in topics {
            guard state.everConfirmed else {
                for waiter in state.waiters.values { waiter.resume(throwing: error) }
                for handle in state.handles.values { handle.finish() }
                topics[topic] = nil
                continue
            }
            // A subscriber added to a live topic meanwhile: its call throws, and its handle
            // goes with the stream it never got.
            topics[topic]?.waiters = [:]
            for waiter in state.waiters.values { waiter.resume(throwing: error) }
        }
        for (key, publish) in publishes {
            publishes[key] = nil
            publish.continuation.resume(throwing: error)
        }
        setState(.failed(error))
    }

    func setToken(_ new: String) {
        token = new
        tokenGeneration += 1
        // The expiry known is the replaced token's.
        tokenExpiresAt = nil
        if authenticated, let connection {
            presentedTokenGeneration = tokenGeneration
            sendAuth(new, ahead: false, on: connection)
        } else if case .failed = state {
            start()
        }
    }
}
