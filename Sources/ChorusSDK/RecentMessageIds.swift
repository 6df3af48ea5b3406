/// The last ``capacity`` messages a subscription delivered without a position, by topic and
/// `messageId`. On a topic without history the node cannot tell a repeated `messageId`: a
/// publish sent again after a reconnect, or a post retried over HTTP, arrives twice, and
/// this is what drops the second copy.
struct RecentMessageIds {
    let capacity: Int
    /// Topic, a 0 byte and the id, compared by bytes (`String` equality is canonical
    /// equivalence: two ids that differ only in their Unicode composition are two ids).
    private var keys: Set<[UInt8]> = []
    /// The keys in arrival order, as a ring once full.
    private var order: [[UInt8]] = []
    private var oldest = 0

    init(capacity: Int = 1_000) {
        self.capacity = capacity
    }

    /// Records `messageId` on `topic`; false when it is among the recent ones already.
    mutating func insert(_ messageId: String, on topic: String) -> Bool {
        let key = Array(topic.utf8) + [0] + Array(messageId.utf8)
        guard keys.insert(key).inserted else { return false }
        if order.count < capacity {
            order.append(key)
        } else {
            keys.remove(order[oldest])
            order[oldest] = key
            oldest = (oldest + 1) % capacity
        }
        return true
    }
}
