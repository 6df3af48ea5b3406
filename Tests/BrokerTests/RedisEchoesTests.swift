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

        let (unpublished, published) = echoes.split(["a:1", "a:2", "a:3", "a:4", "a:5"].map(outgoing))
        #expect(unpublished.map(\.envelope.id) == ["a:1", "a:3", "a:5"])
        #expect(published.map(\.0.envelope.id) == ["a:2", "a:4"])
        #expect(published.map(\.1) == [PublishOutcome(position: HistoryPosition(offset: 7, epoch: "e")), .accepted])
        #expect(echoes.isEmpty, "a split forgets what it knew")
    }

    @Test("with nothing published back, the batch comes back whole")
    func nothingEchoed() {
        var echoes = RedisEchoes()
        let (unpublished, published) = echoes.split(["a:1", "a:2"].map(outgoing))
        #expect(unpublished.map(\.envelope.id) == ["a:1", "a:2"])
        #expect(published.isEmpty)
    }
}
