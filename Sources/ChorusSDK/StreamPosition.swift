/// A position in a topic's history: the offset of the last message seen, in the history's
/// epoch (a new epoch means the node's history was reset and offsets start again).
public struct StreamPosition: Sendable, Hashable, Codable {
    public var offset: Int
    public var epoch: String

    public init(offset: Int, epoch: String) {
        self.offset = offset
        self.epoch = epoch
    }
}

/// The last position seen per topic, moved forward by delivered messages and `subscribed`
/// replies. A pure value owned by the client's engine actor.
///
/// Only a delivered message's position makes later messages at or before it repeats: a
/// `subscribed` reply's offset may count a message still on its way to this connection (the
/// node read the position while another subscription, a pattern, received the topic), which
/// must still be delivered.
///
/// A pattern's subscription sees many topics: it keeps at most `limit`, and past that forgets
/// the least recently delivered (down to nine tenths of `limit`, so that the sort is rare).
/// Patterns are never recovered, so a forgotten position only lets a repeat through.
struct StreamPositions: Sendable {
    private(set) var byTopic: [String: StreamPosition] = [:]
    /// Topics whose position came from a `subscribed` reply, not from a delivered message.
    private var fromReplies: Set<String> = []
    private let limit: Int
    /// When each topic last delivered, by a count of deliveries.
    private var delivered: [String: Int] = [:]
    private var deliveries = 0

    init(limit: Int = 10_000) {
        self.limit = limit
    }

    subscript(topic: String) -> StreamPosition? { byTopic[topic] }

    /// Records a delivered message's position; false when it is one already seen (same epoch,
    /// offset not past the last), which the client then drops.
    mutating func advance(_ topic: String, to position: StreamPosition) -> Bool {
        if let last = byTopic[topic], !fromReplies.contains(topic), last.epoch == position.epoch, position.offset <= last.offset {
            return false
        }
        byTopic[topic] = position
        fromReplies.remove(topic)
        deliveries += 1
        delivered[topic] = deliveries
        if byTopic.count > limit {
            for (stale, _) in delivered.sorted(by: { $0.value < $1.value }).prefix(byTopic.count - limit * 9 / 10) {
                byTopic[stale] = nil
                delivered[stale] = nil
                fromReplies.remove(stale)
            }
        }
        return true
    }

    /// The topic has no history (any more): its position means nothing.
    mutating func forget(_ topic: String) {
        byTopic[topic] = nil
        delivered[topic] = nil
        fromReplies.remove(topic)
    }

    /// What a `subscribe` asked the node for, beside live messages.
    enum Asked: Equatable {
        /// Nothing: live messages only.
        case live
        /// The messages after a position; `recovered` is the reply's answer.
        case since(StreamPosition, recovered: Bool)
        /// The last messages, at most this many.
        case replay(Int)
    }

    /// A `subscribed` reply, whose `position` is the topic's current one: the messages the
    /// node sends after it (a recovered `since`, a `replay`) are at or before `position`, so the
    /// position kept is where they start, and they move it; it must not be `position` itself,
    /// or each of them would look like a repeat and be dropped.
    ///
    /// - live: `position`, unless the topic already has one in this epoch.
    /// - since, recovered: `since`, unless the topic already has one in its epoch (a
    ///   resubscription sends the one it has).
    /// - since, not recovered: `position` (what was missed is gone: start from now).
    /// - replay of `n`: `n` before `position` (at 0 at the least), unless the topic already has
    ///   one in this epoch. Kept before the messages arrive, so that a resubscription after a
    ///   reconnect asks for everything after it, not for nothing.
    mutating func subscribed(_ topic: String, at position: StreamPosition, asked: Asked) {
        let last = byTopic[topic]
        defer { if byTopic[topic] != last { fromReplies.insert(topic) } }
        switch asked {
        case .live:
            if last?.epoch == position.epoch { return }
            byTopic[topic] = position
        case .since(let since, recovered: true):
            if last?.epoch == since.epoch { return }
            byTopic[topic] = since
        case .since(_, recovered: false):
            byTopic[topic] = position
        case .replay(let count):
            if last?.epoch == position.epoch { return }
            byTopic[topic] = StreamPosition(offset: max(0, position.offset - max(0, count)), epoch: position.epoch)
        }
    }
}
