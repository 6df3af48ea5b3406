import Foundation
import Logging
import Synchronization
import Testing

@testable import Broker

/// The history script publishes runs of messages in one call (``RedisHistory/publishScript``):
/// how the publisher cuts a batch into calls, what one call does with several topics,
/// repeated `messageId`s and a failing command, and that the adapter answers every message
/// once when the script is lost or the connection drops before the reply.
@Suite("Redis history: publishing in batched script calls")
struct RedisHistoryBatchTests {
    static let channels = RedisChannels(prefix: "pubsub:", serverCount: 1)
    static let policy = HistoryPolicy(size: 1000)

    static func outgoing(_ topic: String, _ n: Int, messageId: String? = nil, history: Bool = true) -> RedisOutgoing {
        var envelope = Envelope(
            id: "m\(n)", origin: "test", topic: try! Topic(topic), eventType: "test",
            data: RawJSON(.object(["n": .number(JSONNumber(n))])))
        envelope.messageId = messageId
        return RedisOutgoing(
            channel: channels.channel(forKey: channels.key(for: envelope)), envelope: envelope,
            payload: EnvelopeCodec.encode(envelope), historyTopic: history ? envelope.topic : nil)
    }

    /// Runs the script once on `server` for `batch`, as the publisher would.
    static func call(_ server: RedisTestServer, _ batch: [RedisOutgoing], epoch: String = "new") async throws -> [PublishOutcome] {
        let arguments = RedisHistory.publishArguments(channels, batch: batch, policy: policy, newEpoch: epoch)
        let reply = try await server.command(["EVAL", RedisHistory.publishScript] + arguments.map { String(decoding: $0, as: UTF8.self) })
        return try #require(RedisHistory.outcomes(reply, count: batch.count), "reply: \(reply)")
    }

    static func streamIDs(_ server: RedisTestServer, _ topic: String) async throws -> [String] {
        guard case .array(let entries) = try await server.command(["XRANGE", "pubsub:@history:\(topic)", "-", "+"]) else { return [] }
        return entries.compactMap { entry in
            guard case .array(let parts) = entry else { return nil }
            return parts.first?.string
        }
    }

    /// Publishes numbered messages to `topic` one at a time until one is stored in Redis (its
    /// answer names the epoch Redis holds, at Redis's offset): on a loaded machine the link may
    /// miss a deadline and fall back to memory (answered from a local history) between the
    /// settling and the first publish. Returns that answer's position and the next number (nil
    /// after 20 tries).
    static func storedInRedis(
        _ node: HistoryNode, _ redis: RedisTestServer, _ topic: String
    ) async throws -> (position: HistoryPosition, next: Int)? {
        for n in 1...20 {
            _ = await RedisTest.eventually { node.adapter.isSettled }
            let answer = await node.publishAndWait(topic, count: 1, from: n)
            let meta = try await redis.command(["HMGET", "pubsub:@history-meta:\(topic)", "epoch", "offset"])
            guard let position = answer.first?.position, case .array(let fields) = meta,
                fields.count == 2, fields[0].string == position.epoch, fields[1].string == "\(position.offset)"
            else { continue }
            return (position, n + 1)
        }
        return nil
    }

    @Test("a batch is cut into script calls of consecutive messages with history, at most the limit each, in order")
    func groups() {
        let batch = [
            Self.outgoing("a", 1), Self.outgoing("b", 2), Self.outgoing("a", 3), Self.outgoing("a", 4, history: false),
            Self.outgoing("a", 5), Self.outgoing("a", 6, history: false), Self.outgoing("a", 7, history: false),
        ]
        #expect(RedisHistory.publishGroups(batch, limit: 2) == [0..<2, 2..<3, 3..<4, 4..<5, 5..<6, 6..<7])
        #expect(RedisHistory.publishGroups(batch, limit: 64) == [0..<3, 3..<4, 4..<5, 5..<6, 6..<7])
        #expect(RedisHistory.publishGroups([]) == [])
    }

    @Test("one call stores several topics in order without gaps; a messageId repeated in the call or from an earlier one is a duplicate")
    func oneCall() async throws {
        try await RedisTest.withServers { servers in
            let redis = servers[0]
            let first = try await Self.call(redis, [Self.outgoing("t.a", 1, messageId: "x")], epoch: "E1")
            #expect(first == [PublishOutcome(position: HistoryPosition(offset: 1, epoch: "E1"))])
            let outcomes = try await Self.call(
                redis,
                [
                    Self.outgoing("t.a", 2), Self.outgoing("t.b", 3, messageId: "y"), Self.outgoing("t.a", 4, messageId: "x"),
                    Self.outgoing("t.b", 5, messageId: "y"), Self.outgoing("t.a", 6, messageId: "z"), Self.outgoing("t.b", 7),
                ], epoch: "E2")
            #expect(outcomes.map(\.position?.offset) == [2, 1, 1, 1, 3, 2])
            #expect(outcomes.map(\.position?.epoch) == ["E1", "E2", "E1", "E2", "E1", "E2"], "t.b is new: the call's epoch")
            #expect(outcomes.map(\.duplicate) == [false, false, true, true, false, false])
            #expect(try await Self.streamIDs(redis, "t.a") == ["1-0", "2-0", "3-0"])
            #expect(try await Self.streamIDs(redis, "t.b") == ["1-0", "2-0"])
            #expect(try await redis.command(["HGET", "pubsub:@history-meta:t.a", "offset"]).string == "3")
            #expect(try await redis.command(["HGET", "pubsub:@history-meta:t.b", "offset"]).string == "2")
            guard case .integer(let ttl) = try await redis.command(["PTTL", "pubsub:@history:t.b"]) else {
                Issue.record("no TTL on the stream")
                return
            }
            #expect(ttl > 0 && ttl <= Self.policy.ttlMilliseconds)
            let next = try await Self.call(redis, [Self.outgoing("t.b", 8, messageId: "y"), Self.outgoing("t.b", 9)])
            #expect(next.map(\.position?.offset) == [1, 3])
        }
    }

    @Test("offsets past 10^14 are written as digits everywhere (stream id, payload, topic offset, messageId record): Lua's default number format would write 1e+14")
    func largeOffsets() async throws {
        try await RedisTest.withServers { servers in
            let redis = servers[0]
            let start = 99_999_999_999_999
            _ = try await redis.command(["HSET", "pubsub:@history-meta:t.big", "epoch", "E1", "offset", "\(start)"])
            let outcomes = try await Self.call(redis, [Self.outgoing("t.big", 1, messageId: "x"), Self.outgoing("t.big", 2)])
            #expect(outcomes.map(\.position) == [HistoryPosition(offset: start + 1, epoch: "E1"), HistoryPosition(offset: start + 2, epoch: "E1")])
            #expect(try await Self.streamIDs(redis, "t.big") == ["\(start + 1)-0", "\(start + 2)-0"])
            let meta = try await redis.command(["HGET", "pubsub:@history-meta:t.big", "offset"])
            #expect(meta.string == "\(start + 2)")
            guard case .array(let entries) = try await redis.command(["XRANGE", "pubsub:@history:t.big", "-", "+", "COUNT", "1"]),
                case .array(let entry) = entries.first, case .array(let fields) = entry.last
            else {
                Issue.record("no stream entry")
                return
            }
            #expect(fields.last?.string?.hasPrefix("{\"offset\":\(start + 1),\"epoch\":\"E1\",") == true, "\(fields)")
            let again = try await Self.call(redis, [Self.outgoing("t.big", 1, messageId: "x")])
            #expect(again == [PublishOutcome(position: HistoryPosition(offset: start + 1, epoch: "E1"), duplicate: true)])
        }
    }

    @Test("a messageId is per topic, whatever the topic and the id hold: topic rooms with id lobby:K and topic rooms:lobby with id K are both stored")
    func idsPerTopic() async throws {
        try await RedisTest.withServers { servers in
            let redis = servers[0]
            let earlier = try await Self.call(redis, [Self.outgoing("rooms", 1, messageId: "lobby:K1")], epoch: "E")
            let outcomes = try await Self.call(
                redis,
                [
                    Self.outgoing("rooms:lobby", 2, messageId: "K1"), Self.outgoing("rooms", 3, messageId: "lobby:K2"),
                    Self.outgoing("rooms:lobby", 4, messageId: "K2"),
                ], epoch: "E")
            #expect(earlier.map(\.duplicate) == [false])
            #expect(outcomes.map(\.duplicate) == [false, false, false], "across calls and within one")
            #expect(try await Self.streamIDs(redis, "rooms:lobby") == ["1-0", "2-0"])
        }
    }

    @Test("a command failing in the middle of a call refuses that message and the later ones; the earlier stay stored, offsets go on without a gap")
    func failureInTheMiddle() async throws {
        try await RedisTest.withServers { servers in
            let redis = servers[0]
            _ = try await Self.call(redis, [Self.outgoing("t.a", 1), Self.outgoing("t.bad", 2)], epoch: "E")
            // The stream of t.bad is replaced by a string: its XADD fails (WRONGTYPE).
            _ = try await redis.command(["SET", "pubsub:@history:t.bad", "not a stream"])
            let outcomes = try await Self.call(
                redis, [Self.outgoing("t.a", 3), Self.outgoing("t.bad", 4), Self.outgoing("t.a", 5)])
            #expect(outcomes[0] == PublishOutcome(position: HistoryPosition(offset: 2, epoch: "E")))
            #expect(outcomes[1].refusal?.contains("WRONGTYPE") == true)
            #expect(outcomes[2].refusal?.contains("WRONGTYPE") == true)
            #expect(outcomes[1].position == nil && outcomes[2].position == nil)
            let after = try await Self.call(redis, [Self.outgoing("t.a", 6)])
            #expect(after.map(\.position?.offset) == [3], "t.a's offset 2 was written back despite the failure")
            #expect(try await Self.streamIDs(redis, "t.a") == ["1-0", "2-0", "3-0"])
        }
    }

    @Test("the script lost on the server (SCRIPT FLUSH) is loaded again: a burst after it is stored in order without a gap")
    func scriptLost() async throws {
        try await RedisTest.withServers { servers in
            let node = await HistoryNode.settled(urls: [servers[0].url])
            let (first, next) = try #require(try await Self.storedInRedis(node, servers[0], "t.flush"), "stored in Redis")
            _ = try await servers[0].command(["SCRIPT", "FLUSH"])
            let outcomes = await node.publishAndWait("t.flush", count: 200, from: next)
            #expect(outcomes.map(\.position?.offset) == (first.offset + 1...first.offset + 200).map { Optional($0) })
            #expect(outcomes.allSatisfy { $0.refusal == nil && !$0.duplicate && $0.position?.epoch == first.epoch })
            #expect(node.answeredTwice == 0)
            await node.adapter.shutdown()
        }
    }

    @Test("a script call whose connection is killed before Redis ran it is sent again: every publish answered once, in order, without a gap")
    func connectionKilledBeforeAcknowledgement() async throws {
        try await RedisTest.withServers { servers in
            let redis = servers[0]
            // A deadline past the pause: the connection ends by the kill, not by a late answer
            // (a loaded machine took more than 1.5 s to see the call held, and the link fell back).
            let node = await HistoryNode.settled(urls: [redis.url], timeout: .seconds(20))
            let (first, next) = try #require(try await Self.storedInRedis(node, redis, "t.kill"), "stored in Redis")
            let epoch = first.epoch
            // Redis holds every write command (the history script included) until unpaused:
            // the publisher's next call is written, and waits for its reply.
            _ = try await redis.command(["CLIENT", "PAUSE", "10000", "WRITE"])
            let count = 500
            let publishing = Task { await node.publishAndWait("t.kill", count: count, from: next, messageIds: true) }
            let held = await RedisTest.eventually {
                guard let info = try? RedisConnection(connectingTo: redis.url, timeout: .seconds(2)).command(["INFO", "clients"]).string
                else { return false }
                return info.contains("blocked_clients:1")
            }
            #expect(held, "the publisher's call was not held by the pause")
            try await redis.killClient(named: "chorus:hb:pub")
            _ = try await redis.command(["CLIENT", "UNPAUSE"])
            let outcomes = await publishing.value
            #expect(outcomes.count == count, "every publish answered")
            #expect(node.answeredTwice == 0)
            #expect(outcomes.allSatisfy { $0.refusal == nil && !$0.duplicate && $0.position?.epoch == epoch })
            #expect(outcomes.map(\.position?.offset) == (first.offset + 1...first.offset + count).map { Optional($0) })
            #expect(try await Self.streamIDs(redis, "t.kill").count == first.offset + count, "each stored once")
            await node.adapter.shutdown()
        }
    }
}

/// A started ``RedisAdapter`` with history on every topic, publishing with completions.
final class HistoryNode: Sendable {
    let adapter: RedisAdapter
    private let outcomes = Mutex<[Int: PublishOutcome]>([:])
    private let doubles = Atomic<Int>(0)

    /// - Parameter timeout: `PUBSUB_REDIS_TIMEOUT`.
    init(urls: [RedisURL], timeout: Duration = .milliseconds(1500)) {
        var logger = Logger(label: "chorus.test.history-batch")
        logger.logLevel = .error
        adapter = RedisAdapter(urls: urls, nodeId: "hb", timeout: timeout, history: RedisHistoryBatchTests.policy, logger: logger)
        adapter.start { _ in }
    }

    /// A node whose link to `urls` is settled (connected, its subscriptions in place).
    static func settled(urls: [RedisURL], timeout: Duration = .milliseconds(1500)) async -> HistoryNode {
        let node = HistoryNode(urls: urls, timeout: timeout)
        #expect(await RedisTest.eventually { node.adapter.isSettled })
        return node
    }

    var answered: Int { outcomes.withLock { $0.count } }
    /// Completions called for a message already answered (must stay 0).
    var answeredTwice: Int { doubles.load(ordering: .relaxed) }

    /// Publishes messages `from..<from+count` on `topic` without waiting in between, then
    /// waits until each is answered (or `within` passes); the outcomes in publish order.
    func publishAndWait(
        _ topic: String, count: Int, from: Int = 1, messageIds: Bool = false, within: Duration = .seconds(20)
    ) async -> [PublishOutcome] {
        outcomes.withLock { $0.removeAll() }
        for n in from..<(from + count) {
            var envelope = Envelope(
                id: "hb:\(n)", origin: "hb", topic: try! Topic(topic), eventType: "test",
                data: RawJSON(.object(["n": .number(JSONNumber(n))])))
            if messageIds { envelope.messageId = "id-\(n)" }
            adapter.publish(envelope) { outcome in
                let twice = self.outcomes.withLock { answers in
                    defer { answers[n] = outcome }
                    return answers[n] != nil
                }
                if twice { self.doubles.add(1, ordering: .relaxed) }
            }
        }
        _ = await RedisTest.eventually(within: within) { self.answered == count }
        return outcomes.withLock { answers in (from..<(from + count)).compactMap { answers[$0] } }
    }
}
