/// Ids of the node's own messages delivered locally although Redis may still publish them: the
/// batch that was in flight when the link fell back (written, not acknowledged). If Redis does
/// publish one later (a hung server resuming and reading what was written before the hang),
/// the subscriber drops it instead of delivering it a second time.
///
/// Bounded: past ``limit`` ids the oldest are forgotten, and the insertion order keeps no more
/// than a small multiple of the ids still held. A value, kept in the link's mutex.
struct RedisDoubtfulIDs: Sendable {
    let limit: Int
    private var ids: Set<String> = []
    private var order: [String] = []
    private var start = 0

    init(limit: Int = 65_536) {
        self.limit = limit
    }

    var isEmpty: Bool { ids.isEmpty }

    /// Remembers `message`, about to be delivered locally while Redis may still publish it,
    /// and marks its answer ``PublishOutcome/uncertain``. A gap announcement is left alone: it
    /// is never delivered locally.
    mutating func doubt(_ message: inout RedisOutgoing) {
        guard message.envelope.kind != .gap else { return }
        insert(message.envelope.id)
        message.uncertain = true
    }

    mutating func insert(_ id: String) {
        guard ids.insert(id).inserted else { return }
        order.append(id)
        while ids.count > limit, start < order.count {
            ids.remove(order[start])
            start += 1
        }
        if start > limit {
            order.removeFirst(start)
            start = 0
        }
        // Ids Redis did publish back were removed from `ids` but stay in `order`: rebuild it
        // from the live ones once stale entries outnumber them, so `order` stays within a small
        // multiple of `ids` however often the link falls back.
        if order.count - start > 2 * max(ids.count, 1024) {
            order = order[start...].filter { ids.contains($0) }
            start = 0
        }
    }

    /// True (and forgets `id`) when `id` was delivered locally already.
    mutating func remove(_ id: String) -> Bool {
        guard ids.remove(id) != nil else { return false }
        if ids.isEmpty {
            order = []
            start = 0
        }
        return true
    }
}
