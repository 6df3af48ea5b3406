import Broker
import NIOCore

/// All registries of a node, one per event loop, and the door through which delivered messages
/// reach them.
///
/// ``deliver(_:)`` is the broker's deliver closure: it encodes each message's client frame once
/// for the whole node and hands the batch to every loop's bounded inbox, which queues at most
/// one task per loop however many batches wait.
final class ConnectionHub: Sendable {
    let registries: [ConnectionRegistry]
    /// Messages per topic delivered on this node, for `/stats`.
    let activity = TopicActivity()
    private let allocator = ByteBufferAllocator()

    init(
        group: any EventLoopGroup, broker: PubSubBroker, counters: NodeCounters, metrics: NodeMetrics,
        maxPendingBytes: Int
    ) {
        registries = group.makeIterator().map {
            ConnectionRegistry(
                loop: $0, broker: broker, counters: counters, metrics: metrics, maxPendingBytes: maxPendingBytes)
        }
    }

    /// The registry whose executor is `loop`.
    func registry(for loop: any EventLoop) -> ConnectionRegistry {
        for registry in registries where registry.loop === loop { return registry }
        preconditionFailure("event loop \(loop) is not in the node's group")
    }

    /// Encodes each message's client frame once for the whole node and hands the batch to every
    /// loop. Called on the adapter's thread; never waits for a loop (see ``DeliveryInbox``).
    func deliver(_ batch: [Envelope]) {
        var bytes = 0
        let arrivedAt = NIODeadline.now()
        let deliveries = batch.map { envelope in
            let frame = OutboundFrame.text(ServerMessage.message(envelope).encoded(), allocator: allocator)
            let delivery = Delivery(topic: envelope.topic, userId: envelope.userId, frame: frame, arrivedAt: arrivedAt)
            bytes += DeliveryInbox.cost(of: delivery)
            return delivery
        }
        for registry in registries {
            registry.enqueue(deliveries, bytes: bytes)
        }
        activity.record(batch)
    }

    func snapshot() async -> RegistrySnapshot {
        var total = RegistrySnapshot()
        for registry in registries {
            let part = await registry.snapshot()
            total.connections += part.connections
            total.authenticated += part.authenticated
            total.subscriptions += part.subscriptions
            total.users += part.users
        }
        return total
    }

    /// Closes every WebSocket with `code` and returns once all are closed. Repeats until none
    /// is left, for a connection whose upgrade completed meanwhile.
    func closeAll(_ code: CloseCode, reason: String) async {
        while true {
            var closing: [EventLoopFuture<Void>] = []
            for registry in registries {
                closing += await registry.closeAll(code, reason: reason)
            }
            guard !closing.isEmpty else { return }
            for future in closing { try? await future.get() }
        }
    }
}
