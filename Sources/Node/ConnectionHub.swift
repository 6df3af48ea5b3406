import Broker
import Foundation
import NIOCore
import Synchronization

/// All registries of a node, one per event loop, and the door through which delivered messages
/// reach them.
///
/// ``deliver(_:)`` is the broker's deliver closure: it encodes each message's client frame once
/// for the whole node and hands each loop's bounded inbox the part of the batch that loop's
/// connections may want (``LoopInterest``; a loop that wants none of it is not woken). An inbox
/// queues at most one task on its loop however many batches wait. With `WEBSOCKET_COMPRESSION=on`, while any
/// connection of the node agreed to permessage-deflate, it also compresses each message once
/// (``OutboundDeflate``), and every such subscriber is written the same compressed frame.
final class ConnectionHub: Sendable {
    let registries: [ConnectionRegistry]
    /// Messages per topic delivered on this node, for `/stats`.
    let activity = TopicActivity()
    private let allocator = ByteBufferAllocator()
    /// Typing indicators shown here: coalesced, and timed out (see ``TypingRelay``).
    let typing: TypingRelay
    /// Presence events past `PRESENCE_BATCH_RATE` per topic and second, batched (see ``PresenceBatcher``).
    let presenceBatches: PresenceBatcher
    /// Presence and typing frames written to clients of this node, for `/stats`.
    let signalCounters = SignalCounters()
    /// Set with `WEBSOCKET_COMPRESSION=on`.
    let deflate: OutboundDeflate?
    private let counters: NodeCounters

    init(
        group: any EventLoopGroup, broker: PubSubBroker, counters: NodeCounters, metrics: NodeMetrics,
        maxPendingBytes: Int, writeDelay: TimeAmount = .zero, typingTimeout: Duration = .milliseconds(5_000),
        presenceBatchRate: Int = 50, deflate: OutboundDeflate? = nil
    ) {
        self.deflate = deflate
        self.counters = counters
        let registries = group.makeIterator().map {
            ConnectionRegistry(
                loop: $0, broker: broker, counters: counters, metrics: metrics, maxPendingBytes: maxPendingBytes,
                writeDelay: writeDelay)
        }
        self.registries = registries
        let allocator = ByteBufferAllocator()
        let local: @Sendable (Envelope) -> Void = { signal in
            guard let delivery = Self.signalDelivery(signal, allocator: allocator, arrivedAt: .now()) else { return }
            Self.hand([delivery], to: registries)
        }
        typing = TypingRelay(timeout: typingTimeout, deliverStop: local)
        // The budget of a presence.get answer: a batch never closes a reading watcher (4008).
        presenceBatches = PresenceBatcher(rate: presenceBatchRate, maxBatchBytes: maxPendingBytes / 4, flush: local)
    }

    /// The registry whose executor is `loop`.
    func registry(for loop: any EventLoop) -> ConnectionRegistry {
        for registry in registries where registry.loop === loop { return registry }
        preconditionFailure("event loop \(loop) is not in the node's group")
    }

    /// Encodes each message's client frame once for the whole node and hands each loop its part
    /// of the batch. Called on the adapter's thread; never waits for a loop (see ``DeliveryInbox``).
    func deliver(_ batch: [Envelope]) {
        let arrivedAt = NIODeadline.now()
        let compressing = deflate != nil && counters.compressingConnections.load(ordering: .relaxed) > 0
        var compressed = 0
        let deliveries = batch.compactMap { envelope -> Delivery? in
            if let kind = envelope.kind {
                // Adapters hand these over apart (``PubSubAdapter/onPeerGap(_:)``).
                if kind == .gap { return nil }
                if kind == .typing, !typing.incoming(envelope) { return nil }
                if kind == .presence, !presenceBatches.admit(envelope) { return nil }
                if kind == .typing {
                    signalCounters.typingIndicators.add(1, ordering: .relaxed)
                } else {
                    signalCounters.presenceEvents.add(1, ordering: .relaxed)
                }
                guard let delivery = Self.signalDelivery(envelope, allocator: allocator, arrivedAt: arrivedAt) else {
                    return nil
                }
                return delivery
            }
            let payload = ServerMessage.message(envelope).encoded()
            let frame = OutboundFrame.text(payload, allocator: allocator)
            var delivery = Delivery(
                topic: envelope.topic, userId: envelope.userId, frame: frame, offset: envelope.offset, epoch: envelope.epoch,
                arrivedAt: arrivedAt)
            if compressing, let deflated = deflate?.compressedText(payload) {
                delivery.compressed = deflated
                compressed += 1
            }
            return delivery
        }
        if compressed > 0 { counters.messagesCompressed.add(compressed, ordering: .relaxed) }
        Self.hand(deliveries, to: registries)
        activity.record(batch)
    }

    /// Hands each loop the part of `deliveries` that its connections may want (see
    /// ``LoopInterest``); a loop that wants none of it is not woken.
    private static func hand(_ deliveries: [Delivery], to registries: [ConnectionRegistry]) {
        guard !deliveries.isEmpty else { return }
        let targets = deliveries.map { LoopInterest.target(topic: $0.topic, userId: $0.userId) }
        let costs = deliveries.map(DeliveryInbox.cost(of:))
        let total = costs.reduce(0, +)
        for registry in registries {
            switch registry.loopInterest.select(targets) {
            case .all:
                registry.enqueue(deliveries, bytes: total)
            case .none:
                continue
            case .some(let wanted):
                var part: [Delivery] = []
                var bytes = 0
                for index in deliveries.indices where wanted[index] {
                    part.append(deliveries[index])
                    bytes += costs[index]
                }
                registry.enqueue(part, bytes: bytes)
            }
        }
    }

    /// A presence event's or typing indicator's delivery: its own frame and audience (see
    /// ``Delivery/Audience``); nil without a topic.
    static func signalDelivery(_ envelope: Envelope, allocator: ByteBufferAllocator, arrivedAt: NIODeadline) -> Delivery? {
        guard let topic = envelope.topic, let kind = envelope.kind else { return nil }
        switch kind {
        case .presence:
            let frame = OutboundFrame.text(PresenceFrames.signal("presence", envelope), allocator: allocator)
            return Delivery(topic: topic, userId: nil, frame: frame, arrivedAt: arrivedAt, audience: .presenceWatchers)
        case .typing:
            let typist = (try? RawJSONObject(parsing: envelope.data.bytes))?["userId"]?.stringValue ?? ""
            let frame = OutboundFrame.text(PresenceFrames.signal("typing", envelope), allocator: allocator)
            return Delivery(topic: topic, userId: nil, frame: frame, arrivedAt: arrivedAt, audience: .typing(except: typist))
        case .gap:
            return nil
        }
    }

    /// Tells every session, on every loop, of the subscriptions (and user) whose messages
    /// `affected` says may be missing (``ConnectionRegistry/reportGaps(where:at:sessionsPerTask:counted:)``).
    func reportGaps(
        where affected: @escaping @Sendable (Interest) -> Bool,
        sessionsPerTask: Int = ConnectionRegistry.gapSessionsPerTask
    ) {
        let now = Date()
        let counters = self.counters
        for registry in registries {
            registry.loop.execute {
                registry.assumeIsolated {
                    $0.reportGaps(where: affected, at: now, sessionsPerTask: sessionsPerTask) {
                        counters.gapNotices.add($0, ordering: .relaxed)
                    }
                }
            }
        }
    }

    /// Tells every presence watcher of a topic that `holds` accepts, on every loop, that events
    /// of it may have been lost (``ConnectionRegistry/resyncPresence(where:at:)``).
    func resyncPresence(where holds: @escaping @Sendable (Topic) -> Bool) {
        let now = Date()
        for registry in registries {
            registry.loop.execute { registry.assumeIsolated { $0.resyncPresence(where: holds, at: now) } }
        }
    }

    func snapshot() async -> RegistrySnapshot {
        var total = RegistrySnapshot()
        for registry in registries {
            let part = await registry.snapshot()
            total.connections += part.connections
            total.authenticated += part.authenticated
            total.subscriptions += part.subscriptions
        }
        return total
    }

    /// Closes every WebSocket with `code` and returns once all are closed. Repeats until none
    /// is left, for a connection whose upgrade completed meanwhile. Connections still open
    /// `budget` after the start (clients that do not answer the close), or once the calling
    /// task is cancelled, are dropped without waiting further.
    func closeAll(_ code: CloseCode, reason: String, within budget: Duration) async {
        let deadline = ContinuousClock.now + budget
        var aborted = false
        while true {
            var closing: [EventLoopFuture<Void>] = []
            for registry in registries {
                closing += await registry.closeAll(code, reason: reason)
            }
            guard !closing.isEmpty else { return }
            let closed = await Self.waitUntilClosed(closing, on: registries[0].loop, until: aborted ? nil : deadline)
            if !closed, !aborted {
                aborted = true
                for registry in registries { await registry.abortAll() }
            }
        }
    }

    /// True once every future of `closing` has completed; false when `deadline` passes first or
    /// the task is cancelled. Without a deadline, waits for them all (they are being closed).
    private static func waitUntilClosed(
        _ closing: [EventLoopFuture<Void>], on loop: any EventLoop, until deadline: ContinuousClock.Instant?
    ) async -> Bool {
        let all = EventLoopFuture.andAllComplete(closing, on: loop)
        guard let deadline else {
            try? await all.get()
            return true
        }
        let answer = Mutex<CheckedContinuation<Bool, Never>?>(nil)
        let finish: @Sendable (Bool) -> Void = { closed in
            answer.withLock { waiting in
                defer { waiting = nil }
                return waiting
            }?.resume(returning: closed)
        }
        let timer = Task {
            try? await Task.sleep(until: deadline)
            finish(false)
        }
        defer { timer.cancel() }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                answer.withLock { $0 = continuation }
                if Task.isCancelled || ContinuousClock.now >= deadline { finish(false) }
                all.whenComplete { _ in finish(true) }
            }
        } onCancel: {
            finish(false)
        }
    }
}
