import NIOCore

/// A connection's message rate, `WEBSOCKET_MAX_MESSAGES_PER_SECOND`, and what happens to a
/// client that keeps sending past it. A pure value: the time comes in, a verdict goes out.
///
/// Every message and control frame a client sends counts (text, binary, ping, pong; a
/// fragmented message once): a flood of pings costs the node as much as a flood of requests.
/// Within the rate, a token bucket of `perSecond` tokens (the burst) refilled at `perSecond` a
/// second. Past it the message is dropped, and counted against a flood allowance: ten seconds'
/// worth of the rate (at least 1,000 messages), refilled at the same `perSecond`. A client whose
/// dropped messages use up the allowance is flooding and is closed (1008). So a client may send
/// up to twice the rate for as long as it likes (half of it dropped); at three times the rate
/// it is closed after about ten seconds, and one sending as fast as it can after its first
/// thousand or so dropped messages, a few milliseconds.
///
/// Loop-bound: a value inside its ``WebSocketTransport``.
struct MessageRateLimiter {
    enum Verdict: Equatable {
        /// Within the rate: handle the message.
        case allow
        /// Over the rate: drop the message.
        case drop
        /// Over the rate for too long: close the connection.
        case flood
    }

    /// Seconds' worth of the rate a client may send past it before it counts as a flood.
    static let floodSeconds = 10
    /// The smallest flood allowance, so that a low rate still forgives a burst.
    static let minimumFloodAllowance = 1_000

    let perSecond: Int
    private var tokens: Double
    private var allowance: Double
    private var last: NIODeadline
    private var warnedAt: NIODeadline?

    init(perSecond: Int, now: NIODeadline = .now()) {
        self.perSecond = perSecond
        self.tokens = Double(perSecond)
        self.allowance = Double(Self.floodAllowance(perSecond))
        self.last = now
    }

    static func floodAllowance(_ perSecond: Int) -> Int {
        max(perSecond * floodSeconds, minimumFloodAllowance)
    }

    /// The verdict on one message arriving at `now`.
    mutating func admit(now: NIODeadline) -> Verdict {
        if now > last {
            let refill = Double((now - last).nanoseconds) / 1e9 * Double(perSecond)
            tokens = min(Double(perSecond), tokens + refill)
            allowance = min(Double(Self.floodAllowance(perSecond)), allowance + refill)
            last = now
        }
        if tokens >= 1 {
            tokens -= 1
            return .allow
        }
        allowance -= 1
        return allowance < 0 ? .flood : .drop
    }

    /// True at most once a second, for telling a client its messages are dropped without the
    /// telling becoming a flood of its own.
    mutating func shouldWarn(now: NIODeadline) -> Bool {
        if let warnedAt, now - warnedAt < .seconds(1) { return false }
        warnedAt = now
        return true
    }
}
