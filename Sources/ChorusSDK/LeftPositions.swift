/// Where the application left topics: the last position of each of the last 1,000 topics whose
/// subscription ended (unsubscribed, ended by the node, or with ``ChorusClient/close()``), so
/// that a view that goes away and comes back resumes with `since` instead of starting live and
/// missing what came between. A pure value owned by the client's engine actor.
struct LeftPositions: Sendable {
    static let limit = 1_000

    private var byTopic: [String: (position: StreamPosition, order: Int)] = [:]
    private var order = 0

    subscript(topic: String) -> StreamPosition? { byTopic[topic]?.position }

    /// `topic` was left at `position`; the topic left longest ago goes past the limit.
    mutating func left(_ topic: String, at position: StreamPosition) {
        order += 1
        byTopic[topic] = (position, order)
        if byTopic.count > Self.limit, let oldest = byTopic.min(by: { $0.value.order < $1.value.order })?.key {
            byTopic[oldest] = nil
        }
    }
}
