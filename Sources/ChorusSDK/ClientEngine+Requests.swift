import Foundation

/// Requests and their replies, deadlines, and resends after rate refusals.
extension ClientEngine {
    /// Sends `fields`, unless the frame is over the connection's limit: then nothing is sent
    /// (the node would close the connection with 1009, and again after each reconnect) and the
    /// error is returned.
    @discardableResult
    func send(_ fields: [String: JSONValue], on connection: WebSocketConnection) -> ChorusError? {
        let text = JSONValue.object(fields).jsonText
        if let error = oversize(text) { return error }
        connection.send(text)
        return nil
    }

    /// ``ChorusError/messageTooLarge(size:limit:)`` when `text` is over the connection's limit.
    func oversize(_ text: String) -> ChorusError? {
        guard let limit = maxMessageSize, text.utf8.count > limit else { return nil }
        return .messageTooLarge(size: text.utf8.count, limit: limit)
    }

    /// Sends `fields` with a new request id and returns the reply; throws the node's `error`,
    /// ``ChorusError/timeout`` or ``ChorusError/disconnected``.
    func request(
        _ fields: [String: JSONValue], on connection: WebSocketConnection, needsToken: Bool = true
    ) async throws -> [String: JSONValue] {
        guard self.connection === connection, needsToken ? canSend : authenticated else { throw ChorusError.disconnected }
        let id = newId()
        var fields = fields
        fields["id"] = .integer(Int64(id))
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                guard !Task.isCancelled else {
                    continuation.resume(throwing: CancellationError())
                    return
                }
                if let error = send(fields, on: connection) { return continuation.resume(throwing: error) }
                awaited[id] = .request(continuation, timer: timer(for: id))
            }
        } onCancel: {
            Task { await self.abandon(id, with: CancellationError()) }
        }
    }

    /// A request on the current connection, waiting for it first when the client is connecting.
    /// The guide's promise: a request made while the token is renewed waits for the fresh one,
    /// and so does one the node refused (401) because it crossed the token's expiry. Like a
    /// publish, it starts a client that was never started or was closed, but neither restarts a
    /// failed one (its token refused, say: it would present it again) nor cuts a reconnect's
    /// backoff short (``connect()`` does).
    func request(_ fields: [String: JSONValue]) async throws -> [String: JSONValue] {
        if case .failed(let error) = state { throw error }
        if runner == nil, case .disconnected = state { start() }
        if !state.isConnected { try await park(until: .connected) }
        var expiries = 0
        while true {
            while tokenExpired { try await park(until: .freshToken) }
            guard let connection, canSend else {
                // The connection ended meanwhile: wait for the next one, unless the client stopped.
                if case .failed(let error) = state { throw error }
                guard runner != nil else { throw ChorusError.disconnected }
                try await park(until: .connected)
                continue
            }
            do {
                return try await request(fields, on: connection)
            } catch ChorusError.server(code: 401, _, _) where expiries < 2 {
                expiries += 1
            }
        }
    }

    func timer(for id: Int) -> Task<Void, Never> {
        let timeout = configuration.requestTimeout
        return Task {
            do { try await Task.sleep(for: timeout) } catch { return }
            self.abandon(id, with: ChorusError.timeout)
        }
    }

    /// Stops waiting for request `id`'s reply (timeout or cancellation); a subscribe that timed
    /// out is sent again (``retrySubscribe(_:after:)``).
    func abandon(_ id: Int, with error: any Error) {
        guard let entry = awaited.removeValue(forKey: id) else { return }
        switch entry {
        case .request(let continuation, let timer):
            timer?.cancel()
            continuation.resume(throwing: error)
        case .publish(let key, let timer):
            timer?.cancel()
            if case .timeout? = error as? ChorusError {
                awaited[id] = .publish(key: key, timer: nil)  // a late reply still settles it
                return publishTimedOut(id, key: key)
            }
            publishes.removeValue(forKey: key)?.continuation.resume(throwing: error)
        case .subscribe(let topic, _, _, _):
            // Only its timer abandons a subscribe (a subscriber's cancellation does not).
            retrySubscribe(topic, after: .timeout)
        case .catchUp(let topic, let since, _, _):
            catchUpFailed(topic, since: since)
        case .auth, .unsubscribe, .fence:
            awaited[id] = entry
        }
    }

    /// How many times a subscribe is sent again on one connection before its topic ends.
    static let subscribeRetries = 5
    /// How many times a publish the node dropped past its message rate is sent again.
    static let rateRetries = 4
    /// The longest pause of publishing after rate refusals in a row.
    static let maximumPublishPause: Duration = .seconds(30)

    /// The wait a refusal names when the node dropped a request past its message rate (429
    /// with `details.retryAfter`, in ms); nil for any other error.
    static func retryAfter(of error: ChorusError) -> Duration? {
        guard case .server(code: 429, _, let details) = error, let milliseconds = details?["retryAfter"]?.intValue else { return nil }
        return .milliseconds(milliseconds)
    }

    /// How long to wait before sending again the `attempt`-th time a request the node dropped
    /// past its message rate (`error`): the wait it named, doubled per attempt and jittered (x1
    /// to x2), and no sooner than the slot after the last request sent again, spaced to two
    /// thirds of the node's `details.limit` a second. So a burst (a reconnect resubscribing
    /// hundreds of topics) drains instead of being dropped again until the node closes the
    /// connection for flooding. Nil when `error` is no rate refusal.
    func rateRetryDelay(_ error: ChorusError, attempt: Int, atLeast floor: Duration = .zero) -> Duration? {
        guard let wait = Self.retryAfter(of: error), case .server(_, _, let details) = error else { return nil }
        let now = ContinuousClock.now
        let at = max(now + max(floor, wait * (1 << (max(1, attempt) - 1)) * Double.random(in: 1...2)), rateNext)
        if let limit = details?["limit"]?.intValue, limit > 0 { rateNext = at + .milliseconds(1500 / limit) } else { rateNext = at }
        return at - now
    }

    /// Sends one queued publish again now, unless publishing is paused (the pause's end sends it).
    func resendPublish(_ key: Int, on connection: WebSocketConnection) {
        guard self.connection === connection, canSend, publishPause == nil, publishes[key]?.requestId == nil else { return }
        sendPublish(key, on: connection)
    }

    /// A publish was refused past the node's message rate: no publish goes out for the wait it
    /// named, doubled per refusal in a row and jittered (x1 to x2); then the queue goes out in
    /// order (``drainPaced(on:)``). So a publish sent again never lands behind one published
    /// after it, which its own retry would as long as later ones kept going out and being
    /// accepted.
    func pausePublishes(after error: ChorusError, wait: Duration, on connection: WebSocketConnection) {
        if case .server(_, _, let details) = error, let limit = details?["limit"]?.intValue, limit > 0 {
            publishBatch = max(1, limit * 2 / 3)
        }
        guard publishPause == nil else { return }
        publishRefusals += 1
        let delay = min(wait * (1 << min(publishRefusals - 1, 16)) * Double.random(in: 1...2), Self.maximumPublishPause)
        publishPause = Task {
            try? await Task.sleep(for: delay)
            // Cancelled with its connection: a pause of the next connection may be under way.
            guard !Task.isCancelled else { return }
            self.drainPaced(on: connection)
        }
    }

    /// The end of a rate refusal's pause: the queue's first two thirds of the node's limit now,
    /// the next as many a second later, until it is empty, so a long queue drains instead of
    /// being refused again.
    func drainPaced(on connection: WebSocketConnection) {
        publishPause = nil
        guard self.connection === connection, canSend else { return }
        let waiting = publishes.keys.sorted().filter { publishes[$0]?.requestId == nil }
        let batch = publishBatch ?? waiting.count
        for key in waiting.prefix(batch) { sendPublish(key, on: connection) }
        guard waiting.count > batch else { return }
        publishPause = Task {
            try? await Task.sleep(for: .seconds(1))
            guard !Task.isCancelled else { return }
            self.drainPaced(on: connection)
        }
    }

    /// A subscribe left unanswered for ``ClientConfiguration/requestTimeout`` (the node drops
    /// messages past `WEBSOCKET_MAX_MESSAGES_PER_SECOND` unanswered, e.g. a resubscription of
    /// many topics at once), or refused for now (``failed(_:with:)``): sent again on the same
    /// connection after the reconnect backoff's delays (without jitter), at most
    /// ``subscribeRetries`` times; then the topic ends with `error`. A 409 (the topic's history
    /// read still runs: the node is still answering an earlier subscribe of it, one whose answer
    /// was late, say) never ends it: sent again, at most 2 s apart, until that read ends, as the
    /// JavaScript SDK does.
    func retrySubscribe(_ topic: String, after error: ChorusError) {
        guard var state = topics[topic] else { return }
        state.inFlight = false
        let stillReading = if case .server(code: 409, _, _) = error { true } else { false }
        guard stillReading || state.retries < Self.subscribeRetries, let connection else {
            topics[topic] = state
            endTopic(topic, with: error)
            // An earlier attempt may still succeed on the node (a slow history read): undone.
            if authenticated, let connection { sendUnsubscribe(topic, on: connection) }
            return
        }
        state.retries += 1
        var backoff = min(configuration.maximumReconnectDelay, configuration.minimumReconnectDelay * (1 << min(state.retries - 1, 16)))
        if stillReading { backoff = min(backoff, .seconds(2)) }
        // After a rate refusal: not before the wait it names, paced with the other requests
        // sent again.
        let delay = rateRetryDelay(error, attempt: 1, atLeast: backoff) ?? backoff
        state.retry = Task {
            do { try await Task.sleep(for: delay) } catch { return }
            // Cancelled by a newer subscribe after the sleep ended but before this ran.
            guard !Task.isCancelled else { return }
            self.resendSubscribe(topic, on: connection)
        }
        topics[topic] = state
    }

    /// A retry's subscribe. Not only for a topic still unconfirmed: a join (or new presence
    /// data) of a live topic refused past the rate must go again too, or its caller waits for
    /// ever. A subscribe sent since then cancelled this retry (``sendSubscribe(_:on:)``).
    func resendSubscribe(_ topic: String, on connection: WebSocketConnection) {
        guard self.connection === connection, topics[topic] != nil else { return }
        // With a catch-up in flight, or the token expired meanwhile, it goes once that is
        // answered, or once a fresh token is: dropped here, a leave or a join never would.
        subscribeAgain(topic)
    }
}
