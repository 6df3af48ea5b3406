import Foundation

/// Renewing the token ahead of its expiry, and authenticating again.
extension ClientEngine {
    /// Asks the provider for a fresh token ``ChorusClient/Configuration/renewBefore`` before
    /// the one just accepted expires (`expiresIn`, milliseconds), so that the node never pauses
    /// delivery: the messages of that pause would not reach this connection.
    func scheduleRenewal(_ expiresIn: Int?, on connection: WebSocketConnection) {
        renewal?.cancel()
        renewal = nil
        // Known whenever the node says, for a `connect()` after `close()` (``currentToken(refresh:)``).
        tokenExpiresAt = expiresIn.map { .now + .milliseconds($0) }
        guard let expiresIn, tokenProvider != nil, let ahead = configuration.renewBefore, ahead > .zero else { return }
        let left = Duration.milliseconds(expiresIn)
        renew(after: left - min(ahead, left / 2), on: connection)
    }

    func renew(after delay: Duration, on connection: WebSocketConnection) {
        renewal = Task {
            do { try await Task.sleep(for: delay) } catch { return }
            await self.renewAhead(on: connection)
        }
    }

    func renewAhead(on connection: WebSocketConnection) async {
        guard let tokenProvider, self.connection === connection, canSend else { return }
        let current = token
        var fresh: String?
        do {
            fresh = try await askProvider(tokenProvider)
        } catch is CancellationError where Task.isCancelled {
            return  // the connection ended, or a newer renewal took over: nothing went wrong
        } catch {
            emit(.error((error as? ChorusError) ?? .tokenUnavailable(message: "\(error)")))
        }
        // Closed meanwhile (the next connection asks anyway), expired meanwhile (the
        // `auth_expired` path renews), or a `setToken(_:)` re-authenticated with its own token.
        guard self.connection === connection, canSend, token == current else { return }
        guard let fresh, fresh != current else {
            // The provider failed, or handed back the token in use (a cache that renews later):
            // asked again at half the time left, until 2 s before; then `auth_expired` renews.
            if let expiresAt = tokenExpiresAt, expiresAt - .now >= .seconds(2) {
                renew(after: (expiresAt - .now) / 2, on: connection)
            }
            return
        }
        token = fresh
        sendAuth(fresh, ahead: true, on: connection)
    }

    /// Authenticates again on the open `connection` with `token`.
    func sendAuth(_ token: String, ahead: Bool, on connection: WebSocketConnection, attempt: Int = 0) {
        let id = newId()
        awaited[id] = .auth(ahead: ahead, token: token, attempt: attempt)
        send(["type": "auth", "token": .string(token), "id": .integer(Int64(id))], on: connection)
    }

    /// After `auth_expired`: a fresh token from the provider, sent on the open `connection`.
    /// A provider that fails is asked again after the reconnect backoff's delays (jittered)
    /// while the connection waits for a token, so delivery resumes once it answers,
    /// not only at the node's 4001 close (`JWT_RENEWAL_GRACE`) and the reconnect after it.
    func refreshAuthentication(on connection: WebSocketConnection, attempt: Int = 0) async {
        // Not when a `setToken(_:)` re-authenticated meanwhile, or the connection ended.
        guard let tokenProvider, self.connection === connection, tokenExpired else { return }
        let generation = tokenGeneration
        do {
            let fresh = try await askProvider(tokenProvider)
            // A `setToken(_:)` meanwhile authenticated with the application's token.
            guard generation == tokenGeneration else { return }
            token = fresh
            guard self.connection === connection, authenticated else { return }
            sendAuth(fresh, ahead: false, on: connection)
        } catch is CancellationError {
            return  // a renewal of its own, or the connection's end, took over
        } catch {
            emit(.error((error as? ChorusError) ?? .tokenUnavailable(message: "\(error)")))
            guard self.connection === connection, tokenExpired else { return }
            // Jittered as reconnects are: clients whose tokens expired together (after a stall)
            // do not ask a provider that is down all at the same moments.
            let delay = policy.delay(attempt: attempt, random: configuration.random())
            renewal?.cancel()
            renewal = Task {
                do { try await Task.sleep(for: delay) } catch { return }
                await self.refreshAuthentication(on: connection, attempt: attempt + 1)
            }
        }
    }
}
