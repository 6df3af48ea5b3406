import DequeModule

/// The replies of one connection that wait for the broker to settle (a `subscribed` once its
/// `SUBSCRIBE` is confirmed), with those sent after them: they go out in the order of their
/// requests, though the broker may settle from another thread after a later reply was ready on
/// the connection's loop. A pure value, kept by the registry only while something waits.
struct OrderedReplies {
    /// In request order; nil where a reply still waits.
    private var slots = Deque<ServerMessage?>()
    /// The ticket of `slots[0]`.
    private var first = 0

    var isEmpty: Bool { slots.isEmpty }

    /// A place for a reply that comes later; its ticket, for ``fill(_:with:)``.
    mutating func reserve() -> Int {
        slots.append(nil)
        return first + slots.count - 1
    }

    /// A reply ready now, after those before it.
    mutating func append(_ message: ServerMessage) {
        slots.append(message)
    }

    /// Fills ticket `ticket`'s place.
    mutating func fill(_ ticket: Int, with message: ServerMessage) {
        let index = ticket - first
        guard slots.indices.contains(index) else { return }
        slots[index] = message
    }

    /// The replies that may go out now, in order.
    mutating func takeReady() -> [ServerMessage] {
        var ready: [ServerMessage] = []
        while let head = slots.first, let message = head {
            ready.append(message)
            slots.removeFirst()
            first += 1
        }
        return ready
    }
}
