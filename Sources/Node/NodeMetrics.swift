import NIOCore
import Foundation
import Prometheus

/// The node's swift-metrics instruments, exported as Prometheus text at `GET /metrics`.
///
/// Each node owns its registry (so several nodes in one test process do not mix their numbers);
/// `chorus` also bootstraps the global metrics system with the same registry, so metrics that
/// other libraries record through swift-metrics (Hummingbird's HTTP metrics) appear at
/// `/metrics` too. What `/stats` counts, the Redis adapter's included, comes via ``StatsMetrics``.
public final class NodeMetrics: Sendable {
    public let registry: PrometheusCollectorRegistry
    private let connections: Prometheus.Gauge
    private let connectionsTotal: Prometheus.Counter
    private let messagesIn: Prometheus.Counter
    private let deliveries: Prometheus.Counter
    private let deliveryLatencyHistogram: DurationHistogram
    /// What `/stats` counts, copied into the registry at each scrape.
    let fromStats: StatsMetrics

    public init(registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
        self.registry = registry
        connections = registry.makeGauge(descriptor: MetricDescriptions.descriptor("chorus_websocket_connections"))
        connectionsTotal = registry.makeCounter(descriptor: MetricDescriptions.descriptor("chorus_websocket_connections_total"))
        messagesIn = registry.makeCounter(descriptor: MetricDescriptions.descriptor("chorus_messages_published_total"))
        deliveries = registry.makeCounter(descriptor: MetricDescriptions.descriptor("chorus_messages_delivered_total"))
        fromStats = StatsMetrics(registry: registry)
        deliveryLatencyHistogram = registry.makeDurationHistogram(
            descriptor: MetricDescriptions.descriptor("chorus_delivery_latency_seconds"),
            buckets: [
                .microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5),
                .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250),
                .milliseconds(500), .seconds(1), .seconds(2.5), .seconds(5),
            ])
    }

    /// Time from a message's arrival at the node (from the adapter) until an event loop has
    /// written and flushed it to its subscribers there: one sample per drain of a loop's inbox,
    /// for the oldest message in it (the drain's worst case).
    func deliveryLatency(_ elapsed: TimeAmount) {
        deliveryLatencyHistogram.recordNanoseconds(elapsed.nanoseconds)
    }

    /// A metrics factory over `registry` for the process-wide `MetricsSystem`, so that what other
    /// libraries record appears at `/metrics` too, under Prometheus names: Hummingbird's request
    /// metrics (OpenTelemetry-style dotted labels) become `chorus_http_*` with `method`, `route`
    /// and `status` labels, and `chorus_http_request_errors_total` counts every answer of 400 or
    /// more (``ProcessMetricsFactory``).
    public static func processFactory(registry: PrometheusCollectorRegistry) -> ProcessMetricsFactory {
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.nameAndLabelSanitizer = { name, labels in
            let names = [
                "http.server.request.duration": "chorus_http_request_duration_seconds",
                "hb.requests": "chorus_http_requests_total",
                "hb.request.errors": "chorus_http_request_errors_total",
                "http.server.active_requests": "chorus_http_active_requests",
            ]
            let labelNames = [
                "http.request.method": "method", "http.route": "route", "http.response.status_code": "status",
                "error.type": "status",
            ]
            let sanitized = labels.map { (labelNames[$0.0] ?? $0.0.replacingOccurrences(of: ".", with: "_"), $0.1) }
            return (names[name] ?? name.replacingOccurrences(of: ".", with: "_"), sanitized)
        }
        return ProcessMetricsFactory(prometheus: factory)
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
        deliveries.increment(by: Int64(count))
    }

    /// The Prometheus text exposition of every metric in the registry.
    public func exposition() -> [UInt8] {
        registry.emitToBuffer()
    }
}
