import Foundation

/// Where the members of every topic live: per concrete topic, user id -> member (`{"userId",
/// "data"}`) and connection count, summed over every node of the cluster.
///
/// A node reports only its own share: ``set(topic:userId:connections:member:announceUpdate:)``
/// with the absolute number of connections *this node* holds for the user in the topic. The
/// store turns the cluster-wide sum going 0 -> 1 into one `join`, 1 -> 0 into one `leave`, and
/// a new member document (when asked) into one `update`, each published once as an
/// ``Envelope/Kind/presence`` envelope on the topic's channel. Absolute counts make every call
/// idempotent, so a node can resend its whole share after an outage.
///
/// Thread-safe; ``set(topic:userId:connections:member:announceUpdate:)`` never blocks and keeps
/// the order of calls.
public protocol PresenceStore: Sendable {
    /// Starts leases and reaping (Redis); nothing for the local store.
    func start()
    /// This node now holds `connections` (0 = none) of `userId`'s connections to `topic`.
    /// `member` is the member document (`{"userId":..,"data":..}`); with `announceUpdate`, a
    /// member already present whose document differs gets it and an `update` event.
    func set(topic: Topic, userId: String, connections: Int, member: RawJSON, announceUpdate: Bool)
    /// A page of `topic`'s members, cluster-wide: those with user ids after `after` (from the
    /// first when nil), ascending, at most `limit` (see ``PresencePage/maxMembers``), and
    /// stopping once their member documents pass `maxBytes` (the first always goes in).
    func members(of topic: Topic, after: String?, limit: Int, maxBytes: Int) async throws -> PresencePage
    /// How many members `topic` has.
    func count(of topic: Topic) async throws -> Int
    /// When the last member of `topic` left (kept for `presence.user.<id>` topics only); nil if
    /// never recorded.
    func lastLeft(topic: Topic) async throws -> Date?
    /// Counters for `/stats`.
    func counters() -> PresenceCounters
    /// Server `server` (its index in `PUBSUB_REDIS_URL`) is live again after an outage, in
    /// which events published there may not have reached this node: once this store can read
    /// that server again, runs `body` with a test for the topics whose members it holds, so
    /// that their watchers can be told to read the list again. Runs `body` at most once per
    /// call; a later call for the same server before that replaces it.
    func afterOutage(server: Int, _ body: @escaping @Sendable (_ holds: @escaping @Sendable (Topic) -> Bool) -> Void)
    /// Withdraws this node's share (its members leave) and stops.
    func shutdown() async
}

extension PresenceStore {
    /// A store in the process has no outages.
    public func afterOutage(server: Int, _ body: @escaping @Sendable (_ holds: @escaping @Sendable (Topic) -> Bool) -> Void) {}
}

/// One member of a topic.
public struct PresenceMember: Sendable, Equatable {
    public var userId: String
    /// `{"userId":..,"data":..}` as stored.
    public var member: RawJSON
    /// The user's connections to the topic, cluster-wide.
    public var connections: Int

    public init(userId: String, member: RawJSON, connections: Int) {
        self.userId = userId
        self.member = member
        self.connections = connections
    }

    /// `{"userId":"<id>","data":<data or {}>}`. User ids are checked by the node (one topic
    /// segment), so they need no escaping, but the writer escapes anyway.
    public static func document(userId: String, data: RawJSON?) -> RawJSON {
        var writer = JSONWriter(capacity: 32 + userId.utf8.count + (data?.bytes.count ?? 2))
        writer.raw("{\"userId\":")
        writer.string(userId)
        writer.raw(",\"data\":")
        writer.raw(data ?? .emptyObject)
        writer.raw("}")
        return RawJSON(unchecked: writer.bytes)
    }
}

/// What a presence store has done since start, for `/stats`.
public struct PresenceCounters: Sendable, Codable, Equatable {
    /// Events this node published (joins, leaves, updates; reaped leaves included).
    public var eventsPublished = 0
    /// Leaves published by this node's reaper for instances whose lease expired.
    public var reapedLeaves = 0
    /// Node instances this node reaped.
    public var reapedInstances = 0
    /// Store commands that failed (Redis unreachable); resent once Redis answers.
    public var failures = 0

    public init() {}
}

/// The data of a presence envelope: `{"event":"join","member":{...}}`.
public enum PresenceEventData {
    /// Topics `presence.user.<id>`, whose single member is user `<id>` while connected anywhere:
    /// the stores remember when each last became empty (`lastSeenAt`).
    public static let userTopicPrefix = "presence.user."

    public static func make(event: String, member: RawJSON) -> RawJSON {
        var writer = JSONWriter(capacity: 32 + member.bytes.count)
        writer.raw("{\"event\":")
        writer.string(event)
        writer.raw(",\"member\":")
        writer.raw(member)
        writer.raw("}")
        return RawJSON(unchecked: writer.bytes)
    }
}
