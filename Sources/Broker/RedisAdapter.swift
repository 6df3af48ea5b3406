#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Logging
import NIOCore
import NIOPosix
import Synchronization

/// The shared topic space over Redis pub/sub (`PUBSUB_ADAPTER=redis`), through hiredis.
///
/// **Channels** (see ``RedisChannels``): a concrete topic is `SUBSCRIBE <prefix><topic>`, a
/// pattern is `PSUBSCRIBE <prefix><glob>` (filtered again locally, since Redis `*` crosses
/// dots), a user interest is `SUBSCRIBE <prefix>@user:<userId>`. A message is published to its
/// user's channel when it has a `userId`, else to its topic's channel. Payloads are
/// ``EnvelopeCodec`` JSON.
///
/// **Servers.** Each URL of `PUBSUB_REDIS_URL` gets a ``RedisServerLink``: a subscriber and a
/// publisher connection, both NIO channels on one of the node's event loops (hiredis formats
/// and parses). With several servers every topic
/// and every user channel lives on one server chosen by a stable hash (FNV-1a 64 of the
/// channel name without prefix, modulo the number of servers, in the listed order; the same on
/// every node), and patterns are subscribed on every server.
///
/// **Failover, per server** (``RedisLinkStateMachine``): `connecting -> connected -> fallback
/// -> connected`. The node starts while Redis is down. A server that refuses, closes, or does
/// not answer within `timeout` (`PUBSUB_REDIS_TIMEOUT`; every connection is pinged when idle)
/// is unreachable. While a server is not connected, a message whose channel lives on it is
/// delivered to this node's subscribers only (counted in `publishedInFallback`). On reconnect
/// the server link resubscribes every live interest and, once a `PING` sent after the
/// resubscribes is answered, publishes through Redis again: first a ``Envelope/Kind/gap``
/// announcement on each channel it published on meanwhile (at most 10,000), so that the nodes
/// that missed those messages tell their subscribers (``onPeerGap(_:)``). Each transition is logged once
/// (info when connected, warning with the error on fallback), counted in
/// ``status()`` (`transitionsTo`, exported as `chorus_redis_transitions_total{to=...}`).
///
/// **Threads and loops.** `publish`, `addInterest` and `removeInterest` may be called from any
/// thread and only take a short lock: they never wait for Redis, and never deliver. `deliver`
/// is called on the server links' subscriber event loops only (one loop of `eventLoopGroup`
/// per server, taken with `next()`): messages from Redis (one batch per read burst) and, in
/// fallback, this node's own publishes.
///
/// ``start(deliver:)`` sets `SIGPIPE` to ignored for the whole process: hiredis writes with
/// `write(2)`, and a write to a connection Redis just closed must fail with `EPIPE` rather
/// than kill the node.
public final class RedisAdapter: PubSubAdapter {
    /// Distinct pattern globs subscribed one by one per server before one catch-all glob
    /// stands in for them (`PUBSUB_REDIS_MAX_PATTERNS`, ``RedisPatternGlobs``).
    public static let defaultMaxPatterns = 64

    private let channels: RedisChannels
    private let links: [RedisServerLink]
    private let counters: RedisAdapterCounters
    private let overall: RedisOverallState
    public let history: HistoryPolicy
    /// The rings of topics whose server is unreachable (epochs of this process, never Redis').
    private let fallbackHistory: MemoryHistory
    /// Per server (as `links`): its history reads, shared per topic.
    let historyReads: [RedisHistoryReads]

    /// - Parameters:
    ///   - urls: the servers of `PUBSUB_REDIS_URL` (see ``RedisURL/parseList(_:)``), in order.
    ///   - prefix: `PUBSUB_REDIS_PREFIX`, prepended to every channel.
    ///   - nodeId: this node's `NODE_ID`, shown in Redis' `CLIENT LIST` as `chorus:<nodeId>:sub`/`:pub`.
    ///   - timeout: `PUBSUB_REDIS_TIMEOUT`: longest wait for any answer from Redis (a connect,
    ///     a `PUBLISH`, a `PING`) before the connection counts as failed.
    ///   - publishQueueLimit: messages waiting in each of a server's queues (to its publisher
    ///     connection, and in fallback to local delivery); past it, publishes are dropped and counted.
    ///   - publishQueueBytes: the same limit in bytes of encoded messages.
    ///   - maxPatterns: `PUBSUB_REDIS_MAX_PATTERNS`, distinct pattern globs subscribed one by one
    ///     per server before one catch-all glob stands in for them (``RedisPatternGlobs``).
    public convenience init(
        urls: [RedisURL], prefix: String = "pubsub:", nodeId: String, timeout: Duration = .milliseconds(1500),
        publishQueueLimit: Int = 65_536, publishQueueBytes: Int = 64 * 1_048_576, history: HistoryPolicy = .off,
        maxPatterns: Int = RedisAdapter.defaultMaxPatterns,
        logger: Logger, eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) {
        self.init(
            servers: urls.map { ($0, nil) }, prefix: prefix, nodeId: nodeId, timeout: timeout,
            publishQueueLimit: publishQueueLimit, publishQueueBytes: publishQueueBytes, history: history,
            maxPatterns: maxPatterns, logger: logger, eventLoopGroup: eventLoopGroup)
    }

    /// One server per master name of `sentinel` (`PUBSUB_REDIS_MASTER_NAME`), each found and
    /// followed through the Sentinels (see `RedisServerLink+Sentinel.swift`); sharded over the
    /// names exactly as over several URLs.
    public convenience init(
        sentinel: RedisSentinelSettings, prefix: String = "pubsub:", nodeId: String,
        timeout: Duration = .milliseconds(1500), publishQueueLimit: Int = 65_536,
        publishQueueBytes: Int = 64 * 1_048_576, history: HistoryPolicy = .off,
        maxPatterns: Int = RedisAdapter.defaultMaxPatterns, logger: Logger,
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) {
        self.init(
            servers: sentinel.masters.map {
                ($0, RedisSentinelDiscovery(sentinels: sentinel.sentinels, master: $0, timeout: timeout))
            },
            prefix: prefix, nodeId: nodeId, timeout: timeout, publishQueueLimit: publishQueueLimit,
            publishQueueBytes: publishQueueBytes, history: history, maxPatterns: maxPatterns, logger: logger,
            eventLoopGroup: eventLoopGroup)
    }

    init(
        servers: [(url: RedisURL, sentinel: RedisSentinelDiscovery?)], prefix: String, nodeId: String, timeout: Duration,
        publishQueueLimit: Int, publishQueueBytes: Int, history: HistoryPolicy,
        maxPatterns: Int = RedisAdapter.defaultMaxPatterns, logger: Logger,
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) {
        let urls = servers.map(\.url)
        precondition(!urls.isEmpty, "RedisAdapter needs at least one Redis URL")
        precondition(publishQueueLimit > 0 && publishQueueBytes > 0, "publish queue limits must be positive")
        precondition(timeout > .zero, "timeout must be positive")
        let channels = RedisChannels(prefix: prefix, serverCount: urls.count)
        let counters = RedisAdapterCounters()
        let overall = RedisOverallState(serverCount: urls.count)
        self.channels = channels
        self.counters = counters
        self.overall = overall
        self.history = history
        let fallbackHistory = MemoryHistory(policy: history)
        self.fallbackHistory = fallbackHistory
        self.links = servers.enumerated().map { index, server in
            RedisServerLink(
                url: server.url, loop: eventLoopGroup.next(), channels: channels, nodeId: nodeId, timeout: timeout, queueLimit: publishQueueLimit,
                queueByteLimit: publishQueueBytes, logger: logger, counters: counters, sentinel: server.sentinel,
                history: history, fallbackHistory: fallbackHistory, maxPatterns: maxPatterns,
                onTransition: { transition in
                    // Back in Redis: the rings of the outage end (see MemoryHistory.forget), before
                    // anyone hears of the return.
                    if transition.to == .connected, transition.from != .connected {
                        fallbackHistory.forget { channels.server(forKey: channels.key(for: $0)) == index }
                    }
                    overall.record(server: index, transition)
                }, onPeerGap: { overall.record($0) })
        }
        self.historyReads = links.map { RedisHistoryReads(commands: $0.commands, channels: channels, policy: history) }
    }

    public func start(deliver: @escaping @Sendable ([Envelope]) -> Void) {
        signal(SIGPIPE, SIG_IGN)
        for link in links { link.start(deliver: deliver) }
    }

    public func publish(_ envelope: Envelope) {
        publish(envelope, completion: nil)
    }

    /// A message on a topic with history goes through ``RedisHistory/publishScript`` (offset,
    /// stream, `PUBLISH` in one step) and completes with Redis' answer; any other completes once queued.
    public func publish(_ envelope: Envelope, completion: PublishCompletion?) {
        let key = channels.key(for: envelope)
        let link = links[channels.server(forKey: key)]
        if let topic = history.topic(of: envelope) {
            link.publish(envelope, channel: channels.channel(forKey: key), historyTopic: topic, completion: completion)
        } else {
            switch link.publish(envelope, channel: channels.channel(forKey: key)) {
            case .redis: completion?(.accepted)
            case .local: completion?(PublishOutcome(nodeOnly: true))
            case .dropped: completion?(.refused(RedisServerLink.droppedReason))
            }
        }
    }

    /// Reads from the topic's stream on its server, once this node's subscription to the topic
    /// is in place there (so nothing falls between the page and the live messages), sharing
    /// one read with the other reads of the topic waiting at the same time
    /// (``RedisHistoryReads``); from the fallback rings while the server is unreachable.
    public func readHistory(
        _ topic: Topic, _ query: HistoryQuery, completion: @escaping @Sendable (Result<HistoryPage, HistoryError>) -> Void
    ) {
        guard history.covers(topic) else { return completion(.failure(HistoryError("topic '\(topic.name)' keeps no history"))) }
        let server = server(for: topic)
        let (reads, fallbackHistory) = (historyReads[server], self.fallbackHistory)
        links[server].whenSubscribed { throughRedis in
            guard throughRedis else {
                var page = fallbackHistory.read(topic, query)
                page.nodeOnly = true
                return completion(.success(page))
            }
            reads.read(topic, query, completion: completion)
        }
    }

    public func historyStats() -> HistoryStats? {
        guard history.isEnabled else { return nil }
        var stats = fallbackHistory.stats(backend: "redis")
        stats.stored = counters.historyStored
        stats.duplicates += counters.historyDuplicates
        return stats
    }

    public func addInterest(_ interest: Interest) {
        switch interest {
        case .topic(let topic): addChannel(key: channels.key(for: topic))
        case .user(let userId): addChannel(key: channels.key(forUser: userId))
        case .pattern(let pattern): for link in links { link.addPattern(pattern) }
        }
    }

    public func removeInterest(_ interest: Interest) {
        switch interest {
        case .topic(let topic): removeChannel(key: channels.key(for: topic))
        case .user(let userId): removeChannel(key: channels.key(forUser: userId))
        case .pattern(let pattern): for link in links { link.removePattern(pattern) }
        }
    }

    /// Waits on every server (a topic lives on one, patterns on all: asking all is simpler and
    /// costs a lock each when nothing is pending); `body` runs when the last one is settled.
    public func whenInterestSettled(_ body: @escaping @Sendable () -> Void) {
        guard links.count > 1 else { return links[0].whenInterestSettled(body) }
        let countdown = Countdown(links.count)
        for link in links {
            link.whenInterestSettled {
                if countdown.remaining.subtract(1, ordering: .acquiringAndReleasing).newValue == 0 { body() }
            }
        }
    }

    /// Servers still to settle for one ``whenInterestSettled(_:)``.
    private final class Countdown: Sendable {
        let remaining: Atomic<Int>
        init(_ count: Int) { remaining = Atomic(count) }
    }

    private func addChannel(key: String) {
        links[channels.server(forKey: key)].addChannel(channels.channel(forKey: key))
    }

    private func removeChannel(key: String) {
        links[channels.server(forKey: key)].removeChannel(channels.channel(forKey: key))
    }

    public func status() -> AdapterStatus {
        let backends = links.map { $0.backendStatus() }
        let (state, since) = overall.current
        return AdapterStatus(
            adapter: "redis", state: state, since: since, transitions: backends.reduce(0) { $0 + $1.transitions },
            publishedInFallback: counters.publishedInFallback, dropped: counters.dropped, refused: counters.refused,
            malformed: counters.malformed, transitionsTo: counters.transitionsTo, backends: backends)
    }

    public func onPeerGap(_ body: @escaping @Sendable (PeerGap) -> Void) {
        overall.onPeerGap(body)
    }

    public func onReturnFromFallback(_ body: @escaping @Sendable (_ server: Int) -> Void) {
        overall.onReturnFromFallback(body)
    }

    public func interest(_ interest: Interest, livesOn server: Int) -> Bool {
        switch interest {
        case .topic(let topic): channels.server(forKey: channels.key(for: topic)) == server
        case .user(let userId): channels.server(forKey: channels.key(forUser: userId)) == server
        case .pattern: true
        }
    }

    public func shutdown() async {
        for reads in historyReads { reads.stop() }
        await withTaskGroup(of: Void.self) { group in
            for link in links { group.addTask { await link.stop() } }
        }
    }

    /// A publish batch is written to a server and not acknowledged yet (for tests).
    var hasBatchInFlight: Bool { links.contains { $0.hasBatchInFlight } }

    /// Every server connected, and every interest change sent to Redis and confirmed.
    /// For tests: after this, a message published anywhere reaches this node.
    var isSettled: Bool { links.allSatisfy(\.isSettled) }

    /// The index (in `urls`) of the server that carries `topic`.
    func server(for topic: Topic) -> Int { channels.server(forKey: channels.key(for: topic)) }
}
