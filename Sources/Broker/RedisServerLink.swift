import Dispatch
import Foundation
import Logging
import Synchronization

/// One Redis server of a ``RedisAdapter``: its two connections, their two threads, the
/// interest held on it and its failover state.
///
/// **Threads.**
/// - The *subscriber thread* owns the subscriber ``RedisConnection``. It connects (retrying
///   with ``Backoff``), sends `SUBSCRIBE`/`PSUBSCRIBE` for every live interest, then `poll`s its
///   socket together with a ``WakePipe``: bytes from Redis are read, decoded and delivered as one
///   batch per read burst; a wake-up applies interest changes (`(P)SUBSCRIBE`/`(P)UNSUBSCRIBE`)
///   or ends the session. An idle connection is checked with `PING`.
/// - The *publisher thread* owns the publisher ``RedisConnection``. It sleeps on a semaphore,
///   takes the whole publish queue, and sends it as one pipeline of `PUBLISH` commands before
///   reading all the replies.
///
/// **Shared state** (interest, queue, failover state) lives in one `Mutex`; callers of
/// ``publish(_:channel:)``, ``addChannel(_:)`` and friends only take that lock briefly and
/// never wait for Redis. `deliver` is never called with the lock held.
///
/// **Failover.** The link is `connected` once the subscriber has its subscriptions confirmed
/// and the publisher is connected; only then do publishes go through Redis. Any error on
/// either connection (including end of stream) ends the current *epoch*: the link turns
/// `fallback`, both threads drop their connections, and publishes are delivered locally at
/// once. Messages still waiting in the publish queue are delivered locally too; a pipeline
/// already written when the connection failed may or may not have reached Redis and is not
/// repeated (Redis pub/sub is at most once), so nothing is delivered twice. The subscriber
/// thread reconnects with backoff, resubscribes everything, and the link turns `connected`
/// again.
final class RedisServerLink: Sendable {
    let url: RedisURL

    private let channels: RedisChannels
    private let nodeId: String
    private let queueLimit: Int
    private let logger: Logger
    private let counters: RedisAdapterCounters
    private let onTransition: @Sendable (_ state: AdapterStatus.State, _ transitions: Int) -> Void
    private let state: Mutex<State>
    private let subscriberWake = WakePipe()
    private let publisherWake = DispatchSemaphore(value: 0)
    /// Threads still running, and who waits for the last one to exit (``stop()``). The last
    /// thread resumes the waiters itself: no dispatch queue in between, whose threads may be busy.
    private let threads = Mutex<(running: Int, waiters: [CheckedContinuation<Void, Never>])>((0, []))

    /// Bounds the connect and every blocking round trip (handshake, publisher replies, writes).
    static let connectTimeout = Duration.seconds(2)
    /// How often the subscriber thread wakes up without an event, to check its connection.
    static let pollInterval = Duration.seconds(1)
    /// A subscriber connection silent this long is sent a `PING`; without any reply within the
    /// same time again the connection is considered dead.
    static let pingInterval = Duration.seconds(5)
    /// Most `read(2)` calls (of up to 16 KB each, hiredis' chunk) gathered into one delivered
    /// batch: larger batches amortize the hand-off, smaller ones bound the latency of the first.
    static let readsPerBurst = 16
    /// Channels or patterns per `(P)SUBSCRIBE` command when resubscribing.
    static let subscribeChunk = 512

    struct Outgoing {
        let channel: String
        let envelope: Envelope
    }

    private struct State {
        // Failover.
        var phase: AdapterStatus.State = .connecting
        var since = Date()
        var transitions = 0
        var lastError: String?
        /// Bumped on every failure; a thread whose connection belongs to an older epoch drops it.
        var epoch = 0
        var subscriberReady = false
        var publisherReady = false
        var stopping = false
        var deliver: (@Sendable ([Envelope]) -> Void)?

        // Interest wanted on this server, and what the current subscriber connection asked for.
        var channels: Set<String> = []
        var patterns: [String: Set<TopicPattern>] = [:]  // by glob
        var dirtyChannels: Set<String> = []
        var dirtyGlobs: Set<String> = []
        var subscribedChannels: Set<String> = []
        var subscribedGlobs: Set<String> = []
        /// (P)(UN)SUBSCRIBE confirmations still expected on the current connection.
        var unconfirmed = 0

        // Publishing through Redis.
        var queue: [Outgoing] = []
        var publisherSleeping = false
        // Local delivery while not connected: whoever finds `draining` false drains the outbox,
        // so local deliveries keep their publish order without holding the lock in `deliver`.
        var outbox: [Envelope] = []
        var draining = false

        var hasDirtyInterest: Bool { !dirtyChannels.isEmpty || !dirtyGlobs.isEmpty }
    }

    /// A state change to report (log, metrics, overall state) once the lock is released.
    private struct Transition {
        let from: AdapterStatus.State
        let to: AdapterStatus.State
        let error: String?
        /// The link's transition count after this one (orders reports from different threads).
        let count: Int
    }

    init(
        url: RedisURL, channels: RedisChannels, nodeId: String, queueLimit: Int, logger: Logger,
        counters: RedisAdapterCounters,
        onTransition: @escaping @Sendable (_ state: AdapterStatus.State, _ transitions: Int) -> Void
    ) {
        self.url = url
        self.channels = channels
        self.nodeId = nodeId
        self.queueLimit = queueLimit
        var logger = logger
        logger[metadataKey: "redis"] = "\(url)"
        self.logger = logger
        self.counters = counters
        self.onTransition = onTransition
        self.state = Mutex(State())
    }

    // MARK: - Lifecycle (any thread)

    /// Starts the subscriber and publisher threads.
    func start(deliver: @escaping @Sendable ([Envelope]) -> Void) {
        let fresh = state.withLock { state -> Bool in
            guard state.deliver == nil, !state.stopping else { return false }
            state.deliver = deliver
            state.since = Date()
            return true
        }
        guard fresh else { return }
        spawn("chorus-redis-sub-\(url.server)") { $0.runSubscriber(deliver: deliver) }
        spawn("chorus-redis-pub-\(url.server)") { $0.runPublisher() }
    }

    private func spawn(_ name: String, _ body: @escaping @Sendable (RedisServerLink) -> Void) {
        threads.withLock { $0.running += 1 }
        let thread = Thread { [self] in
            body(self)
            let waiters = threads.withLock { threads in
                threads.running -= 1
                guard threads.running == 0 else { return [CheckedContinuation<Void, Never>]() }
                defer { threads.waiters = [] }
                return threads.waiters
            }
            for waiter in waiters { waiter.resume() }
        }
        thread.name = name
        thread.start()
    }

    /// Stops both threads; returns once they have exited and freed their connections.
    ///
    /// A thread waiting (in `poll`, in a backoff pause, on its semaphore) wakes at once. A thread
    /// inside a blocking call to Redis finishes it first: a connect attempt or a publish
    /// pipeline, each bounded by ``connectTimeout``. No `deliver` call starts after this returns.
    func stop() async {
        state.withLock { state in
            state.stopping = true
            state.deliver = nil
            state.queue.removeAll()
            state.outbox.removeAll()
        }
        subscriberWake.signal()
        publisherWake.signal()
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let finished = threads.withLock { threads in
                guard threads.running > 0 else { return true }
                threads.waiters.append(continuation)
                return false
            }
            if finished { continuation.resume() }
        }
    }

    // MARK: - Interest (any thread)

    /// Wants `channel` (a topic or user channel held on this server) subscribed.
    func addChannel(_ channel: String) {
        changeInterest { state in
            guard state.channels.insert(channel).inserted else { return false }
            state.dirtyChannels.insert(channel)
            return true
        }
    }

    func removeChannel(_ channel: String) {
        changeInterest { state in
            guard state.channels.remove(channel) != nil else { return false }
            state.dirtyChannels.insert(channel)
            return true
        }
    }

    /// Wants `pattern` subscribed (under its glob; several patterns may share one glob).
    func addPattern(_ pattern: TopicPattern) {
        let glob = channels.glob(for: pattern)
        changeInterest { state in
            guard state.patterns[glob, default: []].insert(pattern).inserted else { return false }
            state.dirtyGlobs.insert(glob)
            return true
        }
    }

    func removePattern(_ pattern: TopicPattern) {
        let glob = channels.glob(for: pattern)
        changeInterest { state in
            guard state.patterns[glob]?.remove(pattern) != nil else { return false }
            if state.patterns[glob]?.isEmpty == true { state.patterns[glob] = nil }
            state.dirtyGlobs.insert(glob)
            return true
        }
    }

    /// Applies `change`; wakes the subscriber thread when this is the first pending change.
    private func changeInterest(_ change: (inout State) -> Bool) {
        let wake = state.withLock { state -> Bool in
            let wasDirty = state.hasDirtyInterest
            return change(&state) && !wasDirty
        }
        if wake { subscriberWake.signal() }
    }

    // MARK: - Publishing (any thread)

    private enum Route {
        case queued(wakePublisher: Bool)
        case deliverLocally([Envelope], @Sendable ([Envelope]) -> Void)
        case done
    }

    /// Publishes through Redis when connected (enqueue and return); otherwise delivers
    /// locally at once, on the calling thread or on the thread already delivering locally.
    func publish(_ envelope: Envelope, channel: String) {
        let route = state.withLock { state -> Route in
            guard !state.stopping, let deliver = state.deliver else {
                counters.countDropped()
                return .done
            }
            if state.phase == .connected {
                guard state.queue.count < queueLimit else {
                    counters.countDropped()
                    return .done
                }
                state.queue.append(Outgoing(channel: channel, envelope: envelope))
                guard state.publisherSleeping else { return .queued(wakePublisher: false) }
                state.publisherSleeping = false
                return .queued(wakePublisher: true)
            }
            counters.countPublishedInFallback()
            state.outbox.append(envelope)
            guard !state.draining else { return .done }
            state.draining = true
            return .deliverLocally(Self.take(&state.outbox), deliver)
        }
        switch route {
        case .queued(let wake): if wake { publisherWake.signal() }
        case .deliverLocally(let batch, let deliver): drainOutbox(batch, deliver)
        case .done: break
        }
    }

    /// Delivers `batch`, then whatever other threads added to the outbox meanwhile.
    private func drainOutbox(_ first: [Envelope], _ deliver: @Sendable ([Envelope]) -> Void) {
        var batch = first
        while true {
            deliver(batch)
            let next = state.withLock { state -> [Envelope]? in
                guard !state.outbox.isEmpty, !state.stopping else {
                    state.draining = false
                    return nil
                }
                return Self.take(&state.outbox)
            }
            guard let next else { return }
            batch = next
        }
    }

    private static func take<T>(_ array: inout [T]) -> [T] {
        var taken: [T] = []
        swap(&taken, &array)
        return taken
    }

    // MARK: - Status (any thread)

    func backendStatus() -> AdapterStatus.Backend {
        state.withLock { state in
            AdapterStatus.Backend(
                address: url.description, state: state.phase, since: state.since,
                transitions: state.transitions, lastError: state.lastError)
        }
    }

    /// Connected, with every interest change sent and confirmed by Redis (for tests).
    var isSettled: Bool {
        state.withLock { $0.phase == .connected && !$0.hasDirtyInterest && $0.unconfirmed == 0 }
    }

    // MARK: - Failover (subscriber and publisher threads)

    /// Ends `epoch` because of `error`: fallback, both connections dropped, queued messages
    /// delivered locally.
    private func fail(epoch: Int, error: any Error) {
        let message = "\(error)"
        let (transition, local) = state.withLock {
            state -> (Transition?, ([Envelope], @Sendable ([Envelope]) -> Void)?) in
            guard epoch == state.epoch, !state.stopping else { return (nil, nil) }
            state.epoch += 1
            state.subscriberReady = false
            state.publisherReady = false
            state.lastError = message
            var transition: Transition? = nil
            if state.phase != .fallback {
                state.transitions += 1
                transition = Transition(from: state.phase, to: .fallback, error: message, count: state.transitions)
                state.phase = .fallback
                state.since = Date()
            }
            if state.publisherSleeping {
                state.publisherSleeping = false
                publisherWake.signal()
            }
            // Messages that never left the queue reach local subscribers, in order, before
            // any message published from now on.
            guard !state.queue.isEmpty, let deliver = state.deliver else { return (transition, nil) }
            for _ in state.queue { counters.countPublishedInFallback() }
            state.outbox.append(contentsOf: state.queue.map(\.envelope))
            state.queue.removeAll()
            guard !state.draining else { return (transition, nil) }
            state.draining = true
            return (transition, (Self.take(&state.outbox), deliver))
        }
        subscriberWake.signal()
        if let transition {
            report(transition)
        } else {
            logger.debug("Redis still unreachable", metadata: ["error": "\(message)"])
        }
        if let (batch, deliver) = local { drainOutbox(batch, deliver) }
    }

    /// One side of `epoch` is ready; with both ready the link is connected.
    private func markReady(epoch: Int, subscriber: Bool) {
        let transition = state.withLock { state -> Transition? in
            guard epoch == state.epoch, !state.stopping else { return nil }
            if subscriber { state.subscriberReady = true } else { state.publisherReady = true }
            if subscriber, state.publisherSleeping {
                state.publisherSleeping = false
                publisherWake.signal()
            }
            guard state.subscriberReady, state.publisherReady, state.phase != .connected else { return nil }
            state.transitions += 1
            let transition = Transition(from: state.phase, to: .connected, error: nil, count: state.transitions)
            state.phase = .connected
            state.since = Date()
            return transition
        }
        if let transition { report(transition) }
    }

    private func report(_ transition: Transition) {
        counters.countTransition(to: transition.to)
        switch transition.to {
        case .connected:
            logger.info(
                "Redis connected: publishing and receiving through Redis",
                metadata: ["from": "\(transition.from.rawValue)"])
        default:
            logger.warning(
                "Redis unreachable: serving local subscribers only, retrying with backoff",
                metadata: ["from": "\(transition.from.rawValue)", "error": "\(transition.error ?? "")"])
        }
        onTransition(transition.to, transition.count)
    }

    // MARK: - Subscriber thread

    private enum SessionEnd {
        /// The adapter is shutting down.
        case stopped
        /// The epoch ended on the publisher's side; reconnect.
        case superseded
    }

    private func runSubscriber(deliver: @escaping @Sendable ([Envelope]) -> Void) {
        var backoff = Backoff()
        var delay: Duration? = nil
        while true {
            if let delay, !sleepUnlessStopping(delay) { return }
            guard let epoch = state.withLock({ $0.stopping ? nil : $0.epoch }) else { return }
            do {
                let connection = try RedisConnection(
                    connectingTo: url, timeout: Self.connectTimeout, clientName: "chorus:\(nodeId):sub")
                if try runSession(connection, epoch: epoch, backoff: &backoff, deliver: deliver) == .stopped {
                    return
                }
            } catch {
                fail(epoch: epoch, error: error)
            }
            delay = backoff.next()
        }
    }

    /// Waits `duration` on the wake pipe; false when the link is stopping.
    private func sleepUnlessStopping(_ duration: Duration) -> Bool {
        let deadline = ContinuousClock.now + duration
        while true {
            if state.withLock({ $0.stopping }) { return false }
            let remaining = deadline - ContinuousClock.now
            guard remaining > .zero else { return true }
            var descriptor = pollfd(fd: subscriberWake.readDescriptor, events: Int16(POLLIN), revents: 0)
            if poll(&descriptor, 1, Self.milliseconds(remaining)) > 0 { subscriberWake.drain() }
        }
    }

    /// Subscribes everything this server should carry, then reads until the connection fails,
    /// the epoch ends, or the link stops.
    private func runSession(
        _ connection: RedisConnection, epoch: Int, backoff: inout Backoff,
        deliver: @Sendable ([Envelope]) -> Void
    ) throws(RedisConnectionError) -> SessionEnd {
        // Everything wanted now is subscribed afresh; later changes arrive as dirty sets.
        guard
            let start = state.withLock({ state -> (channels: [String], globs: [String], patterns: [String: Set<TopicPattern>])? in
                guard epoch == state.epoch, !state.stopping else { return nil }
                state.subscribedChannels = state.channels
                state.subscribedGlobs = Set(state.patterns.keys)
                state.dirtyChannels.removeAll()
                state.dirtyGlobs.removeAll()
                state.unconfirmed = state.channels.count + state.patterns.count
                return (Array(state.channels), Array(state.patterns.keys), state.patterns)
            })
        else { return state.withLock { $0.stopping } ? .stopped : .superseded }

        var reader = RedisSubscriptionReader(channels: channels, patterns: start.patterns)
        try send("SUBSCRIBE", start.channels, on: connection)
        try send("PSUBSCRIBE", start.globs, on: connection)
        try connection.flush()
        var ready = start.channels.isEmpty && start.globs.isEmpty
        if ready { markReady(epoch: epoch, subscriber: true) }

        let clock = ContinuousClock()
        var lastHeard = clock.now
        var pingSent: ContinuousClock.Instant? = nil
        var warnedMalformed = false
        while true {
            var descriptors = [
                pollfd(fd: connection.fileDescriptor, events: Int16(POLLIN), revents: 0),
                pollfd(fd: subscriberWake.readDescriptor, events: Int16(POLLIN), revents: 0),
            ]
            if poll(&descriptors, 2, Self.milliseconds(Self.pollInterval)) < 0, errno != EINTR {
                throw RedisConnectionError("poll on \(url.server): errno \(errno)")
            }
            if descriptors[1].revents != 0 { subscriberWake.drain() }

            // Stop, superseded, or interest changes to send.
            enum Tick {
                case stop, superseded
                case run(connected: Bool, changes: InterestChanges?)
            }
            let tick = state.withLock { state -> Tick in
                if state.stopping { return .stop }
                if state.epoch != epoch { return .superseded }
                return .run(connected: state.phase == .connected, changes: Self.takeChanges(&state))
            }
            switch tick {
            case .stop: return .stopped
            case .superseded: return .superseded
            case .run(let connected, let changes):
                if connected { backoff.reset() }
                if let changes {
                    try send("UNSUBSCRIBE", changes.unsubscribe, on: connection)
                    try send("PUNSUBSCRIBE", changes.punsubscribe, on: connection)
                    try send("SUBSCRIBE", changes.subscribe, on: connection)
                    try send("PSUBSCRIBE", changes.psubscribe, on: connection)
                    try connection.flush()
                    if let patterns = changes.patterns { reader.patterns = patterns }
                }
            }

            if descriptors[0].revents != 0 {
                // One read burst: read while the socket has data (bounded), then deliver once.
                var reads = 0
                repeat {
                    try connection.readAvailable()
                    reads += 1
                    while let reply = try connection.bufferedReply() {
                        try reader.handle(reply)
                    }
                } while reads < Self.readsPerBurst && Self.isReadable(connection.fileDescriptor)
                lastHeard = clock.now
                pingSent = nil

                let outcome = reader.takeOutcome()
                if outcome.malformed > 0 {
                    for _ in 0..<outcome.malformed { counters.countMalformed() }
                    let level: Logger.Level = warnedMalformed ? .debug : .warning
                    warnedMalformed = true
                    logger.log(
                        level: level, "Skipped malformed payloads from Redis",
                        metadata: ["count": "\(outcome.malformed)", "error": "\(outcome.lastProblem ?? "")"])
                }
                if outcome.confirmations > 0 {
                    let settled = state.withLock { state -> Bool in
                        guard state.epoch == epoch else { return false }
                        state.unconfirmed = max(0, state.unconfirmed - outcome.confirmations)
                        return state.unconfirmed == 0
                    }
                    if settled, !ready {
                        ready = true
                        markReady(epoch: epoch, subscriber: true)
                    }
                }
                if !outcome.envelopes.isEmpty, !state.withLock({ $0.stopping }) {
                    deliver(outcome.envelopes)
                }
            }

            // Liveness: PING a silent connection; no answer at all means it is dead.
            let silence = clock.now - lastHeard
            if let pingSent, clock.now - pingSent > Self.pingInterval {
                throw RedisConnectionError("no reply from \(url.server) to PING within \(Self.pingInterval)")
            } else if pingSent == nil, silence > Self.pingInterval {
                try connection.append(["PING"])
                try connection.flush()
                pingSent = clock.now
            }
        }
    }

    private struct InterestChanges {
        var subscribe: [String] = []
        var unsubscribe: [String] = []
        var psubscribe: [String] = []
        var punsubscribe: [String] = []
        /// The patterns by glob, when they changed (for filtering pattern messages).
        var patterns: [String: Set<TopicPattern>]?
    }

    /// The commands that bring the current connection to the wanted interest, counted as
    /// expected confirmations; nil when nothing changed.
    private static func takeChanges(_ state: inout State) -> InterestChanges? {
        guard state.hasDirtyInterest else { return nil }
        var changes = InterestChanges()
        for channel in state.dirtyChannels {
            let wanted = state.channels.contains(channel)
            if wanted, state.subscribedChannels.insert(channel).inserted {
                changes.subscribe.append(channel)
            } else if !wanted, state.subscribedChannels.remove(channel) != nil {
                changes.unsubscribe.append(channel)
            }
        }
        for glob in state.dirtyGlobs {
            let wanted = state.patterns[glob] != nil
            if wanted, state.subscribedGlobs.insert(glob).inserted {
                changes.psubscribe.append(glob)
            } else if !wanted, state.subscribedGlobs.remove(glob) != nil {
                changes.punsubscribe.append(glob)
            }
        }
        if !state.dirtyGlobs.isEmpty { changes.patterns = state.patterns }
        state.dirtyChannels.removeAll()
        state.dirtyGlobs.removeAll()
        state.unconfirmed +=
            changes.subscribe.count + changes.unsubscribe.count + changes.psubscribe.count + changes.punsubscribe.count
        return changes
    }

    private func send(_ command: String, _ names: [String], on connection: RedisConnection) throws(RedisConnectionError) {
        var start = 0
        while start < names.count {
            let end = min(start + Self.subscribeChunk, names.count)
            try connection.append([command] + names[start..<end])
            start = end
        }
    }

    // MARK: - Publisher thread

    private enum PublisherStep {
        case exit
        case sleep
        case disconnect
        case connect(epoch: Int)
        case publish([Outgoing], epoch: Int)
    }

    private func runPublisher() {
        var connection: RedisConnection? = nil
        var connectionEpoch = 0
        var warnedErrorReply = false
        while true {
            let hasConnection = connection != nil
            let step = state.withLock { state -> PublisherStep in
                if state.stopping { return .exit }
                if hasConnection {
                    if connectionEpoch != state.epoch { return .disconnect }
                    if !state.queue.isEmpty { return .publish(Self.take(&state.queue), epoch: connectionEpoch) }
                } else if state.subscriberReady, !state.publisherReady {
                    return .connect(epoch: state.epoch)
                }
                state.publisherSleeping = true
                return .sleep
            }
            switch step {
            case .exit:
                return
            case .sleep:
                publisherWake.wait()
            case .disconnect:
                connection = nil
            case .connect(let epoch):
                do {
                    connection = try RedisConnection(
                        connectingTo: url, timeout: Self.connectTimeout, clientName: "chorus:\(nodeId):pub")
                    connectionEpoch = epoch
                    warnedErrorReply = false
                    markReady(epoch: epoch, subscriber: false)
                } catch {
                    fail(epoch: epoch, error: error)
                }
            case .publish(let batch, let epoch):
                do {
                    let errorReply = try pipeline(batch, on: connection!)
                    if let errorReply, !warnedErrorReply {
                        warnedErrorReply = true
                        logger.warning("Redis refused a PUBLISH", metadata: ["error": "\(errorReply)"])
                    }
                } catch {
                    connection = nil
                    logger.debug(
                        "A PUBLISH pipeline failed; its messages may not have reached Redis",
                        metadata: ["count": "\(batch.count)"])
                    fail(epoch: epoch, error: error)
                }
            }
        }
    }

    private static let publishCommand = Array("PUBLISH".utf8)

    /// Writes one `PUBLISH` per message, then reads every reply. Returns the first error reply.
    private func pipeline(_ batch: [Outgoing], on connection: RedisConnection) throws(RedisConnectionError) -> String? {
        for outgoing in batch {
            try connection.append([Self.publishCommand, Array(outgoing.channel.utf8), EnvelopeCodec.encode(outgoing.envelope)])
        }
        var firstError: String? = nil
        for _ in batch {
            if case .error(let message) = try connection.readReply(), firstError == nil { firstError = message }
        }
        return firstError
    }

    // MARK: - Helpers

    private static func milliseconds(_ duration: Duration) -> Int32 {
        let (seconds, attoseconds) = duration.components
        return Int32(clamping: max(0, seconds * 1000 + attoseconds / 1_000_000_000_000_000))
    }

    private static func isReadable(_ descriptor: Int32) -> Bool {
        var entry = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
        return poll(&entry, 1, 0) > 0
    }
}
