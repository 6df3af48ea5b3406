import CoreMetrics
import Prometheus

/// The process-wide swift-metrics factory (see ``NodeMetrics/processFactory(registry:)``):
/// swift-prometheus's, except that `chorus_http_request_errors_total` counts what its name says,
/// every request answered with a status of 400 or more, by route, method and status.
///
/// Hummingbird's own error counter (`hb.request.errors`) counts only errors a handler throws,
/// so a 404 of the router but not a 401 the node answers itself, and its middleware makes one
/// for every route and status it sees, so successful routes showed `status="200"` error series
/// at 0. Here that counter is dropped, and the request counter (`hb.requests`, which sees every
/// answer, thrown or returned, with its status) counts in the error counter too for statuses
/// of 400 and more.
public struct ProcessMetricsFactory: MetricsFactory {
    let prometheus: PrometheusMetricsFactory

    public func makeCounter(label: String, dimensions: [(String, String)]) -> any CounterHandler {
        switch label {
        case "hb.request.errors":
            return NOOPMetricsHandler.instance
        case "hb.requests":
            let requests = prometheus.makeCounter(label: label, dimensions: dimensions)
            let status = dimensions.first { $0.0 == "http.response.status_code" }.flatMap { Int($0.1) }
            guard let status, status >= 400 else { return requests }
            return RequestErrorCounter(
                requests: requests, errors: prometheus.makeCounter(label: "hb.request.errors", dimensions: dimensions))
        default:
            return prometheus.makeCounter(label: label, dimensions: dimensions)
        }
    }

    public func makeFloatingPointCounter(label: String, dimensions: [(String, String)]) -> any FloatingPointCounterHandler {
        prometheus.makeFloatingPointCounter(label: label, dimensions: dimensions)
    }

    public func makeMeter(label: String, dimensions: [(String, String)]) -> any MeterHandler {
        prometheus.makeMeter(label: label, dimensions: dimensions)
    }

    public func makeRecorder(label: String, dimensions: [(String, String)], aggregate: Bool) -> any RecorderHandler {
        prometheus.makeRecorder(label: label, dimensions: dimensions, aggregate: aggregate)
    }

    public func makeTimer(label: String, dimensions: [(String, String)]) -> any TimerHandler {
        prometheus.makeTimer(label: label, dimensions: dimensions)
    }

    public func destroyCounter(_ handler: any CounterHandler) {
        if let both = handler as? RequestErrorCounter {
            prometheus.destroyCounter(both.requests)
            prometheus.destroyCounter(both.errors)
        } else {
            prometheus.destroyCounter(handler)
        }
    }

    public func destroyFloatingPointCounter(_ handler: any FloatingPointCounterHandler) {
        prometheus.destroyFloatingPointCounter(handler)
    }

    public func destroyMeter(_ handler: any MeterHandler) {
        prometheus.destroyMeter(handler)
    }

    public func destroyRecorder(_ handler: any RecorderHandler) {
        prometheus.destroyRecorder(handler)
    }

    public func destroyTimer(_ handler: any TimerHandler) {
        prometheus.destroyTimer(handler)
    }
}

/// The request counter of one route, method and error status: counts each answer as a request
/// and as an error.
private final class RequestErrorCounter: CounterHandler, Sendable {
    let requests: any CounterHandler
    let errors: any CounterHandler

    init(requests: any CounterHandler, errors: any CounterHandler) {
        self.requests = requests
        self.errors = errors
    }

    func increment(by amount: Int64) {
        requests.increment(by: amount)
        errors.increment(by: amount)
    }

    func reset() {
        requests.reset()
        errors.reset()
    }
}
