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
        positions.forget(channel: "pubsub:c", prefix: "pubsub:")
        positions.forget(channel: "other:a", prefix: "pubsub:")
        #expect(positions.count == 1)
        #expect(positions[a] != nil)
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
}
