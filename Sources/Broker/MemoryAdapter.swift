import Dispatch
import Foundation
import Synchronization

/// The in-process topic space (`PUBSUB_ADAPTER=memory`): what one node publishes reaches that
/// node's own subscribers only.
///
/// Publishes are queued and handed to the broker's deliver closure in batches on one serial
/// dispatch queue, so a burst costs one hop, not one per message. The queue holds at most
/// `maxMessages` (`PUBSUB_MEMORY_MAX_MESSAGES`) and `maxBytes` (64 MiB) of messages (an empty
/// queue takes any one); past either, publishes are dropped and counted. By count alone, 10,000
/// messages of 1 MiB could wait: a few clients publishing large messages grew a node by 800 MiB.
///
/// **History** (``MemoryHistory``): a message on a topic with history gets its offset under the
/// same lock that queues it, so offsets and delivery order agree; a repeated `messageId` is
/// acknowledged as a duplicate and neither stored nor delivered.
public final class MemoryAdapter: PubSubAdapter {
    private struct State {
        var deliver: (@Sendable ([Envelope]) -> Void)?
        var pending: [Envelope] = []
        var pendingBytes = 0
        var drainScheduled = false
        var dropped = 0
    }

    private let maxMessages: Int
    private let maxBytes: Int
    private let started = Date()
    private let state = Mutex(State())
    private let queue = DispatchQueue(label: "chorus.memory-adapter")

    public let history: HistoryPolicy
    private let store: MemoryHistory

    public init(maxMessages: Int = 10_000, maxBytes: Int = 64 << 20, history: HistoryPolicy = .off) {
        precondition(maxMessages > 0, "maxMessages must be positive")
        self.maxMessages = maxMessages
        self.maxBytes = maxBytes
        self.history = history
        self.store = MemoryHistory(policy: history)
    }

    public func start(deliver: @escaping @Sendable ([Envelope]) -> Void) {
        state.withLock { $0.deliver = deliver }
    }

    public func publish(_ envelope: Envelope) {
        publish(envelope, completion: nil)
    }

    public func publish(_ envelope: Envelope, completion: PublishCompletion?) {
        var envelope = envelope
        let topic = history.topic(of: envelope)
        var outcome = PublishOutcome.accepted
        var accepted = false
        let cost = envelope.approximateBytes
        let schedule = state.withLock { state -> Bool in
            guard state.pending.count < maxMessages, state.pending.isEmpty || state.pendingBytes + cost <= maxBytes else {
                state.dropped += 1
                return false
            }
            accepted = true
            if let topic {
                outcome = store.record(&envelope, topic: topic)
                if outcome.duplicate { return false }
            }
            state.pending.append(envelope)
            state.pendingBytes += cost
            guard !state.drainScheduled else { return false }
            state.drainScheduled = true
            return true
        }
        if schedule {
            queue.async { self.drain() }
        }
        if let completion {
            completion(accepted ? outcome : .refused(
                "the node's publish queue is full (PUBSUB_MEMORY_MAX_MESSAGES, or \(maxBytes >> 20) MiB)"))
        }
    }

    public func readHistory(
        _ topic: Topic, _ query: HistoryQuery, completion: @escaping @Sendable (Result<HistoryPage, HistoryError>) -> Void
    ) {
        guard history.covers(topic) else { return completion(.failure(HistoryError("topic '\(topic.name)' keeps no history"))) }
        completion(.success(store.read(topic, query)))
    }

    public func historyStats() -> HistoryStats? {
        history.isEnabled ? store.stats(backend: "memory") : nil
    }

    private func drain() {
        let (batch, deliver) = state.withLock { state in
            state.drainScheduled = false
            state.pendingBytes = 0
            defer { state.pending.removeAll(keepingCapacity: true) }
            return (state.pending, state.deliver)
        }
        guard !batch.isEmpty else { return }
        deliver?(batch)
    }

    // Everything published stays in this process, so interest needs no bookkeeping here:
    // the node's own subscription index does the matching.
    public func addInterest(_ interest: Interest) {}
    public func removeInterest(_ interest: Interest) {}
    public func whenInterestSettled(_ body: @escaping @Sendable () -> Void) { body() }

    public func status() -> AdapterStatus {
        let dropped = state.withLock { $0.dropped }
        return AdapterStatus(adapter: "memory", state: .local, since: started, dropped: dropped)
    }

    public func shutdown() async {
        state.withLock {
            $0.deliver = nil
            $0.pending.removeAll()
            $0.pendingBytes = 0
        }
    }
}
