import Broker
import Logging
import NIOCore
import Store
import Synchronization

/// The parts of a running node that every connection and route shares. Immutable or
/// thread-safe, so one instance serves all event loops.
final class NodeContext: Sendable {
    let configuration: NodeConfiguration
    let verifier: TokenVerifier
    let broker: PubSubBroker
    let hub: ConnectionHub
    let limiter: ConnectionLimiter
    let ids: MessageIDGenerator
    let counters: NodeCounters
    let metrics: NodeMetrics
    let readiness: Readiness
    let logger: Logger
    /// Logs why a request's store or Redis failed, and makes its 503 (which does not say why).
    let outages: BackendOutage
    /// HTTP publishes per user, in messages and bytes, as one WebSocket connection may send.
    let httpPublishes: HTTPPublishLimit
    /// `HISTORY_USER_TOPICS_PER_MINUTE`, over WebSocket and HTTP.
    let historyTopics: HistoryTopicBudget
    /// The request bodies being read.
    let bodies: BodyBudget
    /// Members per topic, this node's share and the cluster's (see ``PresenceService``).
    let presence: PresenceService
    /// Accounts, messages and read receipts; nil with `DATABASE_URL=none`. WebSocket sessions
    /// reach it here (a `read` request), off their event loop.
    let store: (any ChatStore)?
    private let connectionIds = Atomic<Int>(0)

    init(
        configuration: NodeConfiguration, verifier: TokenVerifier, broker: PubSubBroker, group: any EventLoopGroup,
        metrics: NodeMetrics, logger: Logger, store: (any ChatStore)? = nil
    ) {
        self.configuration = configuration
        self.verifier = verifier
        self.broker = broker
        self.counters = NodeCounters()
        self.hub = ConnectionHub(
            group: group, broker: broker, counters: counters, metrics: metrics,
            maxPendingBytes: configuration.maxPendingBytes, writeDelay: TimeAmount(configuration.writeDelay),
            typingTimeout: configuration.typingTimeout,
            presenceBatchRate: configuration.presenceBatchRate,
            deflate: configuration.websocketCompression
                ? OutboundDeflate(
                    minimumSize: configuration.websocketCompressionMinSize, loops: Array(group.makeIterator())) : nil)
        self.presence = PresenceService(configuration: configuration, broker: broker, logger: logger)
        // Presence events published while a Redis server was unreachable never reached this
        // node's watchers: once it is back, they are told to read their lists again.
        // So did messages: every subscriber of a topic (or pattern) whose messages travel through
        // it, and every user whose messages do, is told that some may be missing (`gap`).
        let (hub, members, adapter) = (self.hub, self.presence.store, broker.adapter)
        broker.adapter.onReturnFromFallback { server in
            logger.info("Redis server \(server) is live (back, or reached for the first time): subscribers of its topics are told of the gap")
            hub.reportGaps { adapter.interest($0, livesOn: server) }
            members.afterOutage(server: server) { holds in
                logger.info("presence: Redis server \(server) is back: its topics' watchers are told to resync")
                hub.resyncPresence(where: holds)
            }
        }
        // Another node published while it could not reach Redis: its messages reached no
        // subscriber here, who are told the same way.
        let peerGaps = PeerGapReporter(loop: group.next()) { gap in
            logger.info(
                "Other nodes published while their Redis server was unreachable: subscribers here are told of the gap",
                metadata: [
                    "nodes": "\(gap.origins.sorted().joined(separator: ","))", "topics": "\(gap.topics.count)",
                    "users": "\(gap.users.count)",
                ])
            hub.reportGaps(where: gap.affects)
        }
        broker.adapter.onPeerGap { peerGaps.add($0) }
        self.limiter = ConnectionLimiter(
            perAddress: configuration.maxConnectionsPerIP,
            total: Self.connectionLimit(configured: configuration.maxConnections, openFiles: ResourceLimits.openFileLimit()))
        self.ids = MessageIDGenerator(nodeId: configuration.nodeId)
        self.metrics = metrics
        self.readiness = Readiness()
        self.logger = logger
        self.outages = BackendOutage(logger: logger)
        self.httpPublishes = HTTPPublishLimit(
            messagesPerSecond: configuration.maxMessagesPerSecond, bytesPerSecond: configuration.maxBytesPerSecond,
            maxMessageSize: configuration.maxMessageSize)
        self.bodies = BodyBudget(maxBodySize: configuration.maxMessageSize)
        self.historyTopics = HistoryTopicBudget(perMinute: configuration.historyUserTopicsPerMinute)
        self.store = store
    }

    /// Descriptors kept for everything but WebSockets (listeners, plain HTTP requests, Redis,
    /// the database, log files): 256, or a quarter of a small limit.
    static func reservedDescriptors(openFiles: Int) -> Int {
        min(256, openFiles / 4)
    }

    /// The node's WebSocket limit: `WEBSOCKET_MAX_CONNECTIONS` if set, and never more than the
    /// open-file limit leaves after ``reservedDescriptors(openFiles:)``. Past it an upgrade gets
    /// HTTP 503, while a descriptor is still free to answer with, instead of failing at `accept`.
    static func connectionLimit(configured: Int?, openFiles: Int?) -> Int {
        let byDescriptors = openFiles.map { max(1, $0 - reservedDescriptors(openFiles: $0)) } ?? Int.max
        return min(configured ?? Int.max, byDescriptors)
    }

    /// What `/ready` says: the node's own state, or `redis unreachable` while
    /// `READY_REQUIRES_REDIS` is set and a Redis server is not connected; ready only when 200.
    var readinessStatus: (status: String, ready: Bool) {
        let state = readiness.state
        guard state == .ready else { return ("\(state)", false) }
        if configuration.readyRequiresRedis, [.connecting, .fallback].contains(broker.adapter.status().state) {
            return ("redis unreachable", false)
        }
        return ("ready", true)
    }

    func nextConnectionId() -> Int {
        connectionIds.add(1, ordering: .relaxed).newValue
    }
}

/// Whether the node takes new clients: `/ready` answers 503 unless `ready`.
final class Readiness: Sendable {
    enum State: Int, Sendable, CustomStringConvertible {
        case starting, ready, draining
        var description: String { ["starting", "ready", "draining"][rawValue] }
    }

    private let value = Atomic<Int>(State.starting.rawValue)

    var state: State { State(rawValue: value.load(ordering: .relaxed))! }

    func set(_ state: State) {
        value.store(state.rawValue, ordering: .relaxed)
    }

    /// Turns `starting` into `ready`; false (and no change) when the node already drains.
    @discardableResult
    func becomeReady() -> Bool {
        value.compareExchange(expected: State.starting.rawValue, desired: State.ready.rawValue, ordering: .relaxed).exchanged
    }
}
