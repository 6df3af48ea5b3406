#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One subscriber connection of a ``RedisServerLink``, from the non-blocking connect to its
/// failure, with its deadlines. Owned by the link's subscriber thread (not `Sendable`).
///
/// At the start everything is *appended* in one go: the handshake, a `SUBSCRIBE`/`PSUBSCRIBE`
/// for every interest, and a `PING`, the *readiness marker*: Redis answers in order, so its
/// `pong` means that every subscription before it is in place (``Progress/becameReady``).
/// Later interest changes are followed by a `PING` of their own, and an idle connection gets a
/// keepalive `PING` every `pingInterval`. While a `PING` (the marker included, which also
/// bounds the connect and the handshake) is unanswered, Redis must send something within
/// `timeout` (its answer, or messages queued before it), or ``tend(now:)`` throws a timeout: a
/// hung Redis or a lost network is noticed within `pingInterval + timeout`, and a node that is
/// merely behind on a busy connection is not mistaken for one.
///
/// Each marker `PING` carries the number of the last interest change sent before it (see
/// ``RedisInterestSettling``); ``confirmedThrough`` is that of the last marker answered.
final class RedisSubscriberSession {
    let connection: RedisConnection
    let timeout: Duration
    let pingInterval: Duration
    private var reader: RedisSubscriptionReader
    private var connecting = true
    private var ready = false
    /// When each unanswered `PING` was sent, oldest first.
    private var pings: [ContinuousClock.Instant] = []
    private var lastAnswer: ContinuousClock.Instant
    /// When bytes last arrived: a connection that is receiving is not hung, only behind, and a
    /// `PING` queued behind a backlog of messages is not late.
    private var lastHeard: ContinuousClock.Instant
    /// Handshake commands whose reply has not been read yet.
    private var handshake: [String]
    /// `PING`s sent and answered on this connection, keepalives included.
    private var pingsSent = 0
    private var pongsSeen = 0
    /// Unanswered markers: the `PING` count that includes each, and the change number it confirms.
    private var marks: [(ping: Int, through: UInt64)] = []
    /// The change number of the last marker `PING` answered (``RedisInterestSettling``).
    private(set) var confirmedThrough: UInt64 = 0

    struct Progress {
        var envelopes: [Envelope] = []
        var malformed = 0
        var lastProblem: String?
        /// The readiness marker was answered just now.
        var becameReady = false
    }

    init(
        url: RedisURL, clientName: String, channels: RedisChannels, subscribe: [String], psubscribe: [String],
        patterns: [String: Set<TopicPattern>], through: UInt64, timeout: Duration, pingInterval: Duration,
        now: ContinuousClock.Instant
    ) throws(RedisConnectionError) {
        connection = try RedisConnection(startingConnectTo: url, timeout: timeout, clientName: clientName)
        self.timeout = timeout
        self.pingInterval = pingInterval
        reader = RedisSubscriptionReader(channels: channels, patterns: patterns)
        handshake = connection.handshakeCommands
        lastAnswer = now
        lastHeard = now
        try Self.append("SUBSCRIBE", subscribe, on: connection)
        try Self.append("PSUBSCRIBE", psubscribe, on: connection)
        try connection.append(["PING"])
        pings.append(now)
        pingsSent = 1
        marks.append((1, through))
    }

    var unansweredPings: Int { pings.count }

    /// What to `poll` the socket for.
    var pollEvents: Int16 {
        Int16(POLLIN) | (connecting || connection.hasPendingOutput ? Int16(POLLOUT) : 0)
    }

    /// When ``tend(now:)`` has something to do: the oldest `PING`'s deadline, or the next keepalive.
    var nextDeadline: ContinuousClock.Instant {
        if let oldest = pings.first { return max(oldest, lastHeard) + timeout }
        return lastAnswer + pingInterval
    }

    /// Sends interest changes, then a `PING` that says when they are done.
    func send(_ changes: RedisServerLink.InterestChanges, now: ContinuousClock.Instant) throws(RedisConnectionError) {
        try Self.append("UNSUBSCRIBE", changes.unsubscribe, on: connection)
        try Self.append("PUNSUBSCRIBE", changes.punsubscribe, on: connection)
        try Self.append("SUBSCRIBE", changes.subscribe, on: connection)
        try Self.append("PSUBSCRIBE", changes.psubscribe, on: connection)
        if let patterns = changes.patterns { reader.patterns = patterns }
        try ping(now: now)
        marks.append((pingsSent, changes.through))
    }

    /// Handles what `poll` reported for the socket: finishes the connect, writes what is
    /// pending, reads a burst of replies.
    func service(_ revents: Int16, now: ContinuousClock.Instant) throws(RedisConnectionError) -> Progress {
        var progress = Progress()
        guard revents != 0 else { return progress }
        if connecting {
            try connection.finishConnect()
            connecting = false
        }
        if connection.hasPendingOutput, revents & Int16(POLLOUT) != 0 {
            try connection.writePending()
        }
        guard revents & Int16(POLLIN | POLLHUP | POLLERR) != 0 else { return progress }
        var reads = 0
        repeat {
            try connection.readAvailable()
            reads += 1
            while let reply = try connection.bufferedReply() {
                guard handshake.isEmpty else {
                    let command = handshake.removeFirst()
                    if case .error(let message) = reply, RedisConnection.mustSucceed(command) {
                        throw RedisConnectionError("\(command) on \(connection.url.server) failed: \(message)")
                    }
                    continue
                }
                try reader.handle(reply)
            }
        } while reads < RedisServerLink.readsPerBurst && Self.isReadable(connection.fileDescriptor)
        lastHeard = now

        let outcome = reader.takeOutcome()
        progress.envelopes = outcome.envelopes
        progress.malformed = outcome.malformed
        progress.lastProblem = outcome.lastProblem
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
        return progress
    }

    /// Enforces the deadline of the oldest `PING` and sends a keepalive when one is due.
    func tend(now: ContinuousClock.Instant) throws(RedisConnectionError) {
        if let oldest = pings.first, now - max(oldest, lastHeard) > timeout {
            let phase = ready ? "PING" : connecting ? "connect" : "handshake and SUBSCRIBE"
            throw RedisConnectionError(
                "read on \(connection.url.server): no answer to \(phase) within \(timeout)", isTimeout: true)
        }
        if pings.isEmpty, now - lastAnswer >= pingInterval {
            try ping(now: now)
        }
    }

    private func ping(now: ContinuousClock.Instant) throws(RedisConnectionError) {
        try connection.append(["PING"])
        pings.append(now)
        pingsSent += 1
        if !connecting { try connection.writePending() }
    }

    private static func append(_ command: String, _ names: [String], on connection: RedisConnection) throws(RedisConnectionError) {
        var start = 0
        while start < names.count {
            let end = min(start + RedisServerLink.subscribeChunk, names.count)
            try connection.append([command] + names[start..<end])
            start = end
        }
    }

    private static func isReadable(_ descriptor: Int32) -> Bool {
        var entry = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
        return poll(&entry, 1, 0) > 0
    }
}
