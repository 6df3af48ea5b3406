import Broker
import Synchronization

/// The busiest topics of this node by messages delivered here, for `/stats` and the dashboard.
///
/// Counts with the Space-Saving algorithm in ``capacity`` counters, so memory stays bounded
/// however many topics exist: a topic not counted yet takes over the smallest counter (and its
/// count, so counts are upper bounds; the topics that matter, the heavy ones, are exact enough).
/// Updated once per batch from the adapter's thread (``ConnectionHub/deliver(_:)``), read by
/// `/stats`: a lock held for a dictionary update per message, never per subscriber.
final class TopicActivity: Sendable {
    static let capacity = 64
    private let counts = Mutex<[String: Int]>([:])

    func record(_ batch: [Envelope]) {
        counts.withLock { counts in
            for envelope in batch {
                guard let topic = envelope.topic?.name else { continue }
                if let count = counts[topic] {
                    counts[topic] = count + 1
                } else if counts.count < Self.capacity {
                    counts[topic] = 1
                } else if let smallest = counts.min(by: { $0.value < $1.value }) {
                    counts[smallest.key] = nil
                    counts[topic] = smallest.value + 1
                }
            }
        }
    }

    /// The `limit` topics with the most messages, most first.
    func top(_ limit: Int) -> [(topic: String, messages: Int)] {
        counts.withLock { counts in
            counts.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }.prefix(limit)
                .map { ($0.key, $0.value) }
        }
    }
}
