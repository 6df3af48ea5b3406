import Broker
import DequeModule

/// The history reads of a loop's connections (``HistoryRecovery``): one at a time per
/// connection, and none started while the connection's read budget is overdrawn.
///
/// Without it a client that sent a hundred `subscribe`s with `replay` at once had a hundred
/// pages read, held and encoded at once (each up to three quarters of
/// `WEBSOCKET_MAX_PENDING_BYTES`: 75 MB for one connection by default), all charged to its read
/// budget only after the fact. One at a time, a connection holds one page, and reads history no
/// faster than its budget allows. A waiting read's live messages are held from its `subscribe`
/// on, as a running one's are, so nothing is lost while it waits.
///
/// A pure value, kept by the registry on its loop; a connection has an entry only while one of
/// its reads runs or waits.
struct HistoryReadQueue {
    /// A read to start: what ``ConnectionRegistry/recover(_:topic:request:requestId:wasLive:)`` was asked.
    struct Read {
        let topic: Topic
        let request: HistoryRequest?
        let requestId: JSONValue?
        /// The recovery it belongs to (``RecoveryTable/begin(_:_:requestId:)``).
        let recovery: Int
        let wasLive: Bool
    }

    private struct Reads {
        var running = false
        var waiting = Deque<Read>()
    }

    private var connections: [Int: Reads] = [:]

    /// Queues `read` of connection `id`; returns it when it starts now: no read of the
    /// connection runs and `mayStart` (its budget is not overdrawn).
    mutating func submit(_ read: Read, of id: Int, mayStart: Bool) -> Read? {
        if connections[id] == nil, mayStart {
            connections[id] = Reads(running: true)
            return read
        }
        connections[id, default: Reads()].waiting.append(read)
        return nil
    }

    /// Connection `id`'s running read is done (or was not needed): the next one, when `mayStart`.
    mutating func finished(_ id: Int, mayStart: Bool) -> Read? {
        guard connections[id] != nil else { return nil }
        connections[id]!.running = false
        return next(id, mayStart: mayStart)
    }

    /// The waiting read of connection `id` that starts now, if none runs and `mayStart`.
    mutating func next(_ id: Int, mayStart: Bool) -> Read? {
        guard let reads = connections[id], !reads.running else { return nil }
        guard !reads.waiting.isEmpty else {
            connections[id] = nil
            return nil
        }
        guard mayStart else { return nil }
        connections[id]!.running = true
        return connections[id]!.waiting.removeFirst()
    }

    /// Connection `id` is gone.
    mutating func forget(_ id: Int) {
        connections[id] = nil
    }
}
