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
struct StreamPositions: Sendable {
    private(set) var byTopic: [String: StreamPosition] = [:]

    subscript(topic: String) -> StreamPosition? { byTopic[topic] }

    /// Records a delivered message's position; false when it is one already seen (same epoch,
    /// offset not past the last), which the client then drops.
    mutating func advance(_ topic: String, to position: StreamPosition) -> Bool {
        if let last = byTopic[topic], last.epoch == position.epoch, position.offset <= last.offset { return false }
        byTopic[topic] = position
        return true
    }

    /// A `subscribed` reply's current position: taken when the topic has none yet, when the
    /// epoch changed, or when the node could not recover (what was missed is gone: start from
    /// now). After a recovered resubscription the replayed messages move the position instead.
    mutating func subscribed(_ topic: String, at position: StreamPosition, recovered: Bool?) {
        if let last = byTopic[topic], last.epoch == position.epoch, recovered != false { return }
        byTopic[topic] = position
    }

    mutating func forget(_ topic: String) {
        byTopic[topic] = nil
    }
}
