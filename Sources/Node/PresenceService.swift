import Broker
import Foundation
import Logging
import Synchronization

/// The node's side of presence: how many of its own connections each user has in each topic,
/// and the store (``LocalPresenceStore`` or ``RedisPresenceStore``) that adds up every node's
/// share and publishes `join`/`leave`/`update` once for the cluster.
///
/// Sessions call ``join(topic:userId:data:)`` and ``leave(topic:userId:)`` from their event
/// loops; the table is behind a mutex and the store is told inside it, so the store sees the
/// node's changes in the order they happened. Thread-safe.
final class PresenceService: Sendable {
    struct Key: Hashable {
        var topic: Topic
        var userId: String
    }

    private struct Local {
        var connections: Int
        var member: RawJSON
    }

    let store: any PresenceStore
    private let table = Mutex<[Key: Local]>([:])

    init(configuration: NodeConfiguration, broker: PubSubBroker, logger: Logger) {
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
        table.withLock { table in
            let key = Key(topic: topic, userId: userId)
            var entry = table[key] ?? Local(connections: 0, member: PresenceMember.document(userId: userId, data: data))
            entry.connections += 1
            if let data { entry.member = PresenceMember.document(userId: userId, data: data) }
            table[key] = entry
            store.set(
                topic: topic, userId: userId, connections: entry.connections, member: entry.member,
                announceUpdate: data != nil)
        }
    }

    /// A connection already counted in `topic` sets new data (`update` when it differs).
    func update(topic: Topic, userId: String, data: RawJSON) {
        table.withLock { table in
            let key = Key(topic: topic, userId: userId)
            guard var entry = table[key] else { return }
            entry.member = PresenceMember.document(userId: userId, data: data)
            table[key] = entry
            store.set(topic: topic, userId: userId, connections: entry.connections, member: entry.member, announceUpdate: true)
        }
    }

    /// One connection of `userId` fewer in `topic` on this node.
    func leave(topic: Topic, userId: String) {
        table.withLock { table in
            let key = Key(topic: topic, userId: userId)
            guard var entry = table[key] else { return }
            entry.connections -= 1
            table[key] = entry.connections > 0 ? entry : nil
            store.set(
                topic: topic, userId: userId, connections: max(0, entry.connections), member: entry.member,
                announceUpdate: false)
        }
    }

    /// This node's members of `topic` (its own connections only): the answer while the shared
    /// store cannot be reached.
    func localMembers(of topic: Topic) -> [PresenceMember] {
        table.withLock { table in
            table.compactMap { key, entry in
                key.topic == topic ? PresenceMember(userId: key.userId, member: entry.member, connections: entry.connections) : nil
            }.sorted { $0.userId < $1.userId }
        }
    }

    /// For `/stats`: (topic, user) memberships held on this node, distinct topics, and the topics
    /// with the most members on this node (at most `top`), `presence.user.*` left out.
    func snapshot(top: Int) -> (memberships: Int, topics: Int, top: [(topic: String, members: Int)]) {
        table.withLock { table in
            var perTopic: [Topic: Int] = [:]
            for key in table.keys where !key.topic.name.hasPrefix(PresenceEventData.userTopicPrefix) {
                perTopic[key.topic, default: 0] += 1
            }
            let ranked = perTopic.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key.name < $1.key.name }
            return (
                perTopic.values.reduce(0, +), perTopic.count,
                ranked.prefix(top).map { (topic: $0.key.name, members: $0.value) }
            )
        }
    }
}
