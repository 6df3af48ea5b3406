import Dispatch
import Foundation
import Logging
import NIOCore
import Synchronization

/// One Redis server of a ``RedisAdapter``: its two connections, the interest held on it and
/// its failover state (a ``RedisLinkStateMachine``).
///
/// **Loops and threads.**
/// - The *subscriber* runs on one event loop of the node (``RedisSubscriberState/loop``,
///   `RedisServerLink+Subscriber.swift`): its connection is a NIO channel
///   (``RedisSubscriberSession``) whose replies hiredis parses, its deadlines are NIO timers,
///   and it is the link's only delivering place: what Redis sends and, in fallback, what this
///   node publishes (the local outbox) are delivered from that loop. Nothing there blocks, so
///   local delivery and shutdown never wait for Redis.
/// - The *publisher* runs on the same loop (``RedisPublisherState``,
///   `RedisServerLink+Publisher.swift`): a NIO channel (``RedisPublisherSession``) to which it
///   writes the whole publish queue as one pipeline and whose replies it reads in order. A
///   publish made on that loop is written in the same pass of the loop, without waking a thread.
/// - With Sentinel, the *Sentinel watch* runs on the same loop too (``RedisSentinelState``,
///   `RedisServerLink+Sentinel.swift`). The link has no thread of its own.
///
/// **Deadlines** (`timeout` is `PUBSUB_REDIS_TIMEOUT`): every connection sends a `PING` after
/// ``pingInterval(for:)`` without one (a third of the timeout), which also keeps Redis'
/// `timeout` from closing an idle publisher; a connection whose answer (to a `PING`, a
/// `PUBLISH`, the handshake, the connect) is late by more than `timeout` has failed. A hung
/// Redis is therefore detected within `timeout` by a busy publisher and within
/// `pingInterval + timeout` by the subscriber.
///
/// **Shared state** (failover machine, interest, queues) lives in one `Mutex`; callers of
/// ``publish(_:channel:)``, ``addChannel(_:)`` and friends only take that lock briefly and
/// never wait for Redis. `deliver` is never called with the lock held.
///
/// **Queues**, each bounded in messages and bytes (a full one drops and counts): the publish
/// queue (to the publisher) and the local outbox (to the subscriber's loop). In fallback
/// a publish goes to the local outbox: the publishing thread (usually an event loop) only
/// appends, the subscriber's loop fans out.
final class RedisServerLink: Sendable {
    let url: RedisURL
    let channels: RedisChannels
    let nodeId: String
    /// `PUBSUB_REDIS_TIMEOUT`: longest wait for any answer from Redis.
    let timeout: Duration
    let logger: Logger
    let counters: RedisAdapterCounters
    /// History settings, and the rings that hold this server's topics while it is unreachable.
    let history: HistoryPolicy
    let fallbackHistory: MemoryHistory
    /// History reads (``RedisHistory/readScript``), on a connection of their own.
    let commands: RedisCommandQueue
    private let onTransition: @Sendable (RedisLinkStateMachine.Transition) -> Void
    /// Hears other nodes' ``Envelope/Kind/gap`` announcements (on the subscriber's loop).
    let onPeerGap: @Sendable (PeerGap) -> Void
    /// Set when the master is found through Sentinel (see RedisServerLink+Sentinel.swift);
    /// `url` is then the template (master name as host, credentials, database).
    let sentinel: RedisSentinelDiscovery?
    /// The Sentinel watch's loop-owned state; nil without Sentinel.
    let sentinelWatch: RedisSentinelState?
    let state: Mutex<State>
    /// The subscriber's and the publisher's loop-owned state (see `RedisServerLink+Subscriber.swift`
    /// and `RedisServerLink+Publisher.swift`).
    let subscriber: RedisSubscriberState
    let publisher: RedisPublisherState
    /// The subscriber, the publisher and the Sentinel watch still running, and who waits for
    /// the last one to finish (``stop()``). The last one resumes the waiters itself: no dispatch
    /// queue in between, whose threads may be busy.
    private let workers = Mutex<(running: Int, waiters: [CheckedContinuation<Void, Never>])>((0, []))

    /// Channels or patterns per `(P)SUBSCRIBE` command when resubscribing.
    static let subscribeChunk = 512

    /// How long a connection may stay without a `PING` before it sends one.
    static func pingInterval(for timeout: Duration) -> Duration {
        max(timeout / 3, .milliseconds(10))
    }

    /// Reconnect delays: 50-100 ms doubling up to 0.5-1 s, so that a server that comes back is
    /// used again within about a second.
    static func reconnectBackoff() -> Backoff {
        Backoff(initial: .milliseconds(100), maximum: .seconds(1))
    }

    struct State {
        var machine = RedisLinkStateMachine()
        var since = Date()
        /// When the machine last recorded an error (``RedisLinkStateMachine/errors`` counted
        /// up to `errorsStamped`).
        var lastErrorAt: Date?
        var errorsStamped = 0
        var deliver: (@Sendable ([Envelope]) -> Void)?
        /// Started and not yet finished: each counts in `workers` (``stop()`` waits).
        var subscriberRunning = false
        var publisherRunning = false
        var sentinelRunning = false

        // Interest wanted on this server, and what the current subscriber connection asked for.
        var channels: Set<String> = []
        var patterns: RedisPatternGlobs
        var dirtyChannels: Set<String> = []
        var dirtyGlobs: Set<String> = []
        var subscribedChannels: Set<String> = []
        var subscribedGlobs: Set<String> = []
        /// `PING`s not yet answered on the subscriber connection (for ``isSettled``).
        var unansweredPings = 0
        /// Interest changes requested and confirmed, and who waits for them (``whenInterestSettled(_:)``).
        var settling = RedisInterestSettling<@Sendable () -> Void>()

        // Publishing through Redis (to the publisher, on the link's loop).
        var queue: RedisOutgoingQueue
        /// The batch the publisher has written and Redis not yet acknowledged; taken
        /// (set to nil) by a fall back, which delivers it locally.
        var inFlight: [RedisOutgoing]?
        /// Messages of `inFlight` that Redis published back already (see ``RedisEchoes``).
        var echoes = RedisEchoes()
        /// Ids of messages a failed publisher put back in `queue`: written to Redis, neither
        /// acknowledged nor seen back yet. Redis may have published them (their echo is still
        /// unread on the subscriber connection): seen back, they leave the queue; moved to the
        /// local outbox, they become `doubtful`. Forgotten when the queue is next written.
        var returned: Set<String> = []
        /// Whether `returned` may be sent yet: Redis may have published them (the subscriber
        /// connection may hold their copies unread, however long the publisher's reconnect
        /// took), so they wait until the subscriber has read everything Redis sent it before
        /// the failure. A `PING` on the subscriber connection marks that point: Redis answers
        /// it after any copy of a command it ran earlier (see RedisServerLink+Subscriber.swift).
        var echoBarrier = EchoBarrier.none

        // Local delivery (to the subscriber's loop).
        var local: RedisOutgoingQueue
        var doubtful = RedisDoubtfulIDs()
        /// Where this node published while the server was unreachable: announced to the other
        /// nodes once it is back (see ``PeerGap``).
        var fallbackChannels = RedisFallbackChannels()
        /// The failures logged during this outage: a reconnect that fails differently (a password
        /// refused after the connection was lost, say) is logged once, each failure once per
        /// outage however often it repeats (at most 16 of them).
        var loggedErrors: Set<String> = []
        /// When the link last came back from fallback: the node's own `gap` notices went out
        /// then, covering whatever any node published earlier (``coveredByOwnNotice(_:receivedAt:returnedAt:)``).
        var returnedAt: Date?

        enum EchoBarrier {
            case none
            /// A publisher failed with messages put back: the subscriber is to send the `PING`.
            case wanted
            /// The `PING` is sent; its answer releases the publisher.
            case sent
        }

        var hasDirtyInterest: Bool { !dirtyChannels.isEmpty || !dirtyGlobs.isEmpty }

        // Where to connect (RedisServerLink+Sentinel.swift): `url`, or the master Sentinel
        // named (nil until then); the generation counts changes; a failed connection asks the
        // Sentinel watch to look again.
        var master: RedisURL?
        var masterGeneration = 0
        var discoveryWanted = false
    }

    init(
        url: RedisURL, loop: any EventLoop, channels: RedisChannels, nodeId: String, timeout: Duration, queueLimit: Int,
        queueByteLimit: Int, logger: Logger, counters: RedisAdapterCounters, sentinel: RedisSentinelDiscovery? = nil,
        history: HistoryPolicy = .off, fallbackHistory: MemoryHistory? = nil, maxPatterns: Int = RedisAdapter.defaultMaxPatterns,
        onTransition: @escaping @Sendable (RedisLinkStateMachine.Transition) -> Void,
        onPeerGap: @escaping @Sendable (PeerGap) -> Void = { _ in }
    ) {
        precondition(sentinel.map { !$0.sentinels.isEmpty } ?? true, "Sentinel discovery needs at least one Sentinel")
        self.url = url
        self.sentinel = sentinel
        self.sentinelWatch = sentinel.map { _ in RedisSentinelState(loop: loop) }
        self.subscriber = RedisSubscriberState(loop: loop)
        self.publisher = RedisPublisherState(loop: loop)
        self.channels = channels
        self.nodeId = nodeId
        self.timeout = timeout
        var logger = logger
        logger[metadataKey: "redis"] = "\(Self.address(url, sentinel: sentinel))"
        self.logger = logger
        self.counters = counters
        self.history = history
        self.fallbackHistory = fallbackHistory ?? MemoryHistory(policy: history)
        // Through Sentinel the reads follow the master as the link does.
        self.commands =
            sentinel.map { RedisCommandQueue(sentinel: $0, clientName: "\(nodeId):history-\($0.master.host)") }
            ?? RedisCommandQueue(url: url, timeout: timeout, clientName: "\(nodeId):history-\(url.port)")
        self.onTransition = onTransition
        self.onPeerGap = onPeerGap
        var initial = State(
            patterns: RedisPatternGlobs(catchAll: channels.catchAllGlob, limit: maxPatterns),
            queue: RedisOutgoingQueue(messageLimit: queueLimit, byteLimit: queueByteLimit),
            local: RedisOutgoingQueue(messageLimit: queueLimit, byteLimit: queueByteLimit))
        initial.master = sentinel == nil ? url : nil
        self.state = Mutex(initial)
    }

    /// Logs what a connection's checks for lost history found (``RedisStreamPositions``), on
    /// the link's loop (the subscriber's and the publisher's).
    func noteRewind(_ rewound: Int, error: String?) {
        if rewound > 0 {
            logger.warning(
                "Redis came back without messages this node had read (an older snapshot, a replica that was behind): their topics start a new epoch, and clients recovering from the old one are told recovered:false",
                metadata: ["topics": "\(rewound)"])
        }
        if let error {
            logger.warning(
                "Redis denied the check for lost history (allow EVAL in the node's ACL): a Redis that comes back with older data may give offsets clients saw to new messages",
                metadata: ["error": "\(error)"])
        }
    }

    // MARK: - Lifecycle (any thread)

    /// Starts the subscriber, the publisher and, with Sentinel, the watch (all on one loop).
    func start(deliver: @escaping @Sendable ([Envelope]) -> Void) {
        let fresh = state.withLock { state -> Bool in
            guard state.deliver == nil, !state.machine.stopping else { return false }
            state.deliver = deliver
            state.subscriberRunning = true
            state.publisherRunning = true
            state.sentinelRunning = sentinel != nil
            state.since = Date()
            // The subscriber, the publisher and the watch, until each finishes; counted with
            // their flags, so that a stop() at once waits for them (the order of the two locks
            // is this one's everywhere).
            workers.withLock { $0.running += sentinelWatch == nil ? 2 : 3 }
            return true
        }
        guard fresh else { return }
        wakeSubscriber()
        wakePublisher()
        wakeSentinel()
    }

    /// The subscriber, the publisher or the Sentinel watch is done; the last one resumes ``stop()``'s waiters.
    func workerExited() {
        let waiters = workers.withLock { workers in
            workers.running -= 1
            guard workers.running == 0 else { return [CheckedContinuation<Void, Never>]() }
            defer { workers.waiters = [] }
            return workers.waiters
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Stops the subscriber, the publisher and the Sentinel watch; returns once their
    /// connections are closed.
    ///
    /// The loop closes both channels at once; publishes not yet answered by Redis are answered
    /// with a refusal. No `deliver` call starts after this returns.
    func stop() async {
        var settled: [@Sendable () -> Void] = []
        var unsent: [RedisOutgoing] = []
        update { state in
            state.deliver = nil
            unsent = state.queue.takeAll() + state.local.takeAll()
            state.inFlight = nil
            state.echoes.removeAll()
            state.returned.removeAll()
            settled = state.settling.releaseAll()
            return state.machine.stop()
        }
        wakeSentinel()
        wakeSubscriber()
        wakePublisher()
        for body in settled { body() }
        // Their publishers are answered rather than left waiting (an HTTP publish awaits this).
        for outgoing in unsent { outgoing.completion?(.refused("the node is stopping")) }
        await commands.close()
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let finished = workers.withLock { workers in
                guard workers.running > 0 else { return true }
                workers.waiters.append(continuation)
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
            let changed = state.patterns.add(pattern, glob: glob)
            state.dirtyGlobs.formUnion(changed)
            return !changed.isEmpty
        }
    }

    func removePattern(_ pattern: TopicPattern) {
        let glob = channels.glob(for: pattern)
        changeInterest { state in
            let changed = state.patterns.remove(pattern, glob: glob)
            state.dirtyGlobs.formUnion(changed)
            return !changed.isEmpty
        }
    }

    /// Applies `change`; wakes the subscriber's loop when this is the first pending change.
    private func changeInterest(_ change: (inout State) -> Bool) {
        let wake = state.withLock { state -> Bool in
            let wasDirty = state.hasDirtyInterest
            guard change(&state) else { return false }
            state.settling.changeRequested()
            return !wasDirty
        }
        if wake { wakeSubscriber() }
    }

    /// Runs `body` once every interest change requested on this server before the call is in
    /// effect in Redis (the marker `PING` sent after it was answered); at once when nothing is
    /// pending, or when the link is not publishing through Redis (connecting, fallback,
    /// stopping: delivery is local, and live already). A waiter still held when the link falls
    /// back or stops is released then. `body` runs on the caller's thread when at once, else on
    /// the subscriber's loop or the thread that made the link fall back or stop; never with the
    /// lock held.
    func whenInterestSettled(_ body: @escaping @Sendable () -> Void) {
        let now = state.withLock { state -> (@Sendable () -> Void)? in
            guard state.machine.publishesThroughRedis else { return body }
            return state.settling.wait(body)
        }
        now?()
    }

    /// Like ``whenInterestSettled(_:)``, telling `body` whether this node publishes through
    /// Redis at that moment (history reads from Redis only then; else from the fallback rings).
    func whenSubscribed(_ body: @escaping @Sendable (_ throughRedis: Bool) -> Void) {
        whenInterestSettled { [self] in
            body(state.withLock { $0.machine.publishesThroughRedis })
        }
    }

    // MARK: - Publishing (any thread)

    /// Where ``publish(_:channel:historyTopic:completion:)`` put a message.
    enum PublishRoute {
        /// Queued for Redis.
        case redis
        /// Queued for local delivery: this node's subscribers only.
        case local
        /// Refused: a full queue, or the link stops (`completion` was told).
        case dropped
    }

    /// Publishes through Redis when connected (queued for the publisher); otherwise
    /// queues it for local delivery by the subscriber's loop. Either way it only appends.
    @discardableResult
    func publish(
        _ envelope: Envelope, channel: String, historyTopic: Topic? = nil, completion: PublishCompletion? = nil
    ) -> PublishRoute {
        let outgoing = RedisOutgoing(
            channel: channel, envelope: envelope, payload: EnvelopeCodec.encode(envelope), historyTopic: historyTopic,
            completion: completion.map(PublishCompletionOnce.init))
        // Where it went, and whether its queue was empty (a turn must be queued to drain it).
        let (route, wake) = state.withLock { state -> (PublishRoute, Bool) in
            guard !state.machine.stopping, state.deliver != nil else {
                counters.countDropped()
                return (.dropped, false)
            }
            if state.machine.publishesThroughRedis {
                guard state.queue.append(outgoing) else {
                    counters.countDropped()
                    return (.dropped, false)
                }
                // A non-empty queue has a turn coming: one is queued, or a batch is in flight.
                return (.redis, state.queue.count == 1)
            }
            let wasEmpty = state.local.isEmpty
            guard state.local.append(outgoing) else {
                counters.countDropped()
                return (.dropped, false)
            }
            state.fallbackChannels.record(outgoing)
            counters.countPublishedInFallback()
            return (.local, wasEmpty)
        }
        switch route {
        case .dropped: outgoing.completion?(.refused(Self.droppedReason))
        case .redis: if wake { wakePublisher() }
        case .local: if wake { wakeSubscriber() }
        }
        return route
    }

    static let droppedReason = "the node's Redis publish queue is full or the node is stopping"

    // MARK: - Status (any thread)

    /// A batch is written to Redis and not acknowledged yet (for tests).
    var hasBatchInFlight: Bool { state.withLock { $0.inFlight != nil } }

    func backendStatus() -> AdapterStatus.Backend {
        state.withLock { state in
            AdapterStatus.Backend(
                address: Self.address(url, sentinel: sentinel), state: state.machine.phase, since: state.since,
                transitions: state.machine.transitions, lastError: state.machine.lastError,
                lastErrorAt: state.lastErrorAt)
        }
    }

    /// Connected, with every interest change sent and answered by Redis (for tests).
    var isSettled: Bool {
        state.withLock {
            $0.machine.phase == .connected && $0.machine.subscriber == .up && !$0.hasDirtyInterest
                && $0.unansweredPings == 0
        }
    }

    // MARK: - Failover (the link's loop)

    /// Feeds one event to the state machine (with whatever else `event` changes in the same
    /// critical section) and performs the actions it returns: the queue moves under the lock,
    /// reports and wake-ups after it.
    func update(_ event: (inout State) -> [RedisLinkStateMachine.Action]) {
        var transitions: [RedisLinkStateMachine.Transition] = []
        var wakeSubscriber = false
        var wakePublisher = false
        var settled: [@Sendable () -> Void] = []
        var published: [(RedisOutgoing, PublishOutcome)] = []
        var unannounced = 0
        var failingDifferently: String?
        state.withLock { state in
            let actions = event(&state)
            if state.machine.errors != state.errorsStamped {
                state.errorsStamped = state.machine.errors
                state.lastErrorAt = Date()
            }
            for action in actions {
                switch action {
                case .report(let transition):
                    state.since = Date()
                    transitions.append(transition)
                    state.loggedErrors = transition.error.map { [$0] } ?? []
                    if transition.to == .connected {
                        // Only a return: at a first connection no peer's gap reached a client
                        // of this node yet, so none may be taken as covered.
                        if transition.from == .fallback { state.returnedAt = Date() }
                        // Published while connecting (at start) or in fallback: reached no other node.
                        if !state.fallbackChannels.isEmpty {
                            unannounced += announceFallbackChannels(&state)
                            wakePublisher = true
                        }
                    }
                case .deliverPendingLocally:
                    wakeSubscriber = takePendingForLocalDelivery(&state, published: &published) || wakeSubscriber
                    wakePublisher = true
                    // Fallen back: local delivery is live at once, nothing to wait for.
                    settled += state.settling.releaseAll()
                case .connectPublisher:
                    wakePublisher = true
                case .closeConnections, .followMaster:
                    wakeSubscriber = true
                    wakePublisher = true
                }
            }
            if state.machine.phase == .fallback, let error = state.machine.lastError, state.loggedErrors.count < 16,
                state.loggedErrors.insert(error).inserted
            {
                failingDifferently = error
            }
        }
        if let failingDifferently {
            logger.warning("Redis still unreachable, retrying with backoff", metadata: ["error": "\(failingDifferently)"])
        }
        for transition in transitions { report(transition) }
        if unannounced > 0 {
            logger.warning(
                "Published on more channels than announced while Redis was unreachable: other nodes' subscribers of the rest are not told of the gap",
                metadata: ["announced": "\(RedisFallbackChannels.defaultLimit)", "unannouncedMessages": "\(unannounced)"])
        }
        for (message, outcome) in published { message.completion?(outcome) }
        for body in settled { body() }
        if wakeSubscriber { self.wakeSubscriber() }
        if wakePublisher { self.wakePublisher() }
    }

    /// Moves the batch in flight, then the publish queue, to the local outbox (in publish
    /// order). Of the batch in flight, the messages Redis published back already are done
    /// (`published`, to complete after the lock); the others, and those a failed publisher put
    /// back, may still reach Redis or already have: their ids are remembered so that the
    /// subscriber drops them if they come back. True when there is something to deliver.
    ///
    /// The outbox takes them all, past its own limits: the publish queue admitted them, and a
    /// message refused here would be neither delivered nor answered. So the outbox holds at
    /// most its limit plus the publish queue's and one batch in flight (itself taken from the
    /// queue), and only until the subscriber's loop drains it.
    private func takePendingForLocalDelivery(_ state: inout State, published: inout [(RedisOutgoing, PublishOutcome)]) -> Bool {
        var pending: [RedisOutgoing] = []
        if let inFlight = state.inFlight {
            let split = state.echoes.split(inFlight)
            // Redis may have answered part of the batch already; a refused message stays refused.
            pending = split.unpublished.filter { !($0.completion?.wasRefused ?? false) }
            for index in pending.indices { state.doubtful.doubt(&pending[index]) }
            published += split.published
            state.inFlight = nil
        }
        var queued = state.queue.takeAll()
        if !state.returned.isEmpty {
            for index in queued.indices where state.returned.contains(queued[index].envelope.id) {
                state.doubtful.doubt(&queued[index])
            }
            state.returned.removeAll()
        }
        state.echoBarrier = .none
        pending += queued
        for message in pending { state.fallbackChannels.record(message) }
        // Announcements are recorded again (to go out on the next return), not delivered here.
        pending.removeAll { $0.envelope.kind == .gap }
        state.local.append(admitted: pending)
        for _ in pending { counters.countPublishedInFallback() }
        return !state.local.isEmpty
    }

    /// Back from fallback: queues one ``Envelope/Kind/gap`` announcement for each channel this
    /// node published on meanwhile (they go out before anything published later), so that the
    /// other nodes tell their subscribers. Returns how many messages went unannounced (past the
    /// recorder's limit). An announcement the queue cannot take is dropped and counted.
    private func announceFallbackChannels(_ state: inout State) -> Int {
        let (announcements, unannounced) = state.fallbackChannels.takeAnnouncements(origin: nodeId)
        for announcement in announcements where !state.queue.append(announcement) { counters.countDropped() }
        return unannounced
    }

    /// Whether this node's own `gap` notices, sent when its link came back at `returnedAt`,
    /// already told its subscribers about another node's `announcement`, received at
    /// `receivedAt`: the announcing node published its last message on that channel before
    /// then. A client that reloads on the first notice has those messages, so the second would
    /// only make it reload again (after a Redis restart, once per node that published).
    ///
    /// The announcement says how long before it was queued that message was (`ago`), so both
    /// times are this node's clock. The time it spent queued and on the way only makes the
    /// message look later than it was: an error that keeps a notice, never one that drops it.
    static func coveredByOwnNotice(_ announcement: Envelope, receivedAt: Date, returnedAt: Date?) -> Bool {
        guard let returnedAt, let ago = (try? RawJSONObject(parsing: announcement.data.bytes))?["ago"].flatMap({ Int($0.description) })
        else { return false }
        return receivedAt.addingTimeInterval(-Double(ago) / 1000) < returnedAt
    }

    private func report(_ transition: RedisLinkStateMachine.Transition) {
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
        onTransition(transition)
    }
}
