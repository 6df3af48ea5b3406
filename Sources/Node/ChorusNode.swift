import Broker
import Foundation
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import Store
import Synchronization
import UnixSignals

/// One Chorus node: HTTP and WebSocket on one port, its connection registries, and its door
/// to the topic space. Runs as a swift-service-lifecycle `Service`.
///
/// Start order: the broker (adapter) first, then the HTTP/WebSocket server, then the node
/// reports ready. Graceful shutdown runs the other way: `/ready` answers 503, the server stops
/// accepting and closes every WebSocket with 1001 (going away) and waits for them, then the
/// adapter stops. The whole shutdown is bounded by `DRAIN_TIMEOUT`.
public final class ChorusNode: Service, Sendable {
    public let configuration: NodeConfiguration
    public let metrics: NodeMetrics
    let context: NodeContext
    /// Accounts and messages; nil with `DATABASE_URL=none`.
    private let store: (any ChatStore)?
    private let group: any EventLoopGroup
    private let logger: Logger
    private let signals: [UnixSignal]
    private let ports = Mutex<(http: Int?, websocket: Int?)>((nil, nil))
    /// Callers of ``httpPort()`` waiting for the start to finish; nil once it has (or ``run()``
    /// ended first).
    private let running = Mutex<[CheckedContinuation<Void, Never>]?>([])
    /// The running services, once ``run()`` made them; `stopRequested` keeps a ``shutdown()``
    /// that came before.
    private let serviceGroup = Mutex<(group: ServiceGroup?, stopRequested: Bool)>((nil, false))
    private let routeList = Mutex<[String]>([])
    /// `HTTP_MAX_CONNECTIONS`, shared by the node's listeners (see ``AcceptGuard``).
    private let acceptGate: AcceptGate
    /// TCP connections per client network (`HTTP_MAX_CONNECTIONS_PER_IP`), on all listeners.
    private let peers: PeerLimit

    /// - Parameters:
    ///   - gracefulShutdownSignals: signals that start a graceful shutdown (`chorus` passes
    ///     SIGTERM and SIGINT; tests pass none and call ``shutdown()``).
    public init(
        configuration: NodeConfiguration,
        logger: Logger,
        metrics: NodeMetrics = NodeMetrics(),
        gracefulShutdownSignals: [UnixSignal] = [],
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) throws {
        var logger = logger
        logger[metadataKey: "node"] = .string(configuration.nodeId)
        self.configuration = configuration
        self.metrics = metrics
        self.logger = logger
        self.group = eventLoopGroup
        self.signals = gracefulShutdownSignals
        let adapter: any PubSubAdapter =
            switch configuration.adapter {
            case .memory:
                MemoryAdapter(maxMessages: configuration.memoryMaxMessages, history: configuration.history)
            case .redis where configuration.redisSentinel != nil:
                RedisAdapter(
                    sentinel: configuration.redisSentinel!, prefix: configuration.redisPrefix,
                    nodeId: configuration.nodeId, timeout: configuration.redisTimeout, history: configuration.history,
                    maxPatterns: configuration.redisMaxPatterns, logger: logger, eventLoopGroup: eventLoopGroup)
            case .redis:
                RedisAdapter(
                    urls: configuration.redisURLs, prefix: configuration.redisPrefix, nodeId: configuration.nodeId,
                    timeout: configuration.redisTimeout, history: configuration.history,
                    maxPatterns: configuration.redisMaxPatterns, logger: logger, eventLoopGroup: eventLoopGroup)
            }
        self.store = configuration.database.map {
            makeStore($0, logger: logger, configuration: StoreConfiguration(
                requestTimeout: configuration.databaseTimeout, messageRetention: configuration.messageRetention))
        }
        self.acceptGate = AcceptGate(
            limit: AcceptGate.connectionLimit(
                configured: configuration.httpMaxConnections, openFiles: ResourceLimits.openFileLimit(),
                inUse: ResourceLimits.openDescriptorCount() ?? 0))
        self.peers = PeerLimit(
            perAddress: configuration.tcpConnectionsPerIP, trusted: configuration.trustedProxies)
        self.context = NodeContext(
            configuration: configuration, verifier: try TokenVerifier(key: configuration.tokenKey, rules: configuration.tokenRules),
            broker: PubSubBroker(adapter: adapter), group: eventLoopGroup, metrics: metrics, logger: logger, store: store)
    }

    /// The HTTP port actually bound (useful with port 0); waits until the server listens.
    /// Throws ``NodeNotListening`` when ``run()`` ended without listening (a taken port).
    public func httpPort() async throws -> Int {
        await waitUntilRunning()
        guard let port = ports.withLock({ $0.http }) else { throw NodeNotListening() }
        return port
    }

    /// The WebSocket port actually bound (the HTTP port unless `WEBSOCKET_PORT` differs).
    public func websocketPort() async throws -> Int {
        await waitUntilRunning()
        let separate = separateWebSocketListener
        guard let port = ports.withLock({ separate ? $0.websocket : $0.http }) else { throw NodeNotListening() }
        return port
    }

    private func waitUntilRunning() async {
        await withCheckedContinuation { continuation in
            let waiting = running.withLock { waiters in
                waiters?.append(continuation)
                return waiters != nil
            }
            if !waiting { continuation.resume() }
        }
    }

    /// Resumes every caller waiting for the start (it finished, or ``run()`` ended first).
    private func releaseWaiters() {
        let waiters = running.withLock { waiting in
            defer { waiting = nil }
            return waiting ?? []
        }
        for waiter in waiters { waiter.resume() }
    }

    private var separateWebSocketListener: Bool {
        configuration.websocketEnabled && configuration.websocketPort != configuration.httpPort
    }

    /// Records a bound port; once every listener is bound and the store is open and migrated,
    /// the node reports ready and ``httpPort()`` callers resume.
    private func listening(http: Int? = nil, websocket: Int? = nil) {
        let complete = ports.withLock { ports -> Bool in
            if let http { ports.http = http }
            if let websocket { ports.websocket = websocket }
            return ports.http != nil && (ports.websocket != nil || !separateWebSocketListener)
        }
        guard complete else { return }
        // Only a node that listens takes part in presence: its first reap removes the earlier
        // boots of its NODE_ID, which a second start on a taken port must not do to a live node.
        context.presence.store.start()
        Task { [self] in
            do {
                try await store?.ready()
                if context.readiness.becomeReady() {
                    logger.info(
                        "node ready",
                        metadata: [
                            "adapter": "\(configuration.adapter.rawValue)", "maxConnections": "\(context.limiter.total)",
                            "maxTCPConnections": "\(acceptGate.limit)",
                        ])
                }
            } catch {
                // The store's service has failed too, which stops the node.
                logger.error("store unavailable: \(error)")
            }
            releaseWaiters()
        }
    }

    /// The HTTP routes served, as `METHOD /path` (path parameters as `:name`); for the test
    /// that holds docs/openapi.yaml to what the node serves.
    public func routes() async -> [String] {
        await waitUntilRunning()
        return routeList.withLock { $0 }
    }

    /// Starts a graceful shutdown (as SIGTERM does); before ``run()`` has started its services,
    /// as soon as it does.
    public func shutdown() async {
        let group = serviceGroup.withLock { state in
            if state.group == nil { state.stopRequested = true }
            return state.group
        }
        await group?.triggerGracefulShutdown()
    }

    public func run() async throws {
        let router = Router(context: NodeRequestContext.self)
        router.add(middleware: MetricsMiddleware())
        if let origins = configuration.corsAllowedOrigins { router.add(middleware: CORSPolicy(origins: origins)) }
        router.add(middleware: HTTPErrorMiddleware())
        router.add(middleware: BackendErrorMiddleware(outages: context.outages))
        let sampler = RateSampler()
        let (prefix, timeout) = (configuration.redisPrefix, configuration.redisTimeout)
        let directory: (any NodeDirectory)? = configuration.onFirstRedisServer(
            sentinel: { RedisNodeDirectory(sentinel: $0, prefix: prefix, timeout: timeout) },
            url: { RedisNodeDirectory(url: $0, prefix: prefix, timeout: timeout) })
        let collector = StatsCollector(node: context, sampler: sampler, startedAt: Date(), directory: directory)
        let clusterAttempts: (any AttemptCounter)? = configuration.onFirstRedisServer(
            sentinel: { RedisAttemptCounter(sentinel: $0, prefix: prefix, timeout: timeout) },
            url: { RedisAttemptCounter(url: $0, prefix: prefix, timeout: timeout) })
        NodeRoutes(node: context, collector: collector).register(on: router)
        PresenceRoutes(node: context).register(on: router)
        HistoryRoutes(node: context).register(on: router)
        if let store {
            AccountRoutes(node: context, store: store, clusterAttempts: clusterAttempts).register(on: router)
            MessageRoutes(node: context, store: store, events: MessageEvents(node: context)).register(on: router)
            ReadReceiptRoutes(receipts: ReadReceipts(node: context, store: store)).register(on: router)
        }
        routeList.withLock { $0 = router.routes.map { "\($0.method) \($0.path)" } }
        let sharedPort = configuration.websocketEnabled && !separateWebSocketListener
        let admission = WebSocketAdmission(node: context)
        let idleTimeout = configuration.httpIdleTimeout
        let app = Application(
            router: router,
            server: HTTPServerBuilder { responder in
                NodeChildChannel(
                    responder: responder, admission: sharedPort ? admission : nil, idleTimeout: idleTimeout)
            },
            configuration: .init(address: .hostname(configuration.httpHost, port: configuration.httpPort)),
            onServerRunning: { [self] channel in
                await guardAccepts(on: channel, listener: "HTTP_PORT")
                listening(http: channel.localAddress?.port)
            },
            eventLoopGroupProvider: .shared(group),
            logger: logger)
        var services: [any Service] = [
            BrokerService(broker: context.broker, hub: context.hub, logger: logger),
            PresenceLifecycle(presence: context.presence),
            HousekeepingService(node: context, sampler: sampler),
        ]
        if let directory {
            services.append(
                HeartbeatService(
                    collector: collector, directory: directory, interval: configuration.clusterHeartbeatInterval))
        }
        if let store { services.append(store) }
        if let interval = configuration.memoryTrimInterval {
            services.append(
                HeapTrimmer(interval: interval, threshold: HeapTrimmer.defaultThreshold, counters: context.counters, logger: logger))
        }
        services.append(app)
        if separateWebSocketListener {
            let listener = NodeChildChannel(
                responder: Self.notFoundResponder, admission: admission, idleTimeout: configuration.httpIdleTimeout
            ).server(
                configuration: .init(address: .hostname(configuration.websocketHost, port: configuration.websocketPort)),
                onServerRunning: { [self] channel in
                    await guardAccepts(on: channel, listener: "WEBSOCKET_PORT")
                    listening(websocket: channel.localAddress?.port)
                },
                eventLoopGroup: group, logger: logger)
            services.append(listener)
        }
        services.append(
            DrainService(
                readiness: context.readiness, hub: context.hub, presence: context.presence,
                budget: Self.closeHandshakeBudget(configuration.drainTimeout, presenceGrace: context.presence.drainGrace),
                logger: logger))
        var groupConfiguration = ServiceGroupConfiguration(
            services: services.map { .init(service: $0) }, gracefulShutdownSignals: signals, logger: logger)
        groupConfiguration.maximumGracefulShutdownDuration = configuration.drainTimeout
        // Past the drain, services are cancelled; ServiceLifecycle ends the process with a fatal
        // error if one has not stopped by this. A Redis link may be inside a call bounded by
        // PUBSUB_REDIS_TIMEOUT, and a loaded machine is slow: generous, so that a slow stop is
        // still a clean exit rather than a crash.
        groupConfiguration.maximumCancellationDuration = .seconds(10) + configuration.redisTimeout * 2
        let serviceGroup = ServiceGroup(configuration: groupConfiguration)
        let stopRequested = self.serviceGroup.withLock { state in
            state.group = serviceGroup
            return state.stopRequested
        }
        if stopRequested { await serviceGroup.triggerGracefulShutdown() }
        defer { releaseWaiters() }
        do {
            try await serviceGroup.run()
        } catch {
            throw listenError(error) ?? error
        }
        logger.info("node stopped")
    }

    /// Puts an ``AcceptGuard`` first in a listener's pipeline: the node-wide connection cap, the
    /// cap per client network, and a pause instead of a spin when `accept` runs out of descriptors.
    private func guardAccepts(on listener: any Channel, listener name: String) async {
        let (gate, peers, logger) = (acceptGate, peers, logger)
        do {
            try await listener.eventLoop.submit {
                try listener.pipeline.syncOperations.addHandler(
                    AcceptGuard(gate: gate, peers: peers, logger: logger, listener: name), position: .first)
            }.get()
        } catch {
            logger.error("could not guard the listener's accepts: \(error)", metadata: ["listener": "\(name)"])
        }
    }

    /// How long the drain waits for WebSocket close handshakes: all of `DRAIN_TIMEOUT` but a
    /// reserve (a quarter, at most 1 s) for what follows (the server's remaining connections, the
    /// store, the adapter) and the presence grace (``PresenceService/drainGrace``, at most half of
    /// `DRAIN_TIMEOUT`). A shutdown that overran `DRAIN_TIMEOUT` would be cancelled, which is no
    /// clean stop.
    static func closeHandshakeBudget(_ drainTimeout: Duration, presenceGrace: Duration = .zero) -> Duration {
        drainTimeout - min(drainTimeout / 4, .seconds(1)) - presenceGrace
    }

    /// `error` as a ``ListenError`` naming the listener that is not bound yet, when it is a
    /// failure to listen.
    private func listenError(_ error: any Error) -> ListenError? {
        guard let reason = ListenError.reason(of: error) else { return nil }
        if ports.withLock({ $0.http }) == nil {
            return ListenError(
                variable: "HTTP_PORT", host: configuration.httpHost, port: configuration.httpPort, reason: reason)
        }
        return ListenError(
            variable: "WEBSOCKET_PORT", host: configuration.websocketHost, port: configuration.websocketPort,
            reason: reason)
    }

    /// Answers every plain HTTP request on a WebSocket-only listener: 426 for `/ws` (an upgrade
    /// is taken there), 404 for anything else.
    private static let notFoundResponder: HTTPChannelHandler.Responder = { request, writer, _ in
        let isWebSocketPath = request.uri.path == "/ws"
        let status: HTTPResponse.Status = isWebSocketPath ? .upgradeRequired : .notFound
        let message = isWebSocketPath ? "upgrade required: /ws speaks WebSocket only" : "this port serves /ws only"
        var body = ByteBuffer()
        body.writeBytes(ServerMessage.error(code: status.code, message: message, details: nil, id: nil).encoded())
        var bodyWriter = try await writer.writeHead(.init(status: status, headerFields: [.contentType: "application/json", .contentLength: "\(body.readableBytes)"]))
        try await bodyWriter.write(body)
        try await bodyWriter.finish(nil)
    }
}

/// Runs the adapter for the node's lifetime: delivers what it receives to the hub, and stops
/// it once everything in front of it has drained.
struct BrokerService: Service {
    let broker: PubSubBroker
    let hub: ConnectionHub
    let logger: Logger

    func run() async throws {
        let hub = self.hub
        broker.start { batch in hub.deliver(batch) }
        try? await gracefulShutdown()
        await broker.shutdown()
        logger.info("adapter stopped")
    }
}

/// Keep-alive sweeps and rate samples, on the node's event loops.
struct HousekeepingService: Service {
    let node: NodeContext
    let sampler: RateSampler

    func run() async throws {
        let interval = TimeAmount(node.configuration.pingInterval)
        let timeout = TimeAmount(node.configuration.pingTimeout)
        var tasks: [RepeatedTask] = []
        for registry in node.hub.registries {
            tasks.append(registry.loop.scheduleRepeatedTask(initialDelay: interval, delay: interval) { _ in
                registry.assumeIsolated { $0.sweep(now: .now(), timeout: timeout) }
            })
        }
        let counters = node.counters
        let sampler = self.sampler
        tasks.append(node.hub.registries[0].loop.scheduleRepeatedTask(initialDelay: .zero, delay: .seconds(1)) { _ in
            sampler.record(
                published: counters.messagesIn.load(ordering: .relaxed),
                delivered: counters.messagesOut.load(ordering: .relaxed))
        })
        try? await gracefulShutdown()
        for task in tasks { task.cancel() }
    }
}

/// Announces this node's stats in the cluster directory every `interval`, with a time to live
/// of three intervals, and withdraws them at shutdown.
struct HeartbeatService: Service {
    let collector: StatsCollector
    let directory: any NodeDirectory
    let interval: Duration

    func run() async throws {
        let nodeId = collector.node.configuration.nodeId
        let encoder = ISO8601.encoder()
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                if let document = try? encoder.encode(await collector.stats()) {
                    directory.announce(nodeId: nodeId, document: Array(document), ttl: interval * 3)
                }
                try? await Task.sleep(for: interval)
            }
        }
        await directory.withdraw(nodeId: nodeId)
    }
}

/// The first service to hear of a graceful shutdown: turns `/ready` to 503 (new WebSockets are
/// refused), closes every WebSocket with 1001 and waits until they are closed, before the
/// server stops accepting and the adapter stops. Connections that have not finished the close
/// handshake within `budget` (see ``ChorusNode/closeHandshakeBudget(_:presenceGrace:)``) are dropped.
///
/// The wait is ours to do: Hummingbird's server returns once its listener closes, without
/// waiting for upgraded channels, which no task of its own tracks.
struct DrainService: Service {
    let readiness: Readiness
    let hub: ConnectionHub
    let presence: PresenceService
    let budget: Duration
    let logger: Logger

    func run() async throws {
        try? await gracefulShutdown()
        // A node that never became ready (a listener failed to bind) says nothing of draining,
        // so the reason it stops is the last thing in its log.
        let wasReady = readiness.state == .ready
        readiness.set(.draining)
        presence.holdLeaves()
        if wasReady { logger.info("draining: not ready, closing WebSockets with 1001") }
        await hub.closeAll(.goingAway, reason: "node shutting down", within: budget)
        if wasReady { logger.info("WebSockets closed") }
    }
}
