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
/// Loop-bound: a value inside its ``WebSocketTransport``. The ``Rate`` is the node's, kept once
/// (``WebSocketSettings``) and passed in, so that a connection holds only its own state.
struct MessageRateLimiter {
    enum Verdict: Equatable {
        /// Within the rate: handle the message.
        case allow
        /// Over the rate: drop the message.
        case drop
        /// Over the rate for too long: close the connection.
        case flood
    }

    /// The rate every connection of a node has.
    struct Rate: Sendable {
        let perSecond: Int

        /// Messages past the rate a client may send before it counts as flooding.
        var floodAllowance: Int { MessageRateLimiter.floodAllowance(perSecond) }
    }

    /// Seconds' worth of the rate a client may send past it before it counts as a flood.
    static let floodSeconds = 10
    /// The smallest flood allowance, so that a low rate still forgives a burst.
    static let minimumFloodAllowance = 1_000

    private var tokens: Double
    private var allowance: Double
    private var last: NIODeadline
    /// When the client was last told its messages are dropped (`distantPast`: never).
    private var warnedAt = NIODeadline.distantPast

    init(_ rate: Rate, now: NIODeadline = .now()) {
        self.tokens = Double(rate.perSecond)
        self.allowance = Double(rate.floodAllowance)
        self.last = now
    }

    static func floodAllowance(_ perSecond: Int) -> Int {
        max(perSecond * floodSeconds, minimumFloodAllowance)
    }

    /// The verdict on one message arriving at `now`.
    mutating func admit(now: NIODeadline, at rate: Rate) -> Verdict {
        if now > last {
            let refill = Double((now - last).nanoseconds) / 1e9 * Double(rate.perSecond)
            tokens = min(Double(rate.perSecond), tokens + refill)
            allowance = min(Double(rate.floodAllowance), allowance + refill)
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
        if warnedAt != .distantPast, now - warnedAt < .seconds(1) { return false }
        warnedAt = now
        return true
    }
}
