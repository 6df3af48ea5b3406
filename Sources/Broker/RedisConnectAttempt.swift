import NIOCore

/// The connect of one Redis connection on an event loop, until it has its channel: lets the
/// connection's owner close it while the host lookup or the TCP connect is still under way, so
/// that a link that stops leaves no socket opening behind it (a connect to a host that drops
/// the SYN would otherwise go on until its timeout, after the link's `stop()` returned).
///
/// **Ownership.** Made by ``RedisReplyHandler/connect(_:timeout:on:)`` and kept by the
/// connection's receiver until the connect completes; used on the connection's event loop only.
final class RedisConnectAttempt {
    /// The channel registered for the TCP connect: nil during the lookup and once the connect
    /// has completed.
    var channel: (any Channel)?
    /// Set by ``abandon()``: no connect starts after the lookup.
    private(set) var abandoned = false

    /// Ends the attempt: a connect under way is closed (which fails it), and none starts after
    /// a lookup still running. The future completes once the socket is closed; nil when none
    /// is open.
    func abandon() -> EventLoopFuture<Void>? {
        abandoned = true
        defer { channel = nil }
        return channel?.close()
    }
}
