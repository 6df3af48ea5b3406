import Foundation
import Synchronization

/// Presence kept in this process (`PUBSUB_ADAPTER=memory`): this node is the whole cluster.
///
/// Same rules as the Redis store: events on the 0 -> 1 and 1 -> 0 edges of a user's connection
/// count, and on a changed member document when asked; they go out through `publish` (the
/// broker), which delivers them to this node's subscribers. The table is behind a mutex; events
/// are published inside it so that they leave in the order the changes happened.
public final class LocalPresenceStore: PresenceStore {
    private struct Entry {
        var connections: Int
        var member: RawJSON
    }

    private struct State {
        var topics: [Topic: MemberTable<Entry>] = [:]
        var sequence = 0
        /// When each `presence.user.<id>` topic last became empty.
        var lastLeft: [Topic: Date] = [:]
        var counters = PresenceCounters()
    }

    private let origin: String
    private let publish: @Sendable (Envelope) -> Void
    private let state = Mutex(State())

    /// - Parameter publish: called with each event, in order, under the store's lock.
    public init(origin: String, publish: @escaping @Sendable (Envelope) -> Void) {
        self.origin = origin
        self.publish = publish
    }

    public func start() {}

    public func set(topic: Topic, userId: String, connections: Int, member: RawJSON, announceUpdate: Bool) {
        state.withLock { state in
            let previous = state.topics[topic]?[userId]
            var event: (String, RawJSON)?
            if connections <= 0 {
                guard let previous else { return }
                state.topics[topic]![userId] = nil
                if state.topics[topic]!.isEmpty { state.topics[topic] = nil }
                event = ("leave", previous.member)
                if topic.name.hasPrefix(PresenceEventData.userTopicPrefix) { state.lastLeft[topic] = Date() }
            } else if let previous {
                let changed = announceUpdate && previous.member != member
                state.topics[topic]![userId] = Entry(connections: connections, member: changed ? member : previous.member)
                if changed { event = ("update", member) }
            } else {
                state.topics[topic, default: MemberTable()][userId] = Entry(connections: connections, member: member)
                event = ("join", member)
            }
            guard let (name, document) = event else { return }
            state.sequence += 1
            state.counters.eventsPublished += 1
            var envelope = Envelope(
                id: "\(origin)/presence-\(state.sequence)", origin: origin, topic: topic,
                data: PresenceEventData.make(event: name, member: document))
            envelope.kind = .presence
            publish(envelope)
        }
    }

    /// In memory, so `maxBytes` is left to the writer of the answer.
    public func members(of topic: Topic, after: String?, limit: Int, maxBytes: Int) async throws -> PresencePage {
        state.withLock { state in
            PresencePage(state.topics[topic] ?? MemberTable(), after: after, limit: min(max(1, limit), PresencePage.maxMembers)) {
                PresenceMember(userId: $0, member: $1.member, connections: $1.connections)
            }
        }
    }

    public func count(of topic: Topic) async throws -> Int {
        state.withLock { $0.topics[topic]?.count ?? 0 }
    }

    public func lastLeft(topic: Topic) async throws -> Date? { state.withLock { $0.lastLeft[topic] } }

    public func counters() -> PresenceCounters { state.withLock { $0.counters } }

    public func shutdown() async {}
}
