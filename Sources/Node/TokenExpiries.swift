import HeapModule
import NIOCore

/// When the tokens of one loop's sessions expire, earliest first.
///
/// The registry keeps one timer per loop, for the earliest entry, instead of a timer per
/// session: a scheduled task with its promise cost an idle connection about 200 bytes. An
/// entry outlives a session that authenticates again or closes; the registry skips such stale
/// entries when they come due, and ``compact(keeping:)`` drops them once they outnumber the
/// live ones, so re-authenticating in a loop cannot grow the heap without bound.
/// Loop-bound: a value inside its ``ConnectionRegistry``.
struct TokenExpiries {
    struct Entry: Comparable {
        var deadline: NIODeadline
        var sessionId: Int

        static func < (lhs: Entry, rhs: Entry) -> Bool {
            (lhs.deadline, lhs.sessionId) < (rhs.deadline, rhs.sessionId)
        }
    }

    private var heap = Heap<Entry>()

    var count: Int { heap.count }

    /// The earliest deadline waiting, if any.
    var earliest: NIODeadline? { heap.min?.deadline }

    mutating func add(_ deadline: NIODeadline, sessionId: Int) {
        heap.insert(Entry(deadline: deadline, sessionId: sessionId))
    }

    /// Removes and returns the earliest entry if it is due at `now`.
    mutating func popDue(now: NIODeadline) -> Entry? {
        guard let first = heap.min, first.deadline <= now else { return nil }
        return heap.removeMin()
    }

    /// Keeps only the entries `isLive` accepts.
    mutating func compact(keeping isLive: (Entry) -> Bool) {
        heap = Heap(heap.unordered.filter(isLive))
    }
}
