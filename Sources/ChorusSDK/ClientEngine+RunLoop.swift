import Foundation

/// The run loop: connecting with backoff, serving one connection, liveness, and losing it.
extension ClientEngine {
    func run(_ generation: Int) async {
        var refreshToken = false
        while !Task.isCancelled, generation == self.generation {
            // A `setToken(_:)` since the last token presented (during the backoff, say) is
            // newer than what the provider would answer: this attempt presents it as it is.
            if presentedTokenGeneration != tokenGeneration { refreshToken = false }
            let ending = await connectAndServe(refreshToken: refreshToken)
            guard !Task.isCancelled, generation == self.generation else { return }
            guard let ending else { return }  // failed or stopped inside
            if case .authRefused = ending, presentedTokenGeneration != tokenGeneration {
                // A `setToken(_:)` while the node read the refused token: its token is tried,
                // at once, as it is (the provider is not asked to replace it).
                refreshToken = false
                setState(.reconnecting(attempt: 0, delay: .zero))
                continue
            }
            guard configuration.reconnects else {
                stop(failingWith: .disconnected)
                return
            }
            switch policy.next(after: ending, now: .now, canRefreshToken: tokenProvider != nil, random: configuration.random()) {
            case .stop(let error):
                fail(error)
                return
            case .reconnect(let delay, let attempt, let refresh):
                refreshToken = refresh
                setState(.reconnecting(attempt: attempt, delay: delay))
                if delay > .zero {
                    await waitBackoff(delay)
                    guard !Task.isCancelled else { return }
                }
            }
        }
    }

    /// Waits out a reconnect's backoff, unless ``connect()`` ends the wait early (the app knows
    /// the network is back) or the run loop is cancelled.
    func waitBackoff(_ delay: Duration) async {
        let sleeper = Task<Void, Never> { try? await Task.sleep(for: delay) }
        backoffSleep = sleeper
        await withTaskCancellationHandler { await sleeper.value } onCancel: { sleeper.cancel() }
        if backoffSleep == sleeper { backoffSleep = nil }
    }

    /// One connection, from the token to its end; nil when the client stopped (failed or
    /// cancelled) meanwhile.
    func connectAndServe(refreshToken: Bool) async -> ConnectionEnding? {
        let token: String
        do {
            token = try await currentToken(refresh: refreshToken)
        } catch is CancellationError {
            return nil
        } catch {
            let failure = (error as? ChorusError) ?? .tokenUnavailable(message: "\(error)")
            emit(.error(failure))
            // Without a provider nothing will bring a token; a provider that failed (its
            // server down, say) is asked again after the reconnect backoff.
            if tokenProvider == nil {
                fail(failure)
                return nil
            }
            return .connectFailed
        }
        presentedTokenGeneration = tokenGeneration
        let connection: WebSocketConnection
        do {
            connection = try await WebSocketConnection.connect(
                to: url, tls: tlsContext, headers: [("Authorization", "Bearer \(token)")],
                timeout: configuration.connectTimeout)
        } catch WebSocketConnection.Failure.upgradeRefused(let status, let body) {
            if status == 401 { return .authRefused(code: 401, message: Self.errorMessage(in: body)) }
            let refusal = ChorusError.upgradeRefused(status: status, body: Self.errorMessage(in: body))
            emit(.error(refusal))
            // No WebSocket at that path (404), a handshake or origin the node refuses (400,
            // 403): trying again cannot help. Past a limit (429), a node draining or full
            // (503), a proxy's 502: again after the backoff.
            if [400, 403, 404].contains(status) {
                fail(refusal)
                return nil
            }
            return .connectFailed
        } catch {
            return Task.isCancelled ? nil : .connectFailed
        }
        guard !Task.isCancelled else {
            connection.abort()
            return nil
        }
        self.connection = connection
        let pinger = startPinging(connection)
        let deadline = authenticationDeadline(connection)
        var closeCode: UInt16?
        var refused: ConnectionEnding?
        for await event in connection.events {
            // Closed meanwhile (``close()`` ran while this frame waited for the actor): what
            // the old connection still delivers is nobody's (an `auth_success` would read as
            // connected after the close).
            guard self.connection === connection else { break }
            switch event {
            case .text(let text):
                if let ending = receive(text, on: connection) {
                    refused = ending
                    connection.abort()
                }
            case .closed(let code):
                closeCode = code
            }
        }
        pinger?.cancel()
        deadline.cancel()
        if self.connection === connection {
            self.connection = nil
            if closeCode == 1009 { rejectTooBig() }
            lostConnection(failingWith: .disconnected)
        }
        authenticated = false
        return refused ?? .closed(code: closeCode)
    }

    /// The token for a new connection: the provider's, when asked to `refresh`, when there is
    /// none yet, or when the one kept has expired (a `connect()` long after a `close()`): an
    /// expired token is never presented.
    func currentToken(refresh: Bool) async throws -> String {
        let expired = tokenExpiresAt.map { $0 <= .now } ?? false
        if let tokenProvider, refresh || token == nil || expired {
            let generation = tokenGeneration
            let fresh = try await askProvider(tokenProvider)
            // A `setToken(_:)` meanwhile wins: the provider's answer is older.
            if generation != tokenGeneration, let token { return token }
            token = fresh
            tokenExpiresAt = nil
            return fresh
        }
        if let token { return token }
        throw ChorusError.tokenUnavailable(message: "no token and no token provider")
    }

    /// The provider's answer within ``ChorusClient/Configuration/connectTimeout`` (``TokenRequest``).
    func askProvider(_ provider: @escaping TokenProvider) async throws -> String {
        try await TokenRequest.ask(provider, within: configuration.connectTimeout)
    }

    static func errorMessage(in body: String) -> String {
        (try? JSONValue(parsing: body))?["message"]?.stringValue ?? body
    }

    /// Checks the connection every ``ChorusClient/Configuration/pingInterval`` (``checkAlive(_:)``).
    func startPinging(_ connection: WebSocketConnection) -> Task<Void, Never>? {
        guard let interval = configuration.pingInterval else { return nil }
        return Task {
            while !Task.isCancelled {
                do { try await Task.sleep(for: interval) } catch { return }
                guard self.connection === connection else { return }
                guard self.authenticated else { continue }
                guard let check = self.checkAlive(connection), await check.value else { return }
            }
        }
    }

    /// Drops `connection` when the node has not authenticated it within `connectTimeout` +
    /// `pongTimeout` of the upgrade (the client reconnects), with pings or without.
    func authenticationDeadline(_ connection: WebSocketConnection) -> Task<Void, Never> {
        let limit = configuration.connectTimeout + configuration.pongTimeout
        return Task {
            do { try await Task.sleep(for: limit) } catch { return }
            if self.connection === connection, !self.authenticated { connection.abort() }
        }
    }

    /// Pings the node on `connection` now (unless a check of it is under way) and tells whether
    /// it answered within ``ChorusClient/Configuration/pongTimeout``. Any reply counts, a
    /// refusal past the node's message rate too. No answer: the connection is dead without a
    /// close, and only aborting it ends it (its unanswered publishes go back to the queue, and
    /// the client reconnects). Nil when `connection` is not the current one.
    func checkAlive(_ connection: WebSocketConnection) -> Task<Bool, Never>? {
        guard self.connection === connection, authenticated else { return nil }
        if let liveness, liveness.connection === connection { return liveness.check }
        let pongTimeout = configuration.pongTimeout
        let check = Task<Bool, Never> {
            let alive = await withTaskGroup(of: Bool?.self) { group in
                group.addTask {
                    do {
                        // The node answers pings also while the token is expired.
                        _ = try await self.request(["type": "ping"], on: connection, needsToken: false)
                        return true
                    } catch ChorusError.server {
                        return true
                    } catch {
                        return false
                    }
                }
                group.addTask {
                    try? await Task.sleep(for: pongTimeout)
                    return nil
                }
                let first = await group.next() ?? nil
                group.cancelAll()
                return first ?? false
            }
            self.livenessChecked(connection, alive: alive)
            return alive
        }
        liveness = (connection, check)
        return check
    }

    func livenessChecked(_ connection: WebSocketConnection, alive: Bool) {
        if liveness?.connection === connection { liveness = nil }
        if !alive, self.connection === connection { connection.abort() }
    }

    /// A publish got no reply within ``ChorusClient/Configuration/requestTimeout``: it throws
    /// ``ChorusError/timeout`` once the connection has answered a ping (alive: the node left
    /// it unanswered); a reply during that check still counts. On a dead connection it is not
    /// failed: the abort puts it back in the queue, sent again on the next connection.
    func publishTimedOut(_ id: Int, key: Int) {
        guard let connection, let check = checkAlive(connection) else { return failUnanswered(id, key: key) }
        Task {
            guard await check.value else { return }
            self.failUnanswered(id, key: key)
        }
    }

    /// Throws ``ChorusError/timeout`` from publish `key` if its request `id` is still unanswered.
    func failUnanswered(_ id: Int, key: Int) {
        guard case .publish(key, _)? = awaited[id] else { return }
        awaited[id] = nil
        publishes.removeValue(forKey: key)?.continuation.resume(throwing: ChorusError.timeout)
    }

    /// The node closed the connection with 1009: a frame was over its limit although under the
    /// one this client knew (a ``ChorusClient/Configuration/maxMessageSize`` set too high, a
    /// proxy's lower limit). Sent again, it would close every connection in turn: the largest
    /// publish sent on this connection and not acknowledged (the oldest of equals) is taken to
    /// be that frame and throws ``ChorusError/messageTooLarge(size:limit:)`` instead of going
    /// back to the queue. A subscribe or request over the limit is not recognised this way.
    func rejectTooBig() {
        let sent = publishes.filter { $0.value.requestId != nil }.sorted { $0.key < $1.key }
        let size = { (publish: QueuedPublish) in publish.head.utf8.count + publish.data.utf8.count }
        guard let largest = sent.max(by: { size($0.value) < size($1.value) || (size($0.value) == size($1.value) && $0.key > $1.key) }),
            let publish = publishes.removeValue(forKey: largest.key)
        else { return }
        if let id = publish.requestId, case .publish(_, let timer)? = awaited.removeValue(forKey: id) { timer?.cancel() }
        publish.continuation.resume(throwing: ChorusError.messageTooLarge(
            size: size(publish), limit: maxMessageSize ?? Self.defaultMaxMessageSize))
    }

    /// The connection ended: replies still awaited fail (publishes stay queued, subscriptions
    /// are sent again on the next connection).
    func lostConnection(failingWith error: ChorusError) {
        authenticated = false
        maxMessageSize = nil
        tokenExpired = false
        renewal?.cancel()
        renewal = nil
        // The next connection has a rate budget of its own: its queue goes out at once.
        publishPause?.cancel()
        publishPause = nil
        publishRefusals = 0
        resume(.freshToken, with: nil)
        let pending = awaited
        awaited = [:]
        for entry in pending.values {
            switch entry {
            case .request(let continuation, let timer):
                timer?.cancel()
                continuation.resume(throwing: error)
            case .publish(let key, let timer):
                timer?.cancel()
                publishes[key]?.requestId = nil
                publishes[key]?.rateRetries = 0
            case .subscribe(_, _, _, let timer), .catchUp(_, _, _, let timer):
                timer?.cancel()
            case .auth, .unsubscribe, .fence:
                break
            }
        }
        for topic in topics.keys {
            if topics[topic]?.confirmed == true {
                topics[topic]?.missedPresence = true
                topics[topic]?.reconnecting = true
            }
            topics[topic]?.confirmed = false
            topics[topic]?.inFlight = false
            topics[topic]?.awaitingPage = false
            topics[topic]?.retries = 0
            topics[topic]?.retry?.cancel()
            topics[topic]?.retry = nil
            // The next connection subscribes afresh with what the topic wants then.
            topics[topic]?.resendWhenAnswered = false
            topics[topic]?.resendWhenAuthenticated = false
            topics[topic]?.leaveFirst = false
            // A new connection is no member until it joins.
            topics[topic]?.leaving = false
            topics[topic]?.leaveInFlight = false
            topics[topic]?.catchUpOwed = false  // the next connection resubscribes with since
        }
        presenceLeave = false
        for entry in typing.values { entry.stopTimer?.cancel() }
        typing = [:]
    }

    /// The connection authenticated: subscribe everything again, from the last positions,
    /// then send the queued publishes in order.
    func didAuthenticate(as user: String, on connection: WebSocketConnection) {
        authenticated = true
        connectedBefore = true
        userId = user
        policy.connected(at: .now)
        sendWaiting(on: connection)
        setState(.connected(userId: user))
        // A `setToken(_:)` while the node read the upgrade's token: the connection authenticates
        // with it now (another user's token connects again as that user, a 409 as always).
        if presentedTokenGeneration != tokenGeneration, let token {
            presentedTokenGeneration = tokenGeneration
            sendAuth(token, ahead: false, on: connection)
        }
    }

    /// Sends the subscribes and publishes that wait for a usable connection, in order.
    func sendWaiting(on connection: WebSocketConnection) {
        for (topic, state) in topics.sorted(by: { $0.key < $1.key })
        where (!state.confirmed || state.resendWhenAuthenticated) && !state.inFlight {
            sendSubscribe(topic, on: connection)
        }
        guard publishPause == nil else { return }
        for (key, publish) in publishes.sorted(by: { $0.key < $1.key }) where publish.requestId == nil {
            sendPublish(key, on: connection)
        }
    }
}
