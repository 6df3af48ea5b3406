import Testing

@testable import Broker

/// What a link's subscriber remembers of each topic's history position, and the check each
/// new connection runs with it (``RedisStreamPositions``, ``RedisHistory/rewindScript``).
@Suite("Redis history: noticing a Redis that came back with older data")
struct RedisStreamPositionsTests {
    static let channels = RedisChannels(prefix: "pubsub:", serverCount: 1)

    static func envelope(_ topic: String, offset: Int?, epoch: String?) -> Envelope {
        var envelope = Envelope(
            id: "m", origin: "test", topic: try! Topic(topic), eventType: "test", data: RawJSON(.object([:])))
        envelope.offset = offset
        envelope.epoch = epoch
        return envelope
    }

    @Test("the newest position per topic is kept; an older one is not; another epoch replaces it; the most recently noted topics are kept, in two generations of half the limit")
    func notes() throws {
        let (a, b, c) = (try Topic("a"), try Topic("b"), try Topic("c"))
        var positions = RedisStreamPositions(limit: 4)
        positions.note(Self.envelope("a", offset: 5, epoch: "E"))
        positions.note(Self.envelope("a", offset: 4, epoch: "E"))  // a pattern's second copy, say
        #expect(positions[a] == HistoryPosition(offset: 5, epoch: "E"))
        positions.note(Self.envelope("a", offset: 1, epoch: "F"))
        #expect(positions[a] == HistoryPosition(offset: 1, epoch: "F"))
        positions.note(Self.envelope("b", offset: nil, epoch: nil))  // no history
        #expect(positions.count == 1)
        positions.note(Self.envelope("b", offset: 2, epoch: "E"))  // a generation is full: it turns
        positions.note(Self.envelope("c", offset: 2, epoch: "E"))
        #expect(positions.count == 3)
        positions.note(a, HistoryPosition(offset: 0, epoch: "F"))  // from the older generation, kept newest
        #expect(positions[a] == HistoryPosition(offset: 1, epoch: "F"))
        #expect(positions[b] == nil, "the least recently noted topic is gone")
        #expect(positions[c] == HistoryPosition(offset: 2, epoch: "E"))
        #expect(positions.count == 2)
    }

    @Test("the checks cover every topic in calls of at most the chunk")
    func chunks() {
        var positions = RedisStreamPositions()
        for n in 0..<(RedisStreamPositions.chunk + 3) { positions.note(Self.envelope("t.\(n)", offset: 1, epoch: "E")) }
        let checks = positions.checks(Self.channels)
        #expect(checks.count == 2)
        #expect(checks.map { Int($0[2])! } == [2 * RedisStreamPositions.chunk, 6])
        #expect(checks.allSatisfy { $0.count == 3 + 4 * Int($0[2])! / 2 })
        #expect(RedisStreamPositions().checks(Self.channels).isEmpty)
    }

    @Test("a topic behind what was read, in the same epoch, loses its meta and stream; one as far or in another epoch is kept; then its next message starts a new epoch")
    func script() async throws {
        try await RedisTest.withServers { servers in
            let redis = servers[0]
            for (topic, count) in [("behind", 3), ("level", 6), ("other", 2)] {
                for n in 1...count {
                    _ = try await RedisHistoryBatchTests.call(redis, [RedisHistoryBatchTests.outgoing(topic, n)], epoch: "E")
                }
            }
            var positions = RedisStreamPositions()
            positions.note(Self.envelope("behind", offset: 6, epoch: "E"))
            positions.note(Self.envelope("level", offset: 6, epoch: "E"))
            positions.note(Self.envelope("other", offset: 9, epoch: "F"))
            positions.note(Self.envelope("gone", offset: 9, epoch: "E"))
            let checks = positions.checks(Self.channels)
            #expect(checks.count == 1)
            #expect(try await redis.command(checks[0]) == .integer(1))
            #expect(try await redis.command(["EXISTS", "pubsub:@history-meta:behind", "pubsub:@history:behind"]) == .integer(0))
            #expect(try await redis.command(["EXISTS", "pubsub:@history-meta:level", "pubsub:@history:level"]) == .integer(2))
            #expect(try await redis.command(["EXISTS", "pubsub:@history-meta:other", "pubsub:@history:other"]) == .integer(2))
            let next = try await RedisHistoryBatchTests.call(redis, [RedisHistoryBatchTests.outgoing("behind", 4)], epoch: "E2")
            #expect(next == [PublishOutcome(position: HistoryPosition(offset: 1, epoch: "E2"))])
            #expect(try await redis.command(checks[0]) == .integer(0), "once reset, the check finds nothing more")
        }
    }

    @Test("the publisher checks too: reconnected alone (its connection killed while the subscriber's stays, as when the server behind a stable address was replaced), it resets a topic Redis lost before it publishes there again")
    func publisherChecks() async throws {
        try await RedisTest.withServers { servers in
            let redis = servers[0]
            let node = await HistoryNode.settled(urls: [redis.url])
            let before = await node.publishAndWait("t.lost", count: 3)
            let epoch = try #require(before.last?.position?.epoch)
            // Redis lost the last two writes: the topic's meta is back at offset 1.
            _ = try await redis.command(["HSET", "pubsub:@history-meta:t.lost", "offset", "1"])
            try await redis.killClient(named: "chorus:hb:pub")
            let after = await node.publishAndWait("t.lost", count: 1, from: 4)
            #expect(after.first?.position?.epoch != epoch, "a new epoch, not offset 2 of the old one")
            #expect(after.first?.position?.offset == 1, "\(after)")
            await node.adapter.shutdown()
        }
    }

    @Test("an ACL without EVAL: the check is skipped (with a warning) rather than failing the connections, which come back and publish with history")
    func checkDenied() async throws {
        try await RedisTest.withServers { servers in
            let redis = servers[0]
            _ = try await redis.command(["ACL", "SETUSER", "noeval", "on", ">pw", "~*", "&*", "+@all", "-eval"])
            let node = await HistoryNode.settled(urls: [RedisURL(host: redis.host, port: redis.port, user: "noeval", password: "pw")])
            let before = await node.publishAndWait("t.acl", count: 1)  // a position to check at the next connect
            let epoch = try #require(before.first?.position?.epoch)
            let transitions = node.adapter.status().transitions
            try await redis.killClient(named: "chorus:hb:sub")
            // Fallen back, then connected again (without the check's NOPERM tolerated, never).
            #expect(await RedisTest.eventually {
                let status = node.adapter.status()
                return status.transitions >= transitions + 2 && status.state == .connected
            })
            let after = await node.publishAndWait("t.acl", count: 1, from: 2)
            #expect(after.first?.position == HistoryPosition(offset: 2, epoch: epoch), "\(after)")
            #expect(after.first?.nodeOnly == false)
            await node.adapter.shutdown()
        }
    }

    @Test("a messageId stored before a reset is not a duplicate in the new epoch (before, a retry was answered with its old offset under the new epoch, and not delivered); one of the new epoch is; a bare offset, as nodes before the epoch was stored wrote, still is, and such nodes read the offset of an id stored now")
    func idsAfterReset() async throws {
        try await RedisTest.withServers { servers in
            let redis = servers[0]
            typealias Batch = RedisHistoryBatchTests
            for n in 1...3 { _ = try await Batch.call(redis, [Batch.outgoing("t", n, messageId: "k\(n)")], epoch: "E") }
            // What a node from before wrote: `tonumber` of the value, as its script does.
            let older = try await redis.command(["EVAL", "return tonumber(redis.call('GET', KEYS[1]))", "1", "pubsub:@history-id:t/k2"])
            #expect(older == .integer(2))
            var positions = RedisStreamPositions()
            positions.note(try Topic("t"), HistoryPosition(offset: 6, epoch: "E"))
            #expect(try await redis.command(positions.checks(Self.channels)[0]) == .integer(1))
            #expect(try await Batch.call(redis, [Batch.outgoing("t", 4)], epoch: "F") == [PublishOutcome(position: HistoryPosition(offset: 1, epoch: "F"))])
            let retried = try await Batch.call(redis, [Batch.outgoing("t", 2, messageId: "k2")], epoch: "G")
            #expect(retried == [PublishOutcome(position: HistoryPosition(offset: 2, epoch: "F"))], "stored again in the new epoch")
            let again = try await Batch.call(redis, [Batch.outgoing("t", 2, messageId: "k2")], epoch: "G")
            #expect(again == [PublishOutcome(position: HistoryPosition(offset: 2, epoch: "F"), duplicate: true)])
            _ = try await redis.command(["SET", "pubsub:@history-id:t/legacy", "1"])
            let legacy = try await Batch.call(redis, [Batch.outgoing("t", 5, messageId: "legacy")], epoch: "G")
            #expect(legacy == [PublishOutcome(position: HistoryPosition(offset: 1, epoch: "F"), duplicate: true)])
        }
    }
}
