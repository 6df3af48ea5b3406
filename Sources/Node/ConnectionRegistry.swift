import Broker
import NIOCore
import Synchronization

/// The WebSocket connections of one event loop: who they are, what they subscribed to, and the
/// fan-out of delivered messages to them.
///
/// There is one registry per NIO event loop and its executor *is* that loop, so the sessions it
/// holds (channel handlers of the same loop) call it synchronously through `assumeIsolated`, and
/// a delivered message reaches every subscriber of this loop with one hop (``drainInbox()``)
/// and no further task or actor switch. Registries share nothing, so a hot topic fans out on all
/// loops in parallel instead of serializing through one global actor.
actor ConnectionRegistry {
    nonisolated let loop: any EventLoop
    nonisolated var unownedExecutor: UnownedSerialExecutor { loop.executor.asUnownedSerialExecutor() }
    /// Batches handed over by the adapter's thread, waiting for this loop (see ``enqueue(_:bytes:)``).
    private nonisolated let inbox: DeliveryInbox
    /// Whether a drain waits (``DrainPacer``): judged on this loop, read by ``enqueue(_:bytes:)``
    /// on the adapter's thread, in nanoseconds (0: at once).
    private nonisolated let drainDelay = Atomic<Int64>(0)
    private var pacer: DrainPacer
    /// What this loop's connections hold, for the hub to skip the loop when a batch has nothing
    /// for them: updated with every broker retain and release (``hold(_:)``, ``letGo(_:)``)
    /// and for the topics whose presence a session watches. Written on this loop, read by the
    /// hub on the adapter's thread.
    nonisolated let loopInterest = LoopInterest()

    private let broker: PubSubBroker
    private let counters: NodeCounters
    private let metrics: NodeMetrics
    private var sessions: [Int: WebSocketSession] = [:]
    /// The index and the user table hold the sessions' transports themselves, not ids, so a
    /// delivery goes from a match straight to the socket write with no lookup per subscriber.
    private var sessionsByUser: [String: UserSessions] = [:]
    private var subscriptions = SubscriptionIndex<SessionRef>()
    /// Sessions that asked for presence events, per concrete topic (``watchPresence(_:of:)``).
    var presenceWatchers: [Topic: Set<SessionRef>] = [:]
    /// Transports written to during the current drain, flushed once at its end.
    private var pendingFlush: [WebSocketTransport] = []
    private let allocator = ByteBufferAllocator()
    /// Token deadlines of this loop's sessions, with one timer for the earliest.
    private var expiries = TokenExpiries()
    private var expiryTimer: (deadline: NIODeadline, task: Scheduled<Void>)?
    /// Sessions recovering a topic from history, whose live deliveries of it are held (``HistoryRecovery``).
    var recoveries = RecoveryTable()
    /// Sessions with replies waiting for the broker (``reserveReply(_:)``).
    private var orderedReplies: [Int: OrderedReplies] = [:]

    /// Bytes of frames that may wait for one loop before further messages are dropped.
    static let defaultInboxLimit = 32 << 20
    /// Deliveries (socket writes) one drain aims at before it flushes and yields the loop:
    /// enough to share each flush among a hundred messages or more under load, few enough that
    /// a drain holds the loop for tens of milliseconds at most. Only a backlog makes drains
    /// this large; a message arriving alone is written and flushed at once.
    static let writesPerDrain = 32_768
    /// Frame bytes one drain takes at most: a quarter of the per-connection pending limit.
    private let drainBytes: Int
    /// `WEBSOCKET_MAX_PENDING_BYTES`: what a recovery's page may fill, with what waits already.
    let pendingLimit: Int
    /// The most bytes of history one `subscribe` reads for its `since` or `replay`: three
    /// quarters of the per-connection pending limit, so that a page the client asked for fits
    /// in what it may have waiting (see ``HistoryRecovery``).
    let historyBytes: Int
    /// Writes per message in the last drain (the fan-out), to size the next one; nil before
    /// the first drain, when every session is assumed to match.
    private var writesPerMessage: Int?

    init(
        loop: any EventLoop, broker: PubSubBroker, counters: NodeCounters, metrics: NodeMetrics,
        maxPendingBytes: Int, writeDelay: TimeAmount = .zero, inboxLimit: Int = ConnectionRegistry.defaultInboxLimit
    ) {
        self.pacer = DrainPacer(delay: writeDelay, now: .now())
        self.drainBytes = max(1, maxPendingBytes / 4)
        self.pendingLimit = maxPendingBytes
        self.recoveries.byteLimit = max(1, maxPendingBytes / 4)
        self.historyBytes = max(1, maxPendingBytes / 4 * 3)
        self.loop = loop
        self.broker = broker
        self.counters = counters
        self.metrics = metrics
        self.inbox = DeliveryInbox(limit: inboxLimit)
    }

    // MARK: Membership (called by sessions on this loop)

    func add(_ session: NIOLoopBound<WebSocketSession>, id: Int) {
        sessions[id] = session.value
    }

    /// Session `id`, if it is on this loop.
    func session(_ id: Int) -> WebSocketSession? { sessions[id] }

    // MARK: Replies in order

    /// A place for session `id`'s next reply, which waits for the broker (``settled(_:_:with:)``).
    func reserveReply(_ id: Int) -> Int {
        orderedReplies[id, default: OrderedReplies()].reserve()
    }

    /// Fills reply `ticket` of session `id` and sends what is ready, in order.
    func settled(_ id: Int, _ ticket: Int, with message: ServerMessage) {
        guard orderedReplies[id] != nil else { return }
        orderedReplies[id]!.fill(ticket, with: message)
        sendReadyReplies(id)
    }

    /// Sends `message` to session `id` after its replies still waiting, at once if none.
    func replyInOrder(_ id: Int, _ message: ServerMessage) {
        guard orderedReplies[id] != nil else { return session(id)?.reply(message) ?? () }
        orderedReplies[id]!.append(message)
        sendReadyReplies(id)
    }

    private func sendReadyReplies(_ id: Int) {
        guard let ready = orderedReplies[id]?.takeReady() else { return }
        if orderedReplies[id]?.isEmpty == true { orderedReplies[id] = nil }
        guard let session = sessions[id] else { return }
        for message in ready { session.reply(message) }
    }

    /// Forgets session `id` and releases everything it held in the broker.
    func remove(_ id: Int) {
        orderedReplies[id] = nil
        guard let session = sessions.removeValue(forKey: id) else { return }
        let ref = SessionRef(session)
        if !recoveries.isEmpty { recoveries.forget(session.transport) }
        for pattern in session.subscriptions where subscriptions.remove(pattern, ref) {
            letGo(Self.interest(pattern))
        }
        if let user = session.user { forget(ref, user: user.id) }
        for topic in session.presence.watched { unwatchPresence(ref, of: topic) }
    }

    func authenticate(_ id: Int, as userId: String) {
        guard let ref = sessions[id].map(SessionRef.init) else { return }
        if sessionsByUser[userId] == nil {
            sessionsByUser[userId] = .one(ref)
            hold(.user(userId))
        } else {
            _ = sessionsByUser[userId]!.insert(ref)  // in place: the subscript yields its storage
        }
    }

    func subscribe(_ id: Int, to pattern: TopicPattern) {
        guard let ref = sessions[id].map(SessionRef.init) else { return }
        if subscriptions.insert(pattern, ref) { hold(Self.interest(pattern)) }
    }

    /// A history read of the topic still running for the session is cancelled; its `subscribe`
    /// gets no other answer, so it is answered `subscribed` (no position) here, in order. The
    /// live messages it held go out if another subscription of the session (a pattern) matches
    /// the topic: they are that subscription's too (``writeHeld(_:of:to:)``).
    func unsubscribe(_ id: Int, from pattern: TopicPattern) {
        guard let session = sessions[id] else { return }
        let ref = SessionRef(session)
        var cancelled: RecoveryTable.Cancelled?
        if !recoveries.isEmpty, let topic = pattern.topic {
            cancelled = recoveries.cancel(ref.transport, topic)
            if let cancelled { replyInOrder(id, .subscribed(topic: pattern.text, id: cancelled.requestId)) }
        }
        if subscriptions.remove(pattern, ref) { letGo(Self.interest(pattern)) }
        if let cancelled, let topic = pattern.topic { writeHeld(cancelled.held, of: topic, to: session) }
    }

    private func forget(_ ref: SessionRef, user: String) {
        guard var group = sessionsByUser.removeValue(forKey: user) else { return }
        _ = group.remove(ref)
        if group.isEmpty {
            letGo(.user(user))
        } else {
            sessionsByUser[user] = group
        }
    }

    // MARK: Token expiry

    /// Tells session `id`, at `deadline`, that its token expired, unless it has authenticated
    /// again (with another deadline) or closed by then.
    func expireToken(of id: Int, at deadline: NIODeadline) {
        expiries.add(deadline, sessionId: id)
        if expiries.count > 64 && expiries.count > 2 * sessions.count {
            expiries.compact { sessions[$0.sessionId]?.tokenDeadline == $0.deadline }
        }
        scheduleExpiryTimer()
    }

    private func scheduleExpiryTimer() {
        guard let earliest = expiries.earliest else { return }
        if let timer = expiryTimer {
            guard earliest < timer.deadline else { return }
            timer.task.cancel()
        }
        let task = loop.assumeIsolated().scheduleTask(deadline: earliest) {
            self.assumeIsolated { $0.expireDueTokens() }
        }
        expiryTimer = (earliest, task)
    }

    private func expireDueTokens() {
        expiryTimer = nil
        let now = NIODeadline.now()
        while let entry = expiries.popDue(now: now) {
            guard let session = sessions[entry.sessionId], session.tokenDeadline == entry.deadline else { continue }
            session.tokenDidExpire()
        }
        scheduleExpiryTimer()
    }

    /// One more holder of `interest` on this loop: the loop's filter first, so that a message
    /// the broker brings for it is never kept from this loop.
    private func hold(_ interest: Interest) {
        loopInterest.add(interest)
        broker.retain(interest)
    }

    /// One holder fewer, in the reverse order of ``hold(_:)``.
    private func letGo(_ interest: Interest) {
        broker.release(interest)
        loopInterest.remove(interest)
    }

    /// The broker's interest a subscription holds (also what a `gap` notice is matched against).
    static func interest(_ pattern: TopicPattern) -> Interest {
        if let topic = pattern.topic { return .topic(topic) }
        return .pattern(pattern)
    }

    // MARK: Fan-out

    /// Hands a batch to this loop; called on the adapter's thread by ``ConnectionHub``.
    ///
    /// At most one drain task is queued on the loop at a time, whatever the number of batches
    /// waiting; a batch that does not fit the inbox is dropped and counted.
    nonisolated func enqueue(_ batch: [Delivery], bytes: Int) {
        switch inbox.put(batch, bytes: bytes) {
        case .queuedFirst:
            let delay = drainDelay.load(ordering: .relaxed)
            if delay > 0 {
                counters.pacedDrains.add(1, ordering: .relaxed)
                loop.scheduleTask(in: .nanoseconds(delay)) { self.assumeIsolated { $0.drainInbox() } }
            } else {
                loop.execute { self.assumeIsolated { $0.drainInbox() } }
            }
        case .queued:
            break
        case .refused:
            counters.backlogDropped.add(batch.count, ordering: .relaxed)
        }
    }

    /// Writes waiting messages to each matching session of this loop, then flushes each session
    /// once, so messages that arrived close together share one system call per socket.
    ///
    /// One drain writes about ``writesPerDrain`` deliveries and at most a quarter of the
    /// pending-bytes limit per socket, then flushes and queues the next drain for the rest: other
    /// tasks of the loop (timers, other hand-offs) run between drains, and a subscriber that
    /// reads never sees its unsent bytes pass the slow-consumer limit merely because a backlog
    /// was written before the flush. (NIO reads its sockets again only once no task is ready, so
    /// a backlog that keeps growing keeps the loop's reads waiting until the inbox's bound
    /// refuses more.)
    func drainInbox() {
        let start = NIODeadline.now()
        let messages = max(1, Self.writesPerDrain / max(1, writesPerMessage ?? sessions.count))
        let (deliveries, more) = inbox.take(messages: messages, bytes: drainBytes)
        let written = deliver(deliveries)
        // Rounded up, and kept from a drain that wrote nothing: a fan-out read as 0 would size
        // the next drain at every waiting message (millions of writes on a busy loop).
        if written > 0 { writesPerMessage = (written + deliveries.count - 1) / deliveries.count }
        pacer.drained(from: start, to: .now())
        drainDelay.store(pacer.nextDrainDelay?.nanoseconds ?? 0, ordering: .relaxed)
        if more {
            loop.execute { self.assumeIsolated { $0.drainInbox() } }
        }
    }

    /// Writes `deliveries` in order, then flushes each session written to once. Returns the
    /// number of deliveries written.
    @discardableResult
    func deliver(_ deliveries: [Delivery]) -> Int {
        var written = 0
        var oldest: NIODeadline?
        for delivery in deliveries {
            let before = written
            if delivery.audience != .subscribers {
                written += deliverSignal(delivery)
            } else if let userId = delivery.userId {
                sessionsByUser[userId]?.forEach { ref in written += write(delivery, to: ref.transport) }
            } else if let topic = delivery.topic {
                if recoveries.isEmpty || !recoveries.involves(topic) {
                    subscriptions.forEachMatch(topic) { ref in written += write(delivery, to: ref.transport) }
                } else {
                    subscriptions.forEachMatch(topic) { ref in
                        if !recoveries.hold(delivery, for: ref.transport, topic: topic) {
                            written += write(delivery, to: ref.transport)
                        }
                    }
                }
            }
            if written > before, oldest == nil { oldest = delivery.arrivedAt }
        }
        for transport in pendingFlush { transport.flush() }
        pendingFlush.removeAll(keepingCapacity: true)
        if written > 0 {
            counters.messagesOut.add(written, ordering: .relaxed)
            metrics.delivered(written)
            // One sample per drain (a lock shared by every loop is taken once, not per message):
            // how long the oldest message delivered in it waited, from its arrival to the flush.
            if let oldest { metrics.deliveryLatency(.now() - oldest) }
        }
        return written
    }

    /// A presence event to the topic's presence watchers; a typing indicator to the topic's
    /// subscribers (patterns included) except the typing user's own connections.
    private func deliverSignal(_ delivery: Delivery) -> Int {
        guard let topic = delivery.topic else { return 0 }
        var written = 0
        switch delivery.audience {
        case .presenceWatchers:
            presenceWatchers[topic]?.forEach { written += write(delivery, to: $0.transport) }
        case .typing(let typist):
            let own = sessionsByUser[typist]
            subscriptions.forEachMatch(topic) { ref in
                if own?.contains(ref) != true { written += write(delivery, to: ref.transport) }
            }
        case .subscribers:
            break
        }
        return written
    }

    private func write(_ delivery: Delivery, to transport: WebSocketTransport) -> Int {
        guard transport.write(delivery.frame, compressed: delivery.compressed) else { return 0 }
        if !transport.needsFlush {
            transport.needsFlush = true
            pendingFlush.append(transport)
        }
        return 1
    }

    /// The session `id` of this loop, if still open.
    func sessionsById(_ id: Int) -> WebSocketSession? { sessions[id] }

    /// The ids of every open session of this loop (``reportGaps(where:at:counted:)``).
    var sessionIds: [Int] { Array(sessions.keys) }

    /// Messages written by a finished recovery (history and held live ones).
    func recordRecovered(_ written: Int) {
        guard written > 0 else { return }
        counters.messagesOut.add(written, ordering: .relaxed)
        metrics.delivered(written)
    }

    // MARK: Keep-alive and shutdown

    /// Pings every session, closing the ones silent for longer than `timeout`, and ages the
    /// recovery watermarks (``RecoveryTable/age()``).
    func sweep(now: NIODeadline, timeout: TimeAmount) {
        let ping = OutboundFrame.ping(allocator: allocator)
        for session in sessions.values {
            session.transport.keepAlive(now: now, timeout: timeout, ping: ping)
        }
        if !recoveries.isEmpty { recoveries.age() }
    }

    /// Drops every connection at once, without waiting for a close handshake (a shutdown that
    /// has run out of time).
    func abortAll() {
        for session in sessions.values { session.transport.abort() }
    }

    /// Starts closing every session with `code` (1001 at shutdown) and returns when each
    /// channel will have closed: after the client's close reply, or the session's close timeout.
    func closeAll(_ code: CloseCode, reason: String) -> [EventLoopFuture<Void>] {
        sessions.values.compactMap { session in
            session.transport.close(code, reason: reason)
            return session.transport.closeFuture
        }
    }

    func snapshot() -> RegistrySnapshot {
        var snapshot = RegistrySnapshot()
        snapshot.connections = sessions.count
        for session in sessions.values where session.user != nil {
            snapshot.authenticated += 1
        }
        snapshot.subscriptions = subscriptions.count
        return snapshot
    }
}

/// A session as a key of the registry's tables: its transport, what a delivery writes to,
/// hashed by identity.
///
/// `@unchecked Sendable` because `SubscriptionIndex` asks its keys to be: the index holding it
/// lives inside one registry, isolated to that registry's event loop, which is also the
/// transport's loop, so the transport is only ever touched there.
struct SessionRef: Hashable, @unchecked Sendable {
    let transport: WebSocketTransport

    init(_ session: WebSocketSession) {
        self.transport = session.transport
    }

    static func == (lhs: SessionRef, rhs: SessionRef) -> Bool { lhs.transport === rhs.transport }

    func hash(into hasher: inout Hasher) {
        hasher.combine(ObjectIdentifier(transport))
    }
}

/// One message ready to fan out on a loop: where it goes and its encoded frame.
struct Delivery: Sendable {
    var topic: Topic?
    var userId: String?
    var frame: OutboundFrame
    /// The same message compressed (permessage-deflate), for connections that agreed to it; nil
    /// when compression is off, no connection agreed, or the message is under the minimum size.
    var compressed: OutboundFrame?
    /// The message's history position, if its topic keeps one (for ``HistoryRecovery``).
    var offset: Int? = nil
    var epoch: String? = nil
    var historyPosition: HistoryPosition? {
        guard let offset, let epoch else { return nil }
        return HistoryPosition(offset: offset, epoch: epoch)
    }
    /// When the message reached this node (from the adapter), for the delivery latency metric.
    var arrivedAt: NIODeadline
    /// Who gets it: a message's subscribers, or a presence or typing signal's audience.
    var audience: Audience = .subscribers

    enum Audience: Equatable {
        /// The subscribers of `topic` (or the sessions of `userId`): a published message.
        case subscribers
        /// Sessions that subscribed to `topic` with `presenceEvents: true`.
        case presenceWatchers
        /// The subscribers of `topic` but the typing user's own sessions.
        case typing(except: String)
    }
}

/// What one registry holds, for `/stats`.
struct RegistrySnapshot: Sendable {
    var connections = 0
    var authenticated = 0
    var subscriptions = 0
}
