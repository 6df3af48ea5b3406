/// How a connection ended, as ``ReconnectPolicy`` sees it.
enum ConnectionEnding: Sendable, Equatable {
    /// An established connection closed, with the node's close code if it sent one (1001: the
    /// node is draining).
    case closed(code: UInt16?)
    /// No connection: TCP refused, the upgrade failed or was refused with a status other than 401.
    case connectFailed
    /// The token was refused: HTTP 401 at the upgrade, or `auth_error`.
    case authRefused(code: Int, message: String)
    /// A new token on the open connection was another user's (`auth_error` 409): that user
    /// connects afresh.
    case tokenOfAnotherUser
}

/// What to do after a ``ConnectionEnding``.
enum ReconnectDecision: Sendable, Equatable {
    /// Connect again after `delay`, asking the token provider for a new token first when
    /// `refreshToken` is true.
    case reconnect(after: Duration, attempt: Int, refreshToken: Bool)
    /// Give up until the app supplies a new token.
    case stop(ChorusError)
}

/// The reconnection rules, as a pure value (no clock, no sockets, no randomness of its own):
/// capped exponential backoff with full jitter (attempt `n` waits `random * min(max, min *
/// factor^n)`), reset once a connection has stayed up for `stableAfter`; an immediate
/// reconnect after a node's 1001 drain; one immediate retry with a fresh token after a refused
/// token (HTTP 401 at the upgrade, `auth_error`, or a close with 4001), and no loop
/// after that.
///
/// Owned by the client's engine actor.
struct ReconnectPolicy: Sendable {
    var minimumDelay: Duration
    var maximumDelay: Duration
    var factor: Double
    var stableAfter: Duration

    /// Failed attempts since the last stable connection.
    private(set) var attempt = 0
    /// When the current connection authenticated, if it did.
    private var connectedAt: ContinuousClock.Instant?
    /// A refused token has been answered by one retry with a fresh token.
    private var retriedAuthentication = false

    init(minimumDelay: Duration, maximumDelay: Duration, factor: Double, stableAfter: Duration) {
        self.minimumDelay = minimumDelay
        self.maximumDelay = maximumDelay
        self.factor = factor
        self.stableAfter = stableAfter
    }

    /// The connection authenticated at `now`.
    mutating func connected(at now: ContinuousClock.Instant) {
        connectedAt = now
        retriedAuthentication = false
    }

    /// The app supplied a new token or asked to connect again: start from scratch.
    mutating func reset() {
        attempt = 0
        connectedAt = nil
        retriedAuthentication = false
    }

    /// The delay of attempt `attempt` (0-based) for a `random` value in 0..<1.
    func delay(attempt: Int, random: Double) -> Duration {
        let exponential = minimumDelay * pow(factor, Double(min(attempt, 60)))
        let ceiling = min(maximumDelay, exponential)
        return ceiling * max(0, min(random, 1))
    }

    /// Decides what follows `ending` at `now`. `canRefreshToken` is true when a token provider
    /// is configured; `random` is a value in 0..<1 for the jitter.
    mutating func next(
        after ending: ConnectionEnding, now: ContinuousClock.Instant, canRefreshToken: Bool, random: Double
    ) -> ReconnectDecision {
        if let connectedAt, connectedAt.duration(to: now) >= stableAfter { attempt = 0 }
        let wasConnected = connectedAt != nil
        connectedAt = nil
        var ending = ending
        if case .closed(let code?) = ending, code == 4001 {
            // The node's close for an expired token that was not replaced: not retried with the same token.
            ending = .authRefused(code: Int(code), message: "connection closed with \(code)")
        }
        switch ending {
        case .authRefused(let code, let message):
            guard canRefreshToken, !retriedAuthentication else {
                return .stop(.authenticationFailed(code: code, message: message))
            }
            retriedAuthentication = true
            return .reconnect(after: .zero, attempt: attempt + 1, refreshToken: true)
        case .tokenOfAnotherUser:
            return .reconnect(after: .zero, attempt: attempt, refreshToken: false)
        case .closed(code: 1001) where wasConnected:
            // The node drains: another one (through the load balancer) takes us at once.
            return .reconnect(after: .zero, attempt: attempt + 1, refreshToken: canRefreshToken)
        case .closed, .connectFailed:
            let delay = delay(attempt: attempt, random: random)
            attempt += 1
            return .reconnect(after: delay, attempt: attempt, refreshToken: canRefreshToken)
        }
    }
}

private func pow(_ base: Double, _ exponent: Double) -> Double {
    var result = 1.0
    for _ in 0..<Int(exponent) { result *= base }
    return result
}
