import NIOCore

/// The Sentinel watch's connection to one Sentinel, subscribed to `+switch-master`, from the
/// connect to its failure: a NIO channel on the link's event loop, behind TLS for a `rediss://`
/// Sentinel, whose replies hiredis parses (``RedisReplyHandler``).
///
/// **Ownership.** Created, used and closed on the link's loop only (not `Sendable`); its
/// callbacks run there too.
///
/// **Deadlines**, as on the link's subscriber: the handshake and `SUBSCRIBE` are written at
/// once and must be answered within `timeout` after the connect starts (the name lookup has
/// its own); a keepalive `PING` goes out after `pingInterval` without one, and must be answered
/// within `timeout`, or ``tend(now:)`` throws.
final class RedisSentinelSession: RedisReplyReceiver {
    let url: RedisURL
    private let timeout: Duration
    private let pingInterval: Duration
    private let clock = ContinuousClock()
    private var channel: (any Channel)?
    /// The connect, until it completes: closed with the session if it is still under way.
    private var attempt: RedisConnectAttempt?
    private var pendingOutput = ByteBuffer()
    /// Handshake commands whose reply has not been read yet.
    private var handshake: [String]
    /// The host name is being looked up (bounded by ``RedisHostResolver/lookupBound(_:)``
    /// from `created`): no deadline of ours yet.
    private var resolving = true
    private let created: ContinuousClock.Instant
    /// The `SUBSCRIBE` was answered: a switch announced from now on reaches this session.
    private(set) var isSubscribed = false
    /// When the request now unanswered (the `SUBSCRIBE`, then each keepalive) was sent.
    private var awaiting: ContinuousClock.Instant?
    private var lastAnswer: ContinuousClock.Instant
    /// Failed or closed: nothing more is reported.
    private var over = false

    /// The subscription is in place: a switch announced from now on reaches this session.
    var onSubscribed: (() -> Void)?
    /// A request was answered: the next keepalive is due ``nextDeadline``, later than the
    /// deadline the watch's timer waits for.
    var onAnswered: (() -> Void)?
    /// A `+switch-master` message (`<name> <old-ip> <old-port> <new-ip> <new-port>`).
    var onSwitch: ((String) -> Void)?
    /// Called once when the connection fails (refused, closed, unparsable, late).
    var onFailure: ((RedisConnectionError) -> Void)?

    init(url: RedisURL, clientName: String, timeout: Duration, pingInterval: Duration) {
        self.url = url
        self.timeout = timeout
        self.pingInterval = pingInterval
        let commands = RedisConnection.handshake(url, clientName: clientName)
        handshake = commands.map { $0[0] }
        for command in commands { RedisCommandEncoder.append(command, to: &pendingOutput) }
        RedisCommandEncoder.append(["SUBSCRIBE", "+switch-master"], to: &pendingOutput)
        let now = clock.now
        created = now
        awaiting = now
        lastAnswer = now
    }

    func connect(on loop: any EventLoop) {
        attempt = RedisReplyHandler.connect(self, timeout: timeout, on: loop)
    }

    /// When ``tend(now:)`` has something to do: the unanswered request's deadline, or the next keepalive.
    var nextDeadline: ContinuousClock.Instant {
        if resolving { return created + RedisHostResolver.lookupBound(timeout) }
        return awaiting.map { $0 + timeout } ?? lastAnswer + pingInterval
    }

    /// Enforces the deadline of the unanswered request and sends a keepalive when one is due.
    func tend(now: ContinuousClock.Instant) throws(RedisConnectionError) {
        guard !resolving else { return }
        if let awaiting, now - awaiting > timeout {
            let phase = isSubscribed ? "PING" : "SUBSCRIBE +switch-master"
            throw RedisConnectionError("Sentinel \(url.server): no answer to \(phase) within \(timeout)", isTimeout: true)
        }
        if awaiting == nil, now - lastAnswer >= pingInterval {
            var buffer = ByteBuffer()
            RedisCommandEncoder.append(["PING"], to: &buffer)
            awaiting = now
            channel?.writeAndFlush(buffer, promise: nil)
        }
    }

    /// Closes the connection without reporting; the future completes once it is closed.
    func close() -> EventLoopFuture<Void>? {
        over = true
        onSubscribed = nil
        onAnswered = nil
        onSwitch = nil
        onFailure = nil
        let closing = channel?.close() ?? attempt?.abandon()
        channel = nil
        attempt = nil
        return closing
    }

    // MARK: RedisReplyReceiver

    func received(_ reply: RedisReply) throws(RedisConnectionError) {
        guard handshake.isEmpty else {
            let command = handshake.removeFirst()
            if case .error(let message) = reply, RedisConnection.failsHandshake(command, error: message) {
                throw RedisConnectionError("\(command) on Sentinel \(url.server) failed: \(message)")
            }
            return
        }
        guard case .array(let parts) = reply, let kind = parts.first?.string else {
            throw RedisConnectionError("Sentinel \(url.server): unexpected reply \(reply)")
        }
        switch kind {
        case "subscribe" where !isSubscribed:
            isSubscribed = true
            answered()
            onSubscribed?()
        case "message" where parts.count == 3:
            if let payload = parts[2].string { onSwitch?(payload) }
        case "pong":
            answered()
        default:
            throw RedisConnectionError("Sentinel \(url.server): unexpected reply \(reply)")
        }
    }

    func readComplete() {}

    func connected(_ channel: any Channel) {
        guard !over else { return channel.close(promise: nil) }
        self.channel = channel
        attempt = nil
        channel.writeAndFlush(pendingOutput, promise: nil)
        pendingOutput = ByteBuffer()
    }

    func fail(_ error: RedisConnectionError) {
        guard !over else { return }
        let report = onFailure
        _ = close()
        report?(error)
    }

    func addressResolved() {
        resolving = false
        awaiting = clock.now
    }

    private func answered() {
        awaiting = nil
        lastAnswer = clock.now
        onAnswered?()
    }
}
