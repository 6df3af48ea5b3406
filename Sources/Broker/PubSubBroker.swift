import Synchronization

/// The node's door to the topic space: refcounts local interest and publishes through the adapter.
///
/// Every local connection that subscribes to a topic or pattern (or authenticates as a user)
/// retains the matching ``Interest``; the adapter hears only about the first retain and the
/// last release, so Redis sees one `SUBSCRIBE` per topic per node however many clients hold it.
/// All methods are thread-safe and non-blocking; the refcount table is behind a mutex because
/// interest changes arrive from every event loop and must reach the adapter in order.
public final class PubSubBroker: Sendable {
    public let adapter: any PubSubAdapter
    private let interests = Mutex<[Interest: Int]>([:])

    public init(adapter: any PubSubAdapter) {
        self.adapter = adapter
    }

    /// Starts the adapter; `deliver` receives every message matching the node's interest.
    public func start(deliver: @escaping @Sendable ([Envelope]) -> Void) {
        adapter.start(deliver: deliver)
    }

    public func publish(_ envelope: Envelope) {
        adapter.publish(envelope)
    }

    /// Publishes and reports the outcome (history position, duplicate) to `completion`.
    public func publish(_ envelope: Envelope, completion: PublishCompletion?) {
        adapter.publish(envelope, completion: completion)
    }

    /// One more local holder of `interest`.
    public func retain(_ interest: Interest) {
        interests.withLock { table in
            let count = table[interest, default: 0]
            table[interest] = count + 1
            if count == 0 { adapter.addInterest(interest) }
        }
    }

    /// One local holder of `interest` fewer.
    public func release(_ interest: Interest) {
        interests.withLock { table in
            guard let count = table[interest] else { return }
            if count <= 1 {
                table[interest] = nil
                adapter.removeInterest(interest)
            } else {
                table[interest] = count - 1
            }
        }
    }

    /// Runs `body` once every interest retained or released before this call is in effect on
    /// the adapter's backend (see ``PubSubAdapter/whenInterestSettled(_:)``): after it, a message
    /// published anywhere in the cluster reaches this node's holders. At once in the common case.
    public func whenInterestSettled(_ body: @escaping @Sendable () -> Void) {
        adapter.whenInterestSettled(body)
    }

    /// Distinct interests currently held on this node, by kind.
    public func interestCounts() -> (topics: Int, patterns: Int, users: Int) {
        interests.withLock { table in
            var counts = (topics: 0, patterns: 0, users: 0)
            for interest in table.keys {
                switch interest {
                case .topic: counts.topics += 1
                case .pattern: counts.patterns += 1
                case .user: counts.users += 1
                }
            }
            return counts
        }
    }

    public func shutdown() async {
        await adapter.shutdown()
    }
}
