import Synchronization

/// The counters a ``RedisAdapter`` shows in `/stats`, shared by its server links. Any thread may
/// count; the values are atomics. `/metrics` exports them from `/stats` (the node's
/// `StatsMetrics`), each with its `# HELP` line.
final class RedisAdapterCounters: Sendable {
    private let publishedInFallbackCount = Atomic<Int>(0)
    private let connectedCount = Atomic<Int>(0)
    private let fallbackCount = Atomic<Int>(0)
    private let droppedCount = Atomic<Int>(0)
    private let refusedCount = Atomic<Int>(0)
    private let malformedCount = Atomic<Int>(0)

    private let historyStoredCount = Atomic<Int>(0)
    private let historyDuplicateCount = Atomic<Int>(0)

    var historyStored: Int { historyStoredCount.load(ordering: .relaxed) }
    var historyDuplicates: Int { historyDuplicateCount.load(ordering: .relaxed) }

    /// A publish answered by the history script: stored, or refused as a duplicate `messageId`.
    func countHistory(duplicate: Bool) {
        if duplicate {
            historyDuplicateCount.add(1, ordering: .relaxed)
        } else {
            historyStoredCount.add(1, ordering: .relaxed)
        }
    }

    var publishedInFallback: Int { publishedInFallbackCount.load(ordering: .relaxed) }
    var dropped: Int { droppedCount.load(ordering: .relaxed) }
    var refused: Int { refusedCount.load(ordering: .relaxed) }
    var malformed: Int { malformedCount.load(ordering: .relaxed) }

    /// A message published while its server was not connected, delivered locally only.
    func countPublishedInFallback() {
        publishedInFallbackCount.add(1, ordering: .relaxed)
    }

    /// A message dropped: the publish queue was full, or the adapter was not running.
    func countDropped() {
        droppedCount.add(1, ordering: .relaxed)
    }

    /// Messages Redis refused (an error reply to their `PUBLISH` or history script: out of
    /// memory, `READONLY`, `NOPERM`). A message with history is refused to its publisher; one
    /// without was acknowledged when it was queued.
    func countRefused(_ count: Int) {
        refusedCount.add(count, ordering: .relaxed)
    }

    /// A payload from Redis that was not a valid envelope for its channel (skipped).
    func countMalformed() {
        malformedCount.add(1, ordering: .relaxed)
    }

    /// A failover state change of one server (`to`: `connected` or `fallback`).
    func countTransition(to state: AdapterStatus.State) {
        switch state {
        case .connected: connectedCount.add(1, ordering: .relaxed)
        case .fallback: fallbackCount.add(1, ordering: .relaxed)
        case .connecting, .local: break
        }
    }

    /// State changes over all servers by the state entered (`connected`, `fallback`).
    var transitionsTo: [String: Int] {
        [
            AdapterStatus.State.connected.rawValue: connectedCount.load(ordering: .relaxed),
            AdapterStatus.State.fallback.rawValue: fallbackCount.load(ordering: .relaxed),
        ]
    }
}
