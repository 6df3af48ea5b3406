import Foundation
import Logging
import NIOCore
import NIOPosix
import Synchronization
import Testing

@testable import Broker

/// One "node" for the Redis tests: a started ``RedisAdapter`` and everything it delivered.
final class RedisTestNode: Sendable {
    let id: String
    let adapter: RedisAdapter
    private let inbox = Inbox()
    private let sequence = Atomic<Int>(0)

    init(
        _ id: String, urls: [RedisURL], timeout: Duration = .milliseconds(1500),
        maxPatterns: Int = RedisAdapter.defaultMaxPatterns, publishQueueLimit: Int = 65_536, history: HistoryPolicy = .off,
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) {
        self.id = id
        var logger = Logger(label: "chorus.test.\(id)")
        logger.logLevel = .error
        adapter = RedisAdapter(
            urls: urls, nodeId: id, timeout: timeout, publishQueueLimit: publishQueueLimit, history: history,
            maxPatterns: maxPatterns, logger: logger, eventLoopGroup: eventLoopGroup)
        adapter.onPeerGap { [inbox] gap in inbox.gaps.withLock { $0.append(gap) } }
        adapter.start { [inbox] batch in
            inbox.received.withLock { $0.append(contentsOf: batch) }
            let thread = UInt(pthread_self())
            inbox.threads.withLock { _ = $0.insert(thread) }
        }
    }

    /// Everything delivered so far, in delivery order.
    var envelopes: [Envelope] { inbox.received.withLock { $0 } }

    /// Other nodes' gap announcements heard so far, one ``PeerGap`` per read burst.
    var peerGaps: [PeerGap] { inbox.gaps.withLock { $0 } }

    /// The threads (`pthread_self()`) `deliver` was called on.
    var deliveringThreads: Set<UInt> { inbox.threads.withLock { $0 } }

    /// The ids delivered so far for `topic` (or for user `userId`), in delivery order.
    func ids(topic: String? = nil, userId: String? = nil) -> [String] {
        envelopes.filter { ($0.topic?.name == topic || topic == nil) && ($0.userId == userId || userId == nil) }.map(\.id)
    }

    func subscribe(_ interests: Interest...) {
        for interest in interests { adapter.addInterest(interest) }
    }

    /// Publishes a fresh message (id `<node>:<n>`, data `{"n":n}` unless given) and returns it.
    @discardableResult
    func publish(
        topic: String?, userId: String? = nil, data: RawJSON? = nil, metadata: RawJSON? = nil,
        completion: PublishCompletion? = nil
    ) -> Envelope {
        let n = sequence.add(1, ordering: .relaxed).newValue
        let envelope = Envelope(
            id: "\(id):\(n)", origin: id, topic: topic.map { try! Topic($0) }, userId: userId,
            eventType: "test", data: data ?? RawJSON(.object(["n": .number(JSONNumber(n))])), metadata: metadata)
        adapter.publish(envelope, completion: completion)
        return envelope
    }

    var status: AdapterStatus { adapter.status() }
}

/// What a test node was handed by its adapter; a class so the deliver closure can share it.
private final class Inbox: Sendable {
    let received = Mutex<[Envelope]>([])
    let threads = Mutex<Set<UInt>>([])
    let gaps = Mutex<[PeerGap]>([])
}
