import Metrics
import Synchronization

/// The counters a ``RedisAdapter`` shows in `/stats`, shared by its server links and mirrored
/// to swift-metrics. Any thread may count; the values are atomics.
final class RedisAdapterCounters: Sendable {
    private let publishedInFallbackCount = Atomic<Int>(0)
    private let droppedCount = Atomic<Int>(0)
    private let malformedCount = Atomic<Int>(0)

    private let publishedInFallbackMetric = Counter(label: "chorus_redis_published_in_fallback_total")
    private let droppedMetric = Counter(label: "chorus_redis_dropped_total")
    private let malformedMetric = Counter(label: "chorus_redis_malformed_total")

    var publishedInFallback: Int { publishedInFallbackCount.load(ordering: .relaxed) }
    var dropped: Int { droppedCount.load(ordering: .relaxed) }
    var malformed: Int { malformedCount.load(ordering: .relaxed) }

    /// A message published while its server was not connected, delivered locally only.
    func countPublishedInFallback() {
        publishedInFallbackCount.add(1, ordering: .relaxed)
        publishedInFallbackMetric.increment()
    }

    /// A message dropped: the publish queue was full, or the adapter was not running.
    func countDropped() {
        droppedCount.add(1, ordering: .relaxed)
        droppedMetric.increment()
    }

    /// A payload from Redis that was not a valid envelope for its channel (skipped).
    func countMalformed() {
        malformedCount.add(1, ordering: .relaxed)
        malformedMetric.increment()
    }

    /// A failover state change of one server (`to`: `connected` or `fallback`).
    func countTransition(to state: AdapterStatus.State) {
        Counter(label: "chorus_redis_transitions_total", dimensions: [("to", state.rawValue)]).increment()
    }
}
