import Broker
import Foundation
import Prometheus
import Synchronization

/// Mirrors everything `/stats` counts into the node's Prometheus registry, just before each
/// scrape of `/metrics`, under Prometheus's naming conventions (`_total` counters, base units).
///
/// The node counts in its own atomics (``NodeCounters``, the registries, the adapter), read
/// once per scrape here, so the delivery path pays for no second set of counters. Counters
/// advance by the difference since the previous scrape; gauges are set.
final class StatsMetrics: Sendable {
    private let registry: PrometheusCollectorRegistry
    /// The value each counter was last advanced to, by name and labels.
    private let exported = Mutex<[String: Int]>([:])

    init(registry: PrometheusCollectorRegistry) {
        self.registry = registry
    }

    /// - Parameter maxConnections: `WEBSOCKET_MAX_CONNECTIONS` as the node applies it.
    func update(from stats: NodeStats, ready: Bool, maxConnections: Int) {
        let connections = stats.connections
        gauge("chorus_websocket_connections_authenticated", connections.authenticated)
        gauge("chorus_users_connected", connections.users)
        gauge("chorus_websocket_connections_max", maxConnections)
        counter("chorus_websocket_refused_total", ["reason": "ip_limit"], connections.refusedByIPLimit)
        counter("chorus_websocket_refused_total", ["reason": "node_full"], connections.refusedNodeFull ?? 0)
        counter("chorus_websocket_closed_total", ["code": "4008"], connections.closedSlowConsumer)
        counter("chorus_websocket_closed_total", ["code": "4000"], connections.closedPingTimeout)
        counter("chorus_websocket_closed_total", ["code": "1008"], connections.closedFlooding ?? 0)
        counter("chorus_websocket_closed_total", ["code": "4001"], connections.closedTokenExpired ?? 0)
        counter("chorus_websocket_auth_expired_total", [:], connections.authExpired ?? 0)
        counter("chorus_websocket_reads_paused_total", [:], connections.readsPaused ?? 0)
        gauge("chorus_websocket_connections_compressing", connections.compressing ?? 0)
        counter("chorus_messages_compressed_total", [:], stats.messages.compressed ?? 0)
        counter("chorus_messages_inflated_total", [:], stats.messages.inflated ?? 0)
        gauge("chorus_subscriptions", stats.subscriptions.total)
        gauge("chorus_subscribed_topics", stats.subscriptions.topics)
        gauge("chorus_subscribed_patterns", stats.subscriptions.patterns)
        counter("chorus_messages_dropped_total", ["reason": "delivery_backlog"], stats.messages.droppedBacklog ?? 0)
        counter("chorus_messages_dropped_total", ["reason": "adapter_queue"], stats.adapter.dropped)
        counter("chorus_messages_refused_total", [:], stats.adapter.refused ?? 0)
        counter("chorus_messages_published_in_fallback_total", [:], stats.adapter.publishedInFallback)
        counter("chorus_delivery_paced_drains_total", [:], stats.messages.pacedDrains ?? 0)
        counter("chorus_gap_notices_total", [:], stats.messages.gapNotices ?? 0)
        counter("chorus_adapter_malformed_payloads_total", [:], stats.adapter.malformed)
        gauge("chorus_ready", ready ? 1 : 0)
        gauge("chorus_adapter_connected", stats.adapter.state == .connected || stats.adapter.state == .local ? 1 : 0)
        for backend in stats.adapter.backends {
            for state in [AdapterStatus.State.connecting, .connected, .fallback] {
                gauge("chorus_redis_state", backend.state == state ? 1 : 0,
                      ["backend": backend.address, "state": state.rawValue])
            }
            counter("chorus_redis_backend_transitions_total", ["backend": backend.address], backend.transitions)
        }
        for (state, count) in stats.adapter.transitionsTo ?? [:] {
            counter("chorus_redis_transitions_total", ["to": state], count)
        }
        if let presence = stats.presence { update(from: presence) }
        if let history = stats.history { update(from: history) }
        if let store = stats.store {
            counter("chorus_store_pruned_total", ["table": "messages"], store.messagesPruned)
            counter("chorus_store_pruned_total", ["table": "deleted_messages"], store.deletedIdsPruned)
        }
        gauge("process_resident_memory_bytes", stats.memory.residentBytes)
        counter("chorus_memory_trims_total", [:], stats.memory.trims ?? 0)
        counter("chorus_memory_trimmed_bytes_total", [:], stats.memory.trimmedBytes ?? 0)
        if let started = ISO8601.date(stats.startedAt) {
            registry.makeGauge(descriptor: MetricDescriptions.descriptor("process_start_time_seconds")).set(to: started.timeIntervalSince1970)
        }
    }

    private func update(from presence: PresenceStats) {
        gauge("chorus_presence_memberships", presence.memberships)
        gauge("chorus_presence_topics", presence.topics)
        counter("chorus_presence_events_received_total", [:], presence.eventsReceived)
        counter("chorus_typing_indicators_received_total", [:], presence.typingReceived)
        counter("chorus_presence_events_published_total", [:], presence.store.eventsPublished)
        counter("chorus_presence_reaped_instances_total", [:], presence.store.reapedInstances)
        counter("chorus_presence_reaped_leaves_total", [:], presence.store.reapedLeaves)
        counter("chorus_presence_store_failures_total", [:], presence.store.failures)
    }

    /// Only what this node holds: with the Redis backend the streams live in Redis, and these
    /// count the node's fallback rings.
    private func update(from history: HistoryStats) {
        gauge("chorus_history_topics", history.topics)
        gauge("chorus_history_messages", history.messages)
        gauge("chorus_history_bytes", history.bytes)
        if let stored = history.stored { counter("chorus_history_stored_total", [:], stored) }
        counter("chorus_history_duplicates_total", [:], history.duplicates)
    }

    private func gauge(_ name: String, _ value: Int, _ labels: [String: String] = [:]) {
        let descriptor = MetricDescriptions.descriptor(name)
        let gauge = labels.isEmpty
            ? registry.makeGauge(descriptor: descriptor)
            : registry.makeGauge(descriptor: descriptor, labels: Self.sorted(labels))
        gauge.set(to: Double(value))
    }

    private func counter(_ name: String, _ labels: [String: String], _ value: Int) {
        let key = name + Self.sorted(labels).map { "\($0)=\($1)" }.joined(separator: ",")
        let delta = exported.withLock { exported -> Int in
            let previous = exported[key] ?? 0
            exported[key] = max(previous, value)
            return value - previous
        }
        // Made even at zero, so that every series exists from the first scrape.
        let descriptor = MetricDescriptions.descriptor(name)
        let counter = labels.isEmpty
            ? registry.makeCounter(descriptor: descriptor)
            : registry.makeCounter(descriptor: descriptor, labels: Self.sorted(labels))
        if delta > 0 { counter.increment(by: Int64(delta)) }
    }

    private static func sorted(_ labels: [String: String]) -> [(String, String)] {
        labels.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
    }
}
