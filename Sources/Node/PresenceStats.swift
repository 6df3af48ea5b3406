import Broker

/// `presence` in `GET /stats`: this node's share of presence, bounded in size.
public struct PresenceStats: Codable, Sendable {
    public struct TopicMembers: Codable, Sendable {
        public var topic: String
        public var members: Int
    }

    /// (topic, user) memberships held by this node's connections (`presence.user.*` left out).
    public var memberships: Int
    /// Distinct topics with at least one member on this node.
    public var topics: Int
    /// The topics with the most members on this node (at most 10).
    public var topTopics: [TopicMembers]
    /// Presence events and typing indicators that reached this node (once per node).
    public var eventsReceived: Int
    public var typingReceived: Int
    /// What this node's presence store did: events it published, reaped instances and leaves,
    /// failed store commands.
    public var store: PresenceCounters

    init(node: NodeContext) {
        let snapshot = node.presence.snapshot(top: 10)
        memberships = snapshot.memberships
        topics = snapshot.topics
        topTopics = snapshot.top.map { TopicMembers(topic: $0.topic, members: $0.members) }
        eventsReceived = node.hub.signalCounters.presenceEvents.load(ordering: .relaxed)
        typingReceived = node.hub.signalCounters.typingIndicators.load(ordering: .relaxed)
        store = node.presence.store.counters()
    }
}
