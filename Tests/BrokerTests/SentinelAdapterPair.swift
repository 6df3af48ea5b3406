import Foundation
import Logging
import Synchronization
import TestSupport

@testable import Broker

/// Two ``RedisAdapter``s (nodes `n0` and `n1`) that find Redis through Sentinel, both
/// interested in one topic, each recording the ids it delivers: the Sentinel tests' pair.
final class SentinelAdapterPair: Sendable {
    let adapters: [RedisAdapter]
    /// The ids each adapter delivered, in order.
    private let delivered = Mutex<[[String]]>([[], []])
    private let topic: String

    init(_ settings: RedisSentinelSettings, topic: String) {
        var logger = Logger(label: "chorus.test.sentinel")
        logger.logLevel = .error
        self.topic = topic
        adapters = (0..<2).map { index in
            RedisAdapter(sentinel: settings, nodeId: "n\(index)", timeout: .milliseconds(1500), logger: logger)
        }
        for (index, adapter) in adapters.enumerated() {
            adapter.start { [self] batch in delivered.withLock { $0[index] += batch.map(\.id) } }
            adapter.addInterest(RedisTest.topic(topic))
        }
    }

    /// Both adapters connected with their interest in place, after at least `transitions`
    /// state changes (connected is 1; a master moved adds 2: fallback, connected again).
    func settled(after transitions: Int) async -> Bool {
        await RedisTest.eventually(within: .seconds(60)) {
            adapters.allSatisfy { $0.isSettled && $0.status().transitions >= transitions }
        }
    }

    /// Publishes `id` on `n0`; true once `n1` delivered it.
    func crosses(_ id: String) async -> Bool {
        adapters[0].publish(
            Envelope(id: id, origin: "n0", topic: try! Topic(topic), eventType: nil, data: RawJSON(.object([:])), metadata: nil))
        return await RedisTest.eventually(within: .seconds(10)) { delivered.withLock { $0[1].contains(id) } }
    }

    /// Whether some id was delivered twice by one adapter.
    var deliveredTwice: Bool {
        delivered.withLock { $0.contains { Set($0).count != $0.count } }
    }

    func shutdown() async {
        for adapter in adapters { await adapter.shutdown() }
    }

    /// Runs `body` with a pair, and shuts the pair down also when `body` throws.
    static func with<T>(_ settings: RedisSentinelSettings, topic: String, _ body: (SentinelAdapterPair) async throws -> T) async throws -> T {
        let pair = SentinelAdapterPair(settings, topic: topic)
        do {
            let result = try await body(pair)
            await pair.shutdown()
            return result
        } catch {
            await pair.shutdown()
            throw error
        }
    }
}
