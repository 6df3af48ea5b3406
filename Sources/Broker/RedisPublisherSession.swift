import NIOCore

/// One publisher connection of a ``RedisServerLink``: a NIO channel on the link's event loop
/// that writes commands in order and hands each reply to the one who wrote its command.
///
/// **Ownership.** Created, used and dropped on the link's event loop only (not `Sendable`); the
/// answers and ``onFailure``/``onReady`` run there too.
///
/// At the start the handshake (`AUTH`, `SELECT`, `CLIENT SETNAME`), the checks for history
/// Redis lost (``RedisStreamPositions``) and, when the link keeps history, `SCRIPT LOAD` of
/// ``RedisHistory/publishScript`` are written in one go; the connection is *ready*
/// (``onReady``, with the script's digest) once they are answered.
///
/// **Deadlines.** While any command is unanswered (the opening ones bound the connect),
/// Redis must send something within `timeout`, or ``tend(now:)`` throws a timeout: a hung
/// Redis is noticed within `timeout` by a busy publisher. A reply that waits unread in the
/// socket (the loop was busy with other work) counts as heard (``SocketReceiveQueue``). Idle
/// for `pingInterval`, the connection sends a `PING`, so a dead one is found before a publish
/// needs it and Redis' own `timeout` never closes it as idle.
///
/// **The server's role.** `ROLE` is asked with the handshake and every `timeout` (at least a
/// second) while ready, and a server that is not a master fails the connection. A master
/// demoted to a replica (`REPLICAOF`, a manual `FAILOVER`, a promoted replica's old master)
/// refuses the history script (`READONLY`) but still takes `PUBLISH`, which then reaches only
/// its own subscribers: nodes on the new master would never get this node's messages while it
/// acknowledged them. Failing the connection also looks the host up again, which finds the new
/// master where the URL's name follows it (as managed services do). With a fixed URL a `ROLE`
/// the user may not run (`NOPERM`) only turns the check off; found through Sentinel the master
/// must answer it.
final class RedisPublisherSession: RedisReplyReceiver {
    typealias Answer = (RedisReply) -> Void

    let url: RedisURL
    let timeout: Duration
    let pingInterval: Duration
    private let clock = ContinuousClock()
    private var channel: (any Channel)?
    /// The connect, until it completes: closed with the session if it is still under way.
    private var attempt: RedisConnectAttempt?
    /// Commands appended and not yet written: until the connect completes, and between
    /// ``flush()``es (a batch goes out as one buffer).
    private var output = ByteBuffer()
    /// Whoever waits for each reply still due, in the order the commands were written.
    private var answers = CircularBuffer<Answer>()
    private var connecting = true
    /// The host name is being looked up (bounded by ``RedisHostResolver/lookupBound(_:)``
    /// from `created`): no deadline of ours yet.
    private var resolving = true
    private let created: ContinuousClock.Instant
    private var ready = false
    /// Failed or closed: nothing more is reported.
    private var over = false
    /// Since when something has been unanswered, and when bytes last arrived.
    private var waitingSince: ContinuousClock.Instant?
    private var lastHeard: ContinuousClock.Instant
    /// Bytes waiting unread excuse a late answer once per arrival (``UnreadBytesGrace``).
    private var grace = UnreadBytesGrace()
    /// When the last reply arrived or the last command was written: the keepalive counts from here.
    private var lastUsed: ContinuousClock.Instant

    /// Called once, when the opening commands are answered, with the script's digest (nil
    /// when none was loaded).
    var onReady: ((_ scriptDigest: [UInt8]?) -> Void)?
    /// Called when a keepalive `PING`, or a `ROLE` asked while ready, is answered (the link
    /// then schedules its next turn by ``nextDeadline``).
    var onKeepalive: (() -> Void)?
    /// Called when a check for lost history reset topics (their count), or was denied (the error).
    var onRewindChecked: ((_ reset: Int, _ denied: String?) -> Void)?
    /// Called once if the server refused `ROLE` (with a fixed URL: the role goes unchecked).
    var onRoleUnchecked: ((String) -> Void)?
    /// Called once when the connection fails (refused, closed, unparsable, refused handshake, late).
    var onFailure: ((RedisConnectionError) -> Void)?

    /// How often a ready session asks `ROLE` again: the timeout, as a hung server is noticed
    /// within it, and at least a second.
    private var roleInterval: Duration { max(timeout, .seconds(1)) }
    /// Whether `ROLE` is asked (until a fixed URL's server refuses it).
    private var checksRole = true
    /// `ROLE` must be answered (a master found through Sentinel).
    private let roleRequired: Bool
    private var lastRoleCheck: ContinuousClock.Instant

    /// - Parameter roleRequired: a refused `ROLE` fails the connection (a master found through
    ///   Sentinel); otherwise it only turns the check off.
    init(
        url: RedisURL, clientName: String, roleRequired: Bool, loadScript: Bool, timeout: Duration, pingInterval: Duration,
        now: ContinuousClock.Instant, checks: [[String]] = []
    ) {
        self.url = url
        self.timeout = timeout
        self.pingInterval = pingInterval
        self.roleRequired = roleRequired
        created = now
        lastHeard = now
        lastUsed = now
        lastRoleCheck = now
        for command in RedisConnection.handshake(url, clientName: clientName) {
            let name = command[0]
            let server = url.server
            send(command.map { Array($0.utf8) }, now: now) { [unowned self] reply in
                if case .error(let message) = reply, RedisConnection.failsHandshake(name, error: message) {
                    fail(RedisConnectionError("\(name) on \(server) failed: \(message)"))
                }
            }
        }
        checkRole(now: now)
        checkHistory(checks, now: now)
        guard loadScript else {
            send([Array("PING".utf8)], now: now) { [unowned self] _ in becameReady(nil) }
            return
        }
        self.loadScript(now: now) { [unowned self] digest in becameReady(digest) }
    }

    /// Asks `ROLE`: a server that answers as anything but a master fails the connection.
    private func checkRole(now: ContinuousClock.Instant) {
        lastRoleCheck = now
        send([Array("ROLE".utf8)], now: now) { [unowned self, url] reply in
            if case .error(let message) = reply, !roleRequired, Self.deniesCommand(message) {
                checksRole = false
                let report = onRoleUnchecked
                onRoleUnchecked = nil
                report?(message)
                return
            }
            do throws(RedisConnectionError) {
                try RedisSentinelDiscovery.requireMaster(reply, at: url)
            } catch {
                return fail(error)
            }
            if ready { onKeepalive?() }
        }
    }

    /// Sends the checks for history Redis lost (``RedisHistory/rewindScript``) ahead of
    /// whatever is sent next: an error other than a denied command fails the connection.
    func checkHistory(_ checks: [[String]], now: ContinuousClock.Instant) {
        for check in checks {
            send(check.map { Array($0.utf8) }, now: now) { [unowned self, url] reply in
                do throws(RedisConnectionError) {
                    let outcome = try RedisHistory.rewindOutcome(reply, server: url.server)
                    if outcome.reset > 0 || outcome.denied != nil { onRewindChecked?(outcome.reset, outcome.denied) }
                } catch {
                    fail(error)
                }
            }
        }
    }

    /// An error that says the user may not run the command at all (an ACL without it, a
    /// proxy that does not know it), rather than that the server cannot now (`BUSY`, `LOADING`).
    static func deniesCommand(_ error: String) -> Bool {
        error.hasPrefix("NOPERM") || error.hasPrefix("ERR unknown command")
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
        flush()
    }

    private func becameReady(_ digest: [UInt8]?) {
        guard !over else { return }
        ready = true
        let report = onReady
        onReady = nil
        report?(digest)
    }

    /// Loads ``RedisHistory/publishScript``; `done` gets its digest (a refusal fails the connection).
    func loadScript(now: ContinuousClock.Instant, _ done: @escaping ([UInt8]) -> Void) {
        let server = url.server
        send(["SCRIPT", "LOAD", RedisHistory.publishScript].map { Array($0.utf8) }, now: now) { [unowned self] reply in
            guard case .bulk(let digest) = reply else {
                fail(RedisConnectionError("SCRIPT LOAD of the history script failed on \(server): \(reply)"))
                return
            }
            done(digest)
        }
    }

    /// Nothing is unanswered.
    var isIdle: Bool { answers.isEmpty }

    /// Appends one command; `answer` gets its reply. Written at the next ``flush()``.
    func send(_ command: [[UInt8]], now: ContinuousClock.Instant, answer: @escaping Answer) {
        if answers.isEmpty { waitingSince = now }
        answers.append(answer)
        lastUsed = now
        RedisCommandEncoder.append(command, to: &output)
    }

    /// Writes what ``send(_:now:answer:)`` appended (once connected), in one buffer.
    func flush() {
        guard let channel, output.readableBytes > 0 else { return }
        channel.writeAndFlush(output, promise: nil)
        output = channel.allocator.buffer(capacity: 0)
    }

    /// When ``tend(now:)`` has something to do: the deadline of what is unanswered, or the next keepalive.
    var nextDeadline: ContinuousClock.Instant {
        if resolving { return created + RedisHostResolver.lookupBound(timeout) }
        let due = waitingSince.map { max($0, lastHeard) + timeout } ?? lastUsed + pingInterval
        guard ready, checksRole else { return due }
        return min(due, lastRoleCheck + roleInterval)
    }

    func addressResolved() {
        let now = clock.now
        resolving = false
        if waitingSince != nil { waitingSince = now }
        lastHeard = now
        lastUsed = now
    }

    /// Enforces the deadline and sends a keepalive `PING` when one is due.
    func tend(now: ContinuousClock.Instant) throws(RedisConnectionError) {
        guard !resolving else { return }
        if let waitingSince, now - max(waitingSince, lastHeard) > timeout {
            if let channel, grace.excuses(unread: SocketReceiveQueue.unreadBytes(channel)) {
                lastHeard = now  // Redis answered; this loop has not read it yet
                return
            }
            let phase = ready ? "a command" : connecting ? "connect" : "the handshake"
            throw RedisConnectionError("read on \(url.server): no answer to \(phase) within \(timeout)", isTimeout: true)
        }
        if ready, checksRole, now - lastRoleCheck >= roleInterval {
            checkRole(now: now)
            flush()
        }
        if ready, answers.isEmpty, now - lastUsed >= pingInterval {
            send([Array("PING".utf8)], now: now) { [unowned self] _ in onKeepalive?() }
            flush()
        }
    }

    /// One reply from Redis: goes to whoever wrote its command.
    func received(_ reply: RedisReply) throws(RedisConnectionError) {
        guard let answer = answers.popFirst() else {
            throw RedisConnectionError("read on \(url.server): a reply nobody asked for")
        }
        let now = clock.now
        lastHeard = now
        lastUsed = now
        grace.bytesRead()
        if answers.isEmpty { waitingSince = nil }
        answer(reply)
    }

    func readComplete() {}

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
        onReady = nil
        onKeepalive = nil
        onRoleUnchecked = nil
        onFailure = nil
        answers.removeAll()
        let closing = channel?.close() ?? attempt?.abandon()
        channel = nil
        attempt = nil
        return closing
    }
}
