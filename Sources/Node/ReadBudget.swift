import NIOCore

/// `WEBSOCKET_MAX_BYTES_PER_SECOND`: how many bytes of messages one connection may make the
/// node handle a second, counted as handled (inflated, for a compressed message), whatever
/// becomes of them (dropped past the message rate too). A pure value: the time comes in, a
/// verdict goes out. Loop-bound: a value inside its ``WebSocketTransport``; the ``Limit`` is
/// the node's, kept once (``WebSocketSettings``) and passed in.
///
/// The message rate alone does not bound a client's cost: 100 messages a second of 1 MiB each
/// are 100 MiB of inflating, UTF-8 checking and parsing a second, and with permessage-deflate
/// they may arrive as 1 KB each. Past this budget the node does not drop anything: it stops
/// reading the connection until the debt is repaid, so TCP slows the client down and its
/// further bytes wait in the kernel. A token bucket of `burst` bytes (at least one message of
/// the largest size) refilled at `perSecond`.
struct ReadBudget {
    /// The budget every connection of a node has.
    struct Limit: Sendable {
        let perSecond: Int
        let burst: Int

        /// The burst is never below the rate, so a second's worth always gets through.
        init(perSecond: Int, burst: Int) {
            self.perSecond = perSecond
            self.burst = max(burst, perSecond)
        }
    }

    private var tokens: Double
    private var last: NIODeadline

    init(_ limit: Limit, now: NIODeadline = .now()) {
        self.tokens = Double(limit.burst)
        self.last = now
    }

    /// Charges a message of `bytes` handled at `now`: how long to stop reading when it overdrew
    /// the budget, nil while within it.
    mutating func charge(_ bytes: Int, now: NIODeadline, within limit: Limit) -> TimeAmount? {
        if now > last {
            tokens = min(Double(limit.burst), tokens + Double((now - last).nanoseconds) / 1e9 * Double(limit.perSecond))
            last = now
        }
        tokens -= Double(bytes)
        guard tokens < 0 else { return nil }
        return .nanoseconds(Int64((-tokens / Double(limit.perSecond) * 1e9).rounded(.up)))
    }

    /// The pause named by ``charge(_:now:within:)`` is over: the debt is repaid.
    mutating func repaid(now: NIODeadline) {
        tokens = max(tokens, 0)
        last = now
    }
}
