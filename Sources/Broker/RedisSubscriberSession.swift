import NIOCore
import NIOPosix

/// One subscriber connection of a ``RedisServerLink``, from the connect to its failure, with
/// its deadlines: a NIO channel on the link's event loop, whose bytes hiredis parses
/// (``RedisReplyHandler``).
///
/// **Ownership.** Created, used and dropped on the link's subscriber event loop only (not
/// `Sendable`); its callbacks (``onBurst``, ``onFailure``) run there too.
///
/// At the start everything is written in one go: the handshake, the checks for data Redis lost
/// (``RedisStreamPositions``, before the subscriptions: what is published after them reaches this
/// node), a `SUBSCRIBE`/`PSUBSCRIBE` for every interest, and a `PING`, the *readiness marker*:
/// Redis answers in order, so its `pong` means that every subscription before it is in place
/// (``Progress/becameReady``). Later interest changes are followed by a `PING` of their own, and an
/// idle connection gets a keepalive `PING` every `pingInterval`. While a `PING` (the marker
/// included, which also bounds the connect and the handshake) is unanswered, Redis must send
/// something within `timeout` (its answer, or messages queued before it), or ``tend(now:)`` throws
/// a timeout: a hung Redis or a lost network is noticed within `pingInterval + timeout`, and a node
/// that is merely behind on a busy connection, or whose loop was busy with other work while Redis's
/// bytes waited in the socket (``SocketReceiveQueue``), is not mistaken for one.
///
/// Each marker `PING` carries the number of the last interest change sent before it (see
/// ``RedisInterestSettling``); ``confirmedThrough`` is that of the last marker answered.
final class RedisSubscriberSession: RedisReplyReceiver {
    let url: RedisURL
    let timeout: Duration
    let pingInterval: Duration
    private let clock = ContinuousClock()
    private var channel: (any Channel)?
    /// The connect, until it completes: closed with the session if it is still under way.
    private var attempt: RedisConnectAttempt?
    /// What is written before the connect completes (the opening commands, and any others).
    private var pendingOutput = ByteBuffer()
    private var reader: RedisSubscriptionReader
    private var connecting = true
    /// The host name is being looked up (bounded by ``RedisHostResolver/lookupBound(_:)``
    /// from `created`): no deadline of ours yet.
    private var resolving = true
    private let created: ContinuousClock.Instant
    private var ready = false
    /// Failed or closed: nothing more is reported.
    private var over = false
    /// When each unanswered `PING` was sent, oldest first.
    private var pings: [ContinuousClock.Instant] = []
    private var lastAnswer: ContinuousClock.Instant
    /// When bytes last arrived: a connection that is receiving is not hung, only behind, and a
    /// `PING` queued behind a backlog of messages is not late.
    private var lastHeard: ContinuousClock.Instant
    /// Bytes waiting unread excuse a late answer once per arrival (``UnreadBytesGrace``).
    private var grace = UnreadBytesGrace()
    /// Handshake commands (and checks) whose reply has not been read yet.
    private var handshake: [String]
    /// What the checks' replies said, for the next ``Progress``.
    private var rewound = 0
    private var rewindError: String?
    /// `PING`s sent and answered on this connection, keepalives included.
    private var pingsSent = 0
    private var pongsSeen = 0
    /// Unanswered markers: the `PING` count that includes each, and the change number it confirms.
    private var marks: [(ping: Int, through: UInt64)] = []
    /// The change number of the last marker `PING` answered (``RedisInterestSettling``).
    private(set) var confirmedThrough: UInt64 = 0

    /// Called after each read burst with what it brought.
    var onBurst: ((Progress) -> Void)?
    /// Called once when the connection fails (refused, closed, unparsable, refused command).
    var onFailure: ((RedisConnectionError) -> Void)?

    struct Progress {
        var envelopes: [Envelope] = []
        /// ``Envelope/Kind/gap`` announcements (any node's, this one's included).
        var gaps: [Envelope] = []
        var malformed = 0
        var lastProblem: String?
        /// The readiness marker was answered just now.
        var becameReady = false
        /// Topics the checks found behind what this node read, and reset (``RedisHistory/rewindScript``).
        var rewound = 0
        /// A check the user may not run (an ACL without `EVAL`), if any: the check is skipped.
        /// Any other error (`READONLY`, `BUSY`) fails the connection, to be tried again.
        var rewindError: String?
    }

    init(
        url: RedisURL, clientName: String, channels: RedisChannels, subscribe: [String], psubscribe: [String],
        patterns: SubscriptionIndex<TopicPattern>, through: UInt64, timeout: Duration, pingInterval: Duration,
        now: ContinuousClock.Instant, checks: [[String]] = []
    ) {
        self.url = url
        self.timeout = timeout
        self.pingInterval = pingInterval
        reader = RedisSubscriptionReader(channels: channels, patterns: patterns)
        let handshakeCommands = RedisConnection.handshake(url, clientName: clientName) + checks
        handshake = handshakeCommands.map { $0[0] }
        created = now
        lastAnswer = now
        lastHeard = now
        for command in handshakeCommands { RedisCommandEncoder.append(command, to: &pendingOutput) }
        Self.append("SUBSCRIBE", subscribe, to: &pendingOutput)
        Self.append("PSUBSCRIBE", psubscribe, to: &pendingOutput)
        RedisCommandEncoder.append(["PING"], to: &pendingOutput)
        pings.append(now)
        pingsSent = 1
        marks.append((1, through))
    }

    /// Starts the TCP connect on `loop` (the name lookup, if any, runs off the loop); the
    /// opening commands are written once it completes.
    func connect(on loop: any EventLoop) {
        attempt = RedisReplyHandler.connect(self, timeout: timeout, on: loop)
    }

    func connected(_ channel: any Channel) {
        guard !over else {
            channel.close(promise: nil)
            return
        }
        self.channel = channel
        attempt = nil
        connecting = false
        channel.writeAndFlush(pendingOutput, promise: nil)
        pendingOutput = ByteBuffer()
    }

    var unansweredPings: Int { pings.count }
    /// `PING`s answered on this connection so far (keepalives and markers included).
    var answeredPings: Int { pongsSeen }
    /// The readiness marker was answered: every subscription is in place.
    var isReady: Bool { ready }

    /// Sends a `PING` and returns its number: once ``answeredPings`` reaches it, everything
    /// Redis sent this connection before it ran the `PING` has been read.
    func sendPing(now: ContinuousClock.Instant) -> Int {
        var buffer = ByteBuffer()
        RedisCommandEncoder.append(["PING"], to: &buffer)
        pings.append(now)
        pingsSent += 1
        write(buffer)
        return pingsSent
    }

    /// When ``tend(now:)`` has something to do: the oldest `PING`'s deadline, or the next keepalive.
    var nextDeadline: ContinuousClock.Instant {
        if resolving { return created + RedisHostResolver.lookupBound(timeout) }
        if let oldest = pings.first { return max(oldest, lastHeard) + timeout }
        return lastAnswer + pingInterval
    }

    /// Sends interest changes, then a `PING` that says when they are done. Subscribes go
    /// before unsubscribes: when the node swaps its patterns for one catch-all (or back), no
    /// publish may fall between the two (a message both match comes twice, back to back, and
    /// ``RedisSubscriptionReader`` drops the second). A channel is in one list at most.
    func send(_ changes: RedisServerLink.InterestChanges, now: ContinuousClock.Instant) {
        var buffer = ByteBuffer()
        Self.append("SUBSCRIBE", changes.subscribe, to: &buffer)
        Self.append("PSUBSCRIBE", changes.psubscribe, to: &buffer)
        Self.append("UNSUBSCRIBE", changes.unsubscribe, to: &buffer)
        Self.append("PUNSUBSCRIBE", changes.punsubscribe, to: &buffer)
        if let patterns = changes.patterns { reader.patterns = patterns }
        RedisCommandEncoder.append(["PING"], to: &buffer)
        pings.append(now)
        pingsSent += 1
        marks.append((pingsSent, changes.through))
        write(buffer)
    }

    /// One reply from Redis (``RedisReplyHandler``): the handshake's, or a push.
    func received(_ reply: RedisReply) throws(RedisConnectionError) {
        guard handshake.isEmpty else {
            let command = handshake.removeFirst()
            if command == "EVAL" {
                let outcome = try RedisHistory.rewindOutcome(reply, server: url.server)
                rewound += outcome.reset
                rewindError = outcome.denied ?? rewindError
                return
            }
            if case .error(let message) = reply, RedisConnection.failsHandshake(command, error: message) {
                throw RedisConnectionError("\(command) on \(url.server) failed: \(message)")
            }
            return
        }
        try reader.handle(reply)
    }

    /// The end of a read burst: reports what it brought (``onBurst``).
    func readComplete() {
        guard !over else { return }
        let now = clock.now
        lastHeard = now
        grace.bytesRead()
        var progress = Progress()
        let outcome = reader.takeOutcome()
        progress.envelopes = outcome.envelopes
        progress.gaps = outcome.gaps
        progress.malformed = outcome.malformed
        progress.lastProblem = outcome.lastProblem
        (progress.rewound, progress.rewindError) = (rewound, rewindError)
        (rewound, rewindError) = (0, nil)
        if outcome.pongs > 0 {
            pings.removeFirst(min(outcome.pongs, pings.count))
            pongsSeen += outcome.pongs
            while let mark = marks.first, mark.ping <= pongsSeen {
                confirmedThrough = max(confirmedThrough, mark.through)
                marks.removeFirst()
            }
            lastAnswer = now
            if !ready {
                ready = true
                progress.becameReady = true
            }
        }
        onBurst?(progress)
    }

    func addressResolved() {
        let now = clock.now
        resolving = false
        if !pings.isEmpty { pings[0] = now }
        lastHeard = now
        lastAnswer = now
    }

    /// Enforces the deadline of the oldest `PING` and sends a keepalive when one is due.
    func tend(now: ContinuousClock.Instant) throws(RedisConnectionError) {
        guard !resolving else { return }
        if let oldest = pings.first, now - max(oldest, lastHeard) > timeout {
            if let channel, grace.excuses(unread: SocketReceiveQueue.unreadBytes(channel)) {
                lastHeard = now  // Redis sent something; this loop has not read it yet
                return
            }
            let phase = ready ? "PING" : connecting ? "connect" : "handshake and SUBSCRIBE"
            throw RedisConnectionError("read on \(url.server): no answer to \(phase) within \(timeout)", isTimeout: true)
        }
        if pings.isEmpty, now - lastAnswer >= pingInterval { _ = sendPing(now: now) }
    }

    /// Reports `error` once (``onFailure``) and closes the connection.
    func fail(_ error: RedisConnectionError) {
        guard !over else { return }
        let report = onFailure
        _ = close()
        report?(error)
    }

    /// Closes the connection without reporting; the future completes once it is closed.
    func close() -> EventLoopFuture<Void>? {
        over = true
        onBurst = nil
        onFailure = nil
        let closing = channel?.close() ?? attempt?.abandon()
        channel = nil
        attempt = nil
        return closing
    }

    private func write(_ buffer: ByteBuffer) {
        guard let channel else {
            var buffer = buffer
            pendingOutput.writeBuffer(&buffer)
            return
        }
        channel.writeAndFlush(buffer, promise: nil)
    }

    private static func append(_ command: String, _ names: [String], to buffer: inout ByteBuffer) {
        var start = 0
        while start < names.count {
            let end = min(start + RedisServerLink.subscribeChunk, names.count)
            RedisCommandEncoder.append([command] + names[start..<end], to: &buffer)
            start = end
        }
    }
}
