import Broker
import Logging
import NIOCore
import Synchronization

/// The parts of a running node that every connection and route shares. Immutable or
/// thread-safe, so one instance serves all event loops.
final class NodeContext: Sendable {
    let configuration: NodeConfiguration
    let verifier: TokenVerifier
    let broker: PubSubBroker
    let hub: ConnectionHub
    let limiter: IPConnectionLimiter
    let ids: MessageIDGenerator
    let counters: NodeCounters
    let metrics: NodeMetrics
    let readiness: Readiness
    let logger: Logger
    private let connectionIds = Atomic<Int>(0)

    init(
        configuration: NodeConfiguration, verifier: TokenVerifier, broker: PubSubBroker, group: any EventLoopGroup,
        metrics: NodeMetrics, logger: Logger
    ) {
        self.configuration = configuration
        self.verifier = verifier
        self.broker = broker
        self.counters = NodeCounters()
        self.hub = ConnectionHub(
            group: group, broker: broker, counters: counters, metrics: metrics,
            maxPendingBytes: configuration.maxPendingBytes)
        self.limiter = IPConnectionLimiter(limit: configuration.maxConnectionsPerIP)
        self.ids = MessageIDGenerator(nodeId: configuration.nodeId)
        self.metrics = metrics
        self.readiness = Readiness()
        self.logger = logger
    }

    func nextConnectionId() -> Int {
        connectionIds.add(1, ordering: .relaxed).newValue
    }
}

/// Whether the node takes new clients: `/ready` answers 503 unless `ready`.
final class Readiness: Sendable {
    enum State: Int, Sendable, CustomStringConvertible {
        case starting, ready, draining
        var description: String { ["starting", "ready", "draining"][rawValue] }
    }

    private let value = Atomic<Int>(State.starting.rawValue)

    var state: State { State(rawValue: value.load(ordering: .relaxed))! }

    func set(_ state: State) {
        value.store(state.rawValue, ordering: .relaxed)
    }

    /// Turns `starting` into `ready`; false (and no change) when the node already drains.
    @discardableResult
    func becomeReady() -> Bool {
        value.compareExchange(expected: State.starting.rawValue, desired: State.ready.rawValue, ordering: .relaxed).exchanged
    }
}
