import Broker
import Foundation
import Logging
import NIOCore
import Synchronization

/// The node's side of presence: how many of its own connections each user has in each topic,
/// and the store (``LocalPresenceStore`` or ``RedisPresenceStore``) that adds up every node's
/// share and publishes `join`/`leave`/`update` once for the cluster.
///
/// Sessions call ``join(topic:userId:data:)`` and ``leave(topic:userId:)`` from their event
/// loops; the table is behind a mutex and the store is told inside it, so the store sees the
/// node's changes in the order they happened. Thread-safe.
final class PresenceService: Sendable {
    private struct Local {
        var connections: Int
        /// nil: the member document without data, made when needed rather than kept for every
        /// connected user (`presence.user.<id>` has no data).
        var member: RawJSON?

        func document(userId: String) -> RawJSON {
            member ?? PresenceMember.document(userId: userId, data: nil)
        }
    }

    /// The node's memberships. Every authenticated connection is a member of its user's
    /// `presence.user.<id>`, without data, so those are counted by user id alone: no topic name
    /// and no member document is kept per connected user. Members are indexed by topic, so
    /// that a topic's members are found without a scan of every topic's.
    private struct Tables {
        var members: [Topic: MemberTable<Local>] = [:]
        /// Connections per user in `presence.user.<id>`.
        var users: [String: Int] = [:]
        /// The node drains: leaves are not told to the store, which withdraws the node's whole
        /// share after the grace (``PresenceLifecycle``).
        var holding = false
        /// A leave was not told to the store while holding.
        var held = false
        /// The node drains (with or without a grace): connections leave at once, the drain's
        /// grace deciding when the store hears of it.
        var draining = false
        /// Connections whose leaves wait for `PRESENCE_RECONNECT_GRACE`, in all and per user.
        var graceLeaves = 0
        var graceLeavesByUser: [String: Int] = [:]
        /// The store was shut down: late leaves have nothing left to tell.
        var stopped = false
    }

    /// The most connections whose leaves wait for the reconnect grace at once, on the node and
    /// per user: a client that joins topics and drops its connection in a loop keeps at most
    /// this many shares alive past their connections. Past either, a connection leaves at once.
    static let maxGraceLeaves = 4_096
    static let maxGraceLeavesPerUser = 8

    let store: any PresenceStore
    /// `PRESENCE_DRAIN_GRACE`, at most half of `DRAIN_TIMEOUT` (the drain's close handshakes keep
    /// the rest); zero where there is no other node to reconnect to (memory adapter).
    let drainGrace: Duration
    /// `PRESENCE_RECONNECT_GRACE`: how long a connection that ended silently stays counted.
    let reconnectGrace: TimeAmount
    private let table = Mutex(Tables())

    /// Whether `topic` is `presence.user.<userId>`.
    private static func isUserTopic(_ topic: Topic, of userId: String) -> Bool {
        let prefix = PresenceEventData.userTopicPrefix
        return topic.name.utf8.count == prefix.utf8.count + userId.utf8.count && topic.name.hasPrefix(prefix)
            && topic.name.utf8.dropFirst(prefix.utf8.count).elementsEqual(userId.utf8)
    }

    init(configuration: NodeConfiguration, broker: PubSubBroker, logger: Logger) {
        drainGrace =
            configuration.adapter == .memory ? .zero : min(configuration.presenceDrainGrace, configuration.drainTimeout / 2)
        reconnectGrace = TimeAmount(configuration.presenceReconnectGrace)
        switch configuration.adapter {
        case .memory:
            store = LocalPresenceStore(origin: configuration.nodeId) { broker.publish($0) }
        case .redis where configuration.redisSentinel != nil:
            store = RedisPresenceStore(
                sentinel: configuration.redisSentinel!, prefix: configuration.redisPrefix, nodeId: configuration.nodeId,
                timeout: configuration.redisTimeout, ttl: configuration.presenceTTL, logger: logger)
        case .redis:
            store = RedisPresenceStore(
                urls: configuration.redisURLs, prefix: configuration.redisPrefix, nodeId: configuration.nodeId,
                timeout: configuration.redisTimeout, ttl: configuration.presenceTTL, logger: logger)
        }
    }

    /// `presence.user.<id>`: the topic whose single member is user `<id>` while connected.
    static func userTopic(_ userId: String) -> Topic? {
        try? Topic(PresenceEventData.userTopicPrefix + userId)
    }

    /// One more connection of `userId` in `topic` on this node. With `data`, the member's data
    /// becomes it (an `update` if the member was there already with other data).
    func join(topic: Topic, userId: String, data: RawJSON?) {
        table.withLock { tables in
            if data == nil, Self.isUserTopic(topic, of: userId) {
                let connections = tables.users[userId, default: 0] + 1
                tables.users[userId] = connections
                store.set(
                    topic: topic, userId: userId, connections: connections,
                    member: PresenceMember.document(userId: userId, data: nil), announceUpdate: false)
                return
            }
            var entry = tables.members[topic]?[userId] ?? Local(
                connections: 0,
                member: data == nil ? nil : PresenceMember.document(userId: userId, data: data))
            entry.connections += 1
            if let data { entry.member = PresenceMember.document(userId: userId, data: data) }
            tables.members[topic, default: MemberTable()][userId] = entry
            store.set(
                topic: topic, userId: userId, connections: entry.connections, member: entry.document(userId: userId),
                announceUpdate: data != nil)
        }
    }

    /// A connection already counted in `topic` sets new data (`update` when it differs).
    func update(topic: Topic, userId: String, data: RawJSON) {
        table.withLock { tables in
            guard var entry = tables.members[topic]?[userId] else { return }
            entry.member = PresenceMember.document(userId: userId, data: data)
            tables.members[topic]![userId] = entry
            store.set(
                topic: topic, userId: userId, connections: entry.connections, member: entry.document(userId: userId),
                announceUpdate: true)
        }
    }

    /// The node starts draining: from now on the connections it closes keep their presence in
    /// the store until ``PresenceLifecycle`` withdraws the node's share, `drainGrace` later. A
    /// user who reconnects to another node meanwhile is counted there before this node's share
    /// goes: watchers see no `leave` and no `join`. Nothing is held without a grace.
    func holdLeaves() {
        table.withLock { tables in
            tables.draining = true
            if drainGrace > .zero { tables.holding = true }
        }
    }

    /// Whether the leaves of a connection its client did not close with a close frame may wait
    /// for `PRESENCE_RECONNECT_GRACE` (then ``leaveAfterGrace(topics:userId:)`` must follow):
    /// not without a grace, not while the node drains (its own grace applies), and not past
    /// ``maxGraceLeaves`` or ``maxGraceLeavesPerUser``.
    func deferLeaves(of userId: String) -> Bool {
        guard reconnectGrace > .zero else { return false }
        return table.withLock { tables in
            guard !tables.draining, !tables.stopped, tables.graceLeaves < Self.maxGraceLeaves,
                tables.graceLeavesByUser[userId, default: 0] < Self.maxGraceLeavesPerUser
            else { return false }
            tables.graceLeaves += 1
            tables.graceLeavesByUser[userId, default: 0] += 1
            return true
        }
    }

    /// The reconnect grace of a connection's deferred leaves is over: it leaves `topics`
    /// (nothing once the store has stopped).
    func leaveAfterGrace(topics: [Topic], userId: String) {
        let stopped = table.withLock { tables in
            tables.graceLeaves -= 1
            let left = tables.graceLeavesByUser[userId, default: 1] - 1
            tables.graceLeavesByUser[userId] = left > 0 ? left : nil
            return tables.stopped
        }
        guard !stopped else { return }
        for topic in topics { leave(topic: topic, userId: userId) }
    }

    /// The node stops: leaves still waiting for their grace are dropped (the store withdraws
    /// the node's whole share as it stops).
    func stop() {
        table.withLock { $0.stopped = true }
    }

    /// Leaves were held by ``holdLeaves()``: the grace is worth waiting for.
    var heldLeaves: Bool { table.withLock { $0.held } }

    /// One connection of `userId` fewer in `topic` on this node.
    func leave(topic: Topic, userId: String) {
        table.withLock { tables in
            guard !tables.holding else {
                tables.held = true
                return
            }
            if let count = tables.users[userId], Self.isUserTopic(topic, of: userId) {
                tables.users[userId] = count > 1 ? count - 1 : nil
                store.set(
                    topic: topic, userId: userId, connections: count - 1,
                    member: PresenceMember.document(userId: userId, data: nil), announceUpdate: false)
                return
            }
            guard var entry = tables.members[topic]?[userId] else { return }
            entry.connections -= 1
            tables.members[topic]![userId] = entry.connections > 0 ? entry : nil
            if tables.members[topic]!.isEmpty { tables.members[topic] = nil }
            store.set(
                topic: topic, userId: userId, connections: max(0, entry.connections), member: entry.document(userId: userId),
                announceUpdate: false)
        }
    }

    /// Distinct users with an authenticated connection to this node (each is a member of its
    /// `presence.user.<id>`), however many connections and event loops they have.
    var connectedUsers: Int { table.withLock { $0.users.count } }

    /// A page of this node's members of `topic` (its own connections only), by user id: the
    /// answer while the shared store cannot be reached.
    func localPage(of topic: Topic, after: String?) -> PresencePage {
        table.withLock { tables in
            let prefix = PresenceEventData.userTopicPrefix
            if topic.name.hasPrefix(prefix) {
                let userId = String(topic.name.dropFirst(prefix.count))
                if let connections = tables.users[userId] {
                    let member = PresenceMember(
                        userId: userId, member: PresenceMember.document(userId: userId, data: nil), connections: connections)
                    return PresencePage(sorted: [member], after: after, limit: PresencePage.maxMembers)
                }
            }
            return PresencePage(tables.members[topic] ?? MemberTable(), after: after, limit: PresencePage.maxMembers) {
                PresenceMember(userId: $0, member: $1.document(userId: $0), connections: $1.connections)
            }
        }
    }

    /// For `/stats`: (topic, user) memberships held on this node, distinct topics, and the topics
    /// with the most members on this node (at most `top`), `presence.user.*` left out.
    func snapshot(top: Int) -> (memberships: Int, topics: Int, top: [(topic: String, members: Int)]) {
        table.withLock { tables in
            var perTopic: [Topic: Int] = [:]
            for (topic, members) in tables.members where !topic.name.hasPrefix(PresenceEventData.userTopicPrefix) {
                perTopic[topic] = members.count
            }
            let ranked = perTopic.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key.name < $1.key.name }
            return (
                perTopic.values.reduce(0, +), perTopic.count,
                ranked.prefix(top).map { (topic: $0.key.name, members: $0.value) }
            )
        }
    }
}
