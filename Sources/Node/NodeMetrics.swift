import CoreMetrics
import Prometheus

/// The node's swift-metrics instruments, exported as Prometheus text at `GET /metrics`.
///
/// Each node owns its registry (so several nodes in one test process do not mix their numbers);
/// `chorus` also bootstraps the global metrics system with the same registry, so metrics that
/// other modules record (the Redis adapter's transitions) appear at `/metrics` too.
public final class NodeMetrics: Sendable {
    public let registry: PrometheusCollectorRegistry
    private let connections: Meter
    private let connectionsTotal: CoreMetrics.Counter
    private let messagesIn: CoreMetrics.Counter
    private let deliveries: CoreMetrics.Counter

    public init(registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
        self.registry = registry
        let factory = PrometheusMetricsFactory(registry: registry)
        connections = Meter(label: "chorus_websocket_connections", factory: factory)
        connectionsTotal = CoreMetrics.Counter(label: "chorus_websocket_connections_total", factory: factory)
        messagesIn = CoreMetrics.Counter(label: "chorus_messages_published_total", factory: factory)
        deliveries = CoreMetrics.Counter(label: "chorus_messages_delivered_total", factory: factory)
    }

    func connectionOpened() {
        connections.increment()
        connectionsTotal.increment()
    }

    func connectionClosed() {
        connections.decrement()
    }

    func published() {
        messagesIn.increment()
    }

    func delivered(_ count: Int) {
        deliveries.increment(by: count)
    }

    /// The Prometheus text exposition of every metric in the registry.
    public func exposition() -> [UInt8] {
        registry.emitToBuffer()
    }
}
