import NIOCore
import Synchronization

/// Messages on their way from the adapter's thread to one event loop, bounded in bytes.
///
/// The adapter delivers in batches on a thread of its own. Handing every batch to the loop with
/// an `execute` of its own would queue unbounded work on a loop that falls behind, and would
/// flush each subscriber once per batch even while several batches wait. Messages wait here
/// instead, with at most one drain task queued on the loop at a time: a loop that is behind takes
/// what arrived meanwhile in one go and flushes each subscriber once for all of it, so the
/// further behind it is, the fewer system calls per message it spends catching up. A drain takes
/// a bounded share (``take(messages:bytes:)``) and queues the next drain for the rest, so one
/// drain never holds the loop for long nor piles more unflushed bytes on a socket than its
/// slow-consumer limit.
///
/// Past ``limit`` bytes of waiting frames a batch is refused (the caller counts it as dropped):
/// Redis pub/sub is at-most-once anyway, and a node must not grow without bound when a hot topic
/// outruns its loops. Thread-safe; the lock is held only to append or take.
final class DeliveryInbox: Sendable {
    enum Outcome {
        /// Queued; the caller must queue a drain on the loop (none is queued yet).
        case queuedFirst
        /// Queued behind messages a queued drain will take.
        case queued
        /// Refused: the inbox holds ``limit`` bytes already.
        case refused
    }

    private struct State {
        var waiting = CircularBuffer<Delivery>(initialCapacity: 16)
        var bytes = 0
        var drainQueued = false
    }

    /// Bytes of encoded frames (plus ``overheadPerMessage`` each) allowed to wait.
    let limit: Int
    private let state = Mutex(State())

    /// What one waiting message costs beyond its frame bytes (the `Delivery` and its topic).
    static let overheadPerMessage = 64

    init(limit: Int) {
        self.limit = limit
    }

    static func cost(of delivery: Delivery) -> Int {
        delivery.frame.bytes.readableBytes + (delivery.compressed?.bytes.readableBytes ?? 0) + overheadPerMessage
    }

    /// Appends `batch` (whose ``cost(of:)`` adds up to `bytes`), unless it does not fit.
    func put(_ batch: [Delivery], bytes: Int) -> Outcome {
        state.withLock { state in
            // An empty inbox takes any batch, so one huge message still gets through.
            guard state.bytes == 0 || state.bytes + bytes <= limit else { return .refused }
            state.waiting.append(contentsOf: batch)
            state.bytes += bytes
            guard !state.drainQueued else { return .queued }
            state.drainQueued = true
            return .queuedFirst
        }
    }

    /// Takes the oldest waiting messages: at most `messages`, and no more than `bytes` worth
    /// unless the first alone is larger. `more` says that others still wait; the drain then
    /// stays queued, and the caller must queue the next one.
    func take(messages: Int, bytes: Int) -> (deliveries: [Delivery], more: Bool) {
        state.withLock { state in
            var taken: [Delivery] = []
            taken.reserveCapacity(min(messages, state.waiting.count))
            var takenBytes = 0
            while taken.count < messages, let first = state.waiting.first {
                let cost = Self.cost(of: first)
                if !taken.isEmpty && takenBytes + cost > bytes { break }
                taken.append(state.waiting.removeFirst())
                takenBytes += cost
            }
            state.bytes -= takenBytes
            let more = !state.waiting.isEmpty
            state.drainQueued = more
            return (taken, more)
        }
    }
}
