import Testing

@testable import Broker

@Suite("RedisEchoes")
struct RedisEchoesTests {
    private func outgoing(_ id: String) -> RedisOutgoing {
        let envelope = Envelope(id: id, origin: "a", topic: try! Topic("t"), data: RawJSON(.null))
        return RedisOutgoing(channel: "pubsub:t", envelope: envelope, payload: [])
    }

    @Test("a batch splits into what Redis has not published back, in order, and what it has, with its history position")
    func split() {
        var echoes = RedisEchoes()
        var stored = Envelope(id: "a:2", origin: "a", topic: try! Topic("t"), data: RawJSON(.null))
        stored.offset = 7
        stored.epoch = "e"
        echoes.record(stored)
        echoes.record(Envelope(id: "a:4", origin: "a", topic: try! Topic("t"), data: RawJSON(.null)))

        // History messages, which are never inferred from the order.
        let batch = ["a:1", "a:2", "a:3", "a:4", "a:5"].map(outgoing).map { message in
            var message = message
            message.historyTopic = try! Topic("t")
            return message
        }
        let (unpublished, published) = echoes.split(batch)
        #expect(unpublished.map(\.envelope.id) == ["a:1", "a:3", "a:5"])
        #expect(published.map(\.0.envelope.id) == ["a:2", "a:4"])
        #expect(published.map(\.1) == [PublishOutcome(position: HistoryPosition(offset: 7, epoch: "e")), .accepted])
        #expect(echoes.isEmpty, "a split forgets what it knew")
    }

    @Test("plain publishes before the last message seen back were run too; history messages and later ones are not inferred")
    func inferredFromOrder() {
        var echoes = RedisEchoes()
        echoes.record(Envelope(id: "a:4", origin: "a", topic: try! Topic("t"), data: RawJSON(.null)))
        var batch = ["a:1", "a:2", "a:3", "a:4", "a:5"].map(outgoing)
        batch[1].historyTopic = try! Topic("t")
        let (unpublished, published) = echoes.split(batch)
        #expect(published.map(\.0.envelope.id) == ["a:1", "a:3", "a:4"])
        #expect(unpublished.map(\.envelope.id) == ["a:2", "a:5"])
    }

    @Test("with nothing published back, the batch comes back whole")
    func nothingEchoed() {
        var echoes = RedisEchoes()
        let (unpublished, published) = echoes.split(["a:1", "a:2"].map(outgoing))
        #expect(unpublished.map(\.envelope.id) == ["a:1", "a:2"])
        #expect(published.isEmpty)
    }
}
