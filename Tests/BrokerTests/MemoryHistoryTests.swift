import Foundation
import Testing

@testable import Broker

@Suite("Memory history rings")
struct MemoryHistoryTests {
    static func message(_ n: Int, topic: String = "chat.a", key: String? = nil) -> Envelope {
        var envelope = Envelope(id: "n-\(n)", origin: "n", topic: try! Topic(topic), data: RawJSON(.number(JSONNumber(n))))
        envelope.messageId = key
        return envelope
    }

    @Test("offsets count 1, 2, 3 per topic under one epoch; the ring keeps the last HISTORY_SIZE")
    func ringKeepsTheLast() throws {
        let history = MemoryHistory(policy: HistoryPolicy(size: 3))
        let topic = try Topic("chat.a")
        var outcomes: [PublishOutcome] = []
        for n in 1...5 {
            var envelope = Self.message(n)
            outcomes.append(history.record(&envelope, topic: topic))
            #expect(envelope.offset == n)
        }
        let epoch = try #require(outcomes.first?.position?.epoch)
        #expect(outcomes.map { $0.position?.offset } == [1, 2, 3, 4, 5])
        #expect(outcomes.allSatisfy { $0.position?.epoch == epoch && !$0.duplicate })
        let page = history.read(topic, HistoryQuery(after: 0, limit: 10))
        #expect(page.position == HistoryPosition(offset: 5, epoch: epoch))
        #expect(page.oldestHeld == 3)
        #expect(page.messages.map(\.offset) == [3, 4, 5])
        #expect(history.read(topic, HistoryQuery(limit: 2, newest: true)).messages.map(\.offset) == [4, 5])
        #expect(history.read(topic, HistoryQuery(before: 5, limit: 1, newest: true)).messages.map(\.offset) == [4])
        #expect(history.stats(backend: "memory").messages == 3)
        let other = history.read(try Topic("chat.b"), HistoryQuery(limit: 0))
        #expect(other.position.offset == 0 && other.position.epoch != epoch, "every ring has its own epoch")
    }

    @Test("a repeated messageId is a duplicate while its message is held")
    func duplicates() throws {
        let history = MemoryHistory(policy: HistoryPolicy(size: 2))
        let topic = try Topic("chat.a")
        var first = Self.message(1, key: "k")
        _ = history.record(&first, topic: topic)
        var again = Self.message(2, key: "k")
        let outcome = history.record(&again, topic: topic)
        #expect(outcome.duplicate && outcome.position?.offset == 1)
        for n in 3...4 {
            var envelope = Self.message(n)
            _ = history.record(&envelope, topic: topic)
        }
        var late = Self.message(5, key: "k")
        #expect(!history.record(&late, topic: topic).duplicate, "trimmed out of the ring: accepted again")
    }

    @Test("a new process (another MemoryHistory) never continues an epoch")
    func newEpochPerProcess() throws {
        let topic = try Topic("chat.a")
        let one = MemoryHistory(policy: HistoryPolicy()).read(topic, HistoryQuery(limit: 0)).position.epoch
        let two = MemoryHistory(policy: HistoryPolicy()).read(topic, HistoryQuery(limit: 0)).position.epoch
        #expect(one != two)
    }

    @Test("offset and epoch cross Redis in the envelope, first, as the history script splices them")
    func envelopeFields() throws {
        var envelope = Self.message(7, key: "m-1")
        envelope.timestamp = Date(timeIntervalSince1970: 1_796_000_000.125)  // whole milliseconds, as encoded
        envelope.offset = 42
        envelope.epoch = "e1"
        let bytes = EnvelopeCodec.encode(envelope)
        #expect(String(decoding: bytes, as: UTF8.self).hasPrefix("{\"offset\":42,\"epoch\":\"e1\",\"v\":1,"))
        #expect(try EnvelopeCodec.decode(bytes) == envelope)
        var plain = Self.message(7)
        plain.timestamp = envelope.timestamp
        let spliced = "{\"offset\":3,\"epoch\":\"x\"," + String(decoding: EnvelopeCodec.encode(plain), as: UTF8.self).dropFirst()
        let decoded = try EnvelopeCodec.decode(Array(spliced.utf8))
        #expect(decoded.offset == 3 && decoded.epoch == "x")
    }
}
