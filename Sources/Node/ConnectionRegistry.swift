import Broker
import NIOCore

/// The WebSocket connections of one event loop: who they are, what they subscribed to, and the
/// fan-out of delivered messages to them.
///
/// There is one registry per NIO event loop and its executor *is* that loop, so the sessions it
/// holds (channel handlers of the same loop) call it synchronously through `assumeIsolated`, and
/// a delivered message reaches every subscriber of this loop with one hop (``deliver(_:)``)
/// and no further task or actor switch. Registries share nothing, so a hot topic fans out on all
/// loops in parallel instead of serializing through one global actor.
actor ConnectionRegistry {
    nonisolated let loop: any EventLoop
    nonisolated var unownedExecutor: UnownedSerialExecutor { loop.executor.asUnownedSerialExecutor() }

    private let broker: PubSubBroker
    private let counters: NodeCounters
    private let metrics: NodeMetrics
    private var sessions: [Int: NIOLoopBound<WebSocketSession>] = [:]
    private var sessionsByUser: [String: Set<Int>] = [:]
    private var subscriptions = SubscriptionIndex<Int>()
    /// Sessions written to during the current delivery, flushed once at its end.
    private var pendingFlush: [WebSocketSession] = []
    private let allocator = ByteBufferAllocator()

    init(loop: any EventLoop, broker: PubSubBroker, counters: NodeCounters, metrics: NodeMetrics) {
        self.loop = loop
        self.broker = broker
        self.counters = counters
        self.metrics = metrics
    }

    // MARK: Membership (called by sessions on this loop)

    func add(_ session: NIOLoopBound<WebSocketSession>, id: Int) {
        sessions[id] = session
    }

    /// Forgets session `id` and releases everything it held in the broker.
    func remove(_ id: Int) {
        guard let session = sessions.removeValue(forKey: id)?.value else { return }
        for pattern in session.subscriptions {
            subscriptions.remove(pattern, id)
            broker.release(Self.interest(pattern))
        }
        if let user = session.user { forget(id, user: user.id) }
    }

    func authenticate(_ id: Int, as userId: String) {
        if sessionsByUser[userId, default: []].insert(id).inserted {
            broker.retain(.user(userId))
        }
    }

    func subscribe(_ id: Int, to pattern: TopicPattern) {
        if subscriptions.insert(pattern, id) { broker.retain(Self.interest(pattern)) }
    }

    func unsubscribe(_ id: Int, from pattern: TopicPattern) {
        if subscriptions.remove(pattern, id) { broker.release(Self.interest(pattern)) }
    }

    private func forget(_ id: Int, user: String) {
        guard sessionsByUser[user]?.remove(id) != nil else { return }
        if sessionsByUser[user]!.isEmpty {
            sessionsByUser[user] = nil
            broker.release(.user(user))
        }
    }

    private static func interest(_ pattern: TopicPattern) -> Interest {
        if let topic = pattern.topic { return .topic(topic) }
        return .pattern(pattern)
    }

    // MARK: Fan-out

    /// Writes every message of a batch to each matching session of this loop, then flushes each
    /// session once, so a burst shares system calls.
    func deliver(_ batch: [Delivery]) {
        var written = 0
        for delivery in batch {
            if let userId = delivery.userId {
                for id in sessionsByUser[userId] ?? [] { written += write(delivery.frame, to: id) }
            } else if let topic = delivery.topic {
                subscriptions.forEachMatch(topic) { id in written += write(delivery.frame, to: id) }
            }
        }
        for session in pendingFlush { session.flush() }
        pendingFlush.removeAll(keepingCapacity: true)
        if written > 0 {
            counters.messagesOut.add(written, ordering: .relaxed)
            metrics.delivered(written)
        }
    }

    private func write(_ frame: OutboundFrame, to id: Int) -> Int {
        guard let session = sessions[id]?.value, session.write(frame) else { return 0 }
        if !session.needsFlush {
            session.needsFlush = true
            pendingFlush.append(session)
        }
        return 1
    }

    // MARK: Keep-alive and shutdown

    /// Pings every session, closing the ones silent for longer than `timeout`.
    func sweep(now: NIODeadline, timeout: TimeAmount) {
        let ping = OutboundFrame.ping(allocator: allocator)
        for bound in sessions.values {
            bound.value.keepAlive(now: now, timeout: timeout, ping: ping)
        }
    }

    /// Starts closing every session with `code` (1001 at shutdown) and returns when each
    /// channel will have closed: after the client's close reply, or the session's close timeout.
    func closeAll(_ code: CloseCode, reason: String) -> [EventLoopFuture<Void>] {
        sessions.values.compactMap { bound in
            bound.value.close(code, reason: reason)
            return bound.value.closeFuture
        }
    }

    func snapshot() -> RegistrySnapshot {
        var snapshot = RegistrySnapshot()
        snapshot.connections = sessions.count
        for bound in sessions.values where bound.value.user != nil {
            snapshot.authenticated += 1
        }
        snapshot.subscriptions = subscriptions.count
        snapshot.users = sessionsByUser.count
        return snapshot
    }
}

/// One message ready to fan out on a loop: where it goes and its encoded frame.
struct Delivery: Sendable {
    var topic: Topic?
    var userId: String?
    var frame: OutboundFrame
}

/// What one registry holds, for `/stats`.
struct RegistrySnapshot: Sendable {
    var connections = 0
    var authenticated = 0
    var subscriptions = 0
    var users = 0
}
