import Broker
import Foundation
import Logging

/// Gathers `/stats` for this node, and for the whole cluster from the node directory.
struct StatsCollector: Sendable {
    let node: NodeContext
    let sampler: RateSampler
    let startedAt: Date
    /// Where nodes announce their stats (Redis); nil with the memory adapter.
    let directory: (any NodeDirectory)?

    /// This node's stats.
    func stats() async -> NodeStats {
        let registries = await node.hub.snapshot()
        let interests = node.broker.interestCounts()
        let counters = node.counters
        let rates = sampler.rates()
        var stats = NodeStats(
            nodeId: node.configuration.nodeId,
            status: "\(node.readiness.state)",
            startedAt: ISO8601.string(startedAt),
            uptimeSeconds: Date().timeIntervalSince(startedAt),
            connections: .init(
                total: registries.connections, authenticated: registries.authenticated,
                users: node.presence.connectedUsers,
                acceptedSinceStart: counters.connectionsAccepted.load(ordering: .relaxed),
                refusedByIPLimit: counters.connectionsRefused.load(ordering: .relaxed),
                refusedNodeFull: counters.connectionsRefusedNodeFull.load(ordering: .relaxed),
                closedSlowConsumer: counters.slowConsumers.load(ordering: .relaxed),
                closedPingTimeout: counters.pingTimeouts.load(ordering: .relaxed),
                closedFlooding: counters.floods.load(ordering: .relaxed),
                authExpired: counters.tokensExpired.load(ordering: .relaxed),
                closedTokenExpired: counters.closedTokenExpired.load(ordering: .relaxed),
                readsPaused: counters.readsPaused.load(ordering: .relaxed),
                topIPs: node.limiter.top(10).map { .init(ip: $0.address, connections: $0.connections) },
                compressing: counters.compressingConnections.load(ordering: .relaxed)),
            subscriptions: .init(total: registries.subscriptions, topics: interests.topics, patterns: interests.patterns),
            messages: .init(
                published: counters.messagesIn.load(ordering: .relaxed),
                delivered: counters.messagesOut.load(ordering: .relaxed),
                publishedPerSecond: rates.published, deliveredPerSecond: rates.delivered,
                droppedBacklog: counters.backlogDropped.load(ordering: .relaxed),
                topTopics: node.hub.activity.top(10).map { .init(topic: $0.topic, messages: $0.messages) },
                compressed: counters.messagesCompressed.load(ordering: .relaxed),
                inflated: counters.messagesInflated.load(ordering: .relaxed),
                pacedDrains: counters.pacedDrains.load(ordering: .relaxed),
                gapNotices: counters.gapNotices.load(ordering: .relaxed)),
            adapter: node.broker.adapter.status(),
            memory: .init(
                residentBytes: residentMemoryBytes(), trims: counters.heapTrims.load(ordering: .relaxed),
                trimmedBytes: counters.heapTrimmedBytes.load(ordering: .relaxed)),
            history: node.broker.adapter.historyStats())
        stats.presence = PresenceStats(node: node)
        stats.store = node.store.map { .init(messagesPruned: $0.pruned.messages, deletedIdsPruned: $0.pruned.deletedIds) }
        return stats
    }


    /// Every live node's stats, as announced in the directory, and their totals. With the memory
    /// adapter, or while the directory cannot be read, the list holds this node only and says why.
    func clusterStats() async -> ClusterStats {
        let own = await stats()
        guard let directory else {
            return ClusterStats(nodes: [own], complete: false, error: "memory adapter: there is no cluster to ask")
        }
        do {
            let decoder = ISO8601.decoder()
            var nodes = try await directory.members().compactMap { try? decoder.decode(NodeStats.self, from: Data($0)) }
            if !nodes.contains(where: { $0.nodeId == own.nodeId }) { nodes.append(own) }
            // Announcements Redis refuses (out of memory) expire: live nodes would be missing.
            let problem = directory.announcementProblem
            return ClusterStats(nodes: nodes.sorted { $0.nodeId < $1.nodeId }, complete: problem == nil, error: problem)
        } catch {
            return ClusterStats(nodes: [own], complete: false, error: "cluster directory unreachable: \(error)")
        }
    }
}

/// `GET /stats?scope=cluster`: every live node and the sums over them.
struct ClusterStats: Encodable, Sendable {
    struct Totals: Encodable, Sendable {
        var nodes = 0
        var connections = 0
        var authenticated = 0
        var subscriptions = 0
        var published = 0
        var delivered = 0
        var publishedPerSecond = 0.0
        var deliveredPerSecond = 0.0
        var residentBytes = 0
    }

    var scope = "cluster"
    /// False when only this node could be listed (see `error`).
    var complete: Bool
    var error: String?
    var totals: Totals
    var nodes: [NodeStats]

    init(nodes: [NodeStats], complete: Bool, error: String?) {
        self.nodes = nodes
        self.complete = complete
        self.error = error
        var totals = Totals()
        for node in nodes {
            totals.nodes += 1
            totals.connections += node.connections.total
            totals.authenticated += node.connections.authenticated
            totals.subscriptions += node.subscriptions.total
            totals.published += node.messages.published
            totals.delivered += node.messages.delivered
            totals.publishedPerSecond += node.messages.publishedPerSecond
            totals.deliveredPerSecond += node.messages.deliveredPerSecond
            totals.residentBytes += node.memory.residentBytes
        }
        self.totals = totals
    }
}
