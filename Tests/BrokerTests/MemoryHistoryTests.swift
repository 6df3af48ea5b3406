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
        for after in [5, 6, Int.max - 1, Int.max] {
            #expect(history.read(topic, HistoryQuery(after: after, limit: 10)).messages.isEmpty, "after \(after)")
        }
        let other = history.read(try Topic("chat.b"), HistoryQuery(limit: 0))
        #expect(other.position.offset == 0 && other.position.epoch != epoch, "every ring has its own epoch")
    }

    @Test("reading topics never published holds no ring: the first publish carries the epoch the read told, and at most maxFreshTopics epochs are remembered")
    func readsOfEmptyTopics() throws {
        let history = MemoryHistory(policy: HistoryPolicy(size: 10))
        let quiet = try Topic("chat.quiet")
        let told = history.read(quiet, HistoryQuery(limit: 10)).position
        #expect(told.offset == 0)
        #expect(history.read(quiet, HistoryQuery(limit: 10)).position == told, "the same epoch on every read")
        for n in 0..<(MemoryHistory.maxFreshTopics + 5_000) {
            _ = history.read(try Topic("made.up\(n)"), HistoryQuery(limit: 10))
        }
        let stats = history.stats(backend: "memory")
        #expect(stats.topics == 0 && stats.bytes == 0)
        #expect(history.freshTopics == MemoryHistory.maxFreshTopics)
        // A recent read is remembered: its topic's first message carries the epoch told.
        let recent = try Topic("made.up\(MemoryHistory.maxFreshTopics + 4_999)")
        let recentEpoch = history.read(recent, HistoryQuery(limit: 10)).position.epoch
        var first = Self.message(1, topic: recent.name)
        #expect(history.record(&first, topic: recent).position == HistoryPosition(offset: 1, epoch: recentEpoch))
        #expect(history.freshTopics == MemoryHistory.maxFreshTopics - 1, "taken by its ring")
        // The oldest read is forgotten: its first message starts another epoch (nothing was lost).
        var late = Self.message(1, topic: quiet.name)
        #expect(history.record(&late, topic: quiet).position?.epoch != told.epoch)
    }

    @Test("a read with a byte bound keeps the messages that fit from the end asked for, at least one, and says truncated")
    func byteBound() throws {
        let history = MemoryHistory(policy: HistoryPolicy(size: 100))
        let topic = try Topic("chat.a")
        for n in 10..<60 {  // 50 messages of one cost
            var envelope = Self.message(n)
            _ = history.record(&envelope, topic: topic)
        }
        let cost = Self.message(10).approximateBytes
        func read(_ query: HistoryQuery) -> (offsets: [Int], truncated: Bool) {
            let page = history.read(topic, query)
            return (page.messages.compactMap(\.offset), page.truncated)
        }
        #expect(read(HistoryQuery(after: 0, limit: 100, maxBytes: 10 * cost)) == (Array(1...10), true))
        #expect(read(HistoryQuery(limit: 100, newest: true, maxBytes: 10 * cost)) == (Array(41...50), true))
        #expect(read(HistoryQuery(after: 20, limit: 100, maxBytes: 1)) == ([21], true))
        #expect(read(HistoryQuery(after: 40, limit: 100, maxBytes: 10 * cost)) == (Array(41...50), false), "all fit")
        #expect(read(HistoryQuery(after: 0, limit: 5, maxBytes: 10 * cost)) == (Array(1...5), false), "the limit came first")
        #expect(read(HistoryQuery(after: 0, limit: 100)) == (Array(1...50), false))
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

    @Test("messageIds are compared by bytes: composed and decomposed text, or a Kelvin sign for a K, are other ids (as on Redis)")
    func idsByBytes() throws {
        let history = MemoryHistory(policy: HistoryPolicy(size: 10))
        let topic = try Topic("chat.a")
        let keys = ["caf\u{E9}", "cafe\u{301}", "K-1", "\u{212A}-1", "caf\u{E9}"]
        let duplicates = keys.enumerated().map { n, key in
            var envelope = Self.message(n, key: key)
            return history.record(&envelope, topic: topic).duplicate
        }
        #expect(duplicates == [false, false, false, false, true])
    }

    static func large(_ n: Int, topic: String, bytes: Int) -> Envelope {
        Envelope(id: "n-\(n)", origin: "n", topic: try! Topic(topic), data: RawJSON(.string(String(repeating: "x", count: bytes))))
    }

    @Test("past HISTORY_MAX_BYTES whole topics go, least recently published first, and come back with a new epoch")
    func bytesEvictTopics() throws {
        let history = MemoryHistory(policy: HistoryPolicy(size: 10, maxBytes: 100_000))
        var epochs: [String: String] = [:]
        // 10 KB messages to 30 topics, one each: about 300 KB offered, 100 KB allowed.
        for n in 1...30 {
            var envelope = Self.large(n, topic: "t.\(n)", bytes: 10_000)
            epochs["t.\(n)"] = history.record(&envelope, topic: try Topic("t.\(n)")).position?.epoch
            let stats = history.stats(backend: "memory")
            #expect(stats.bytes <= 100_000, "never over the limit after a publish")
        }
        let stats = history.stats(backend: "memory")
        #expect(stats.topics < 30 && stats.topics >= 8)
        // The newest topics are held; the oldest went and start again under a new epoch.
        let newest = history.read(try Topic("t.30"), HistoryQuery(after: 0, limit: 10))
        #expect(newest.messages.count == 1 && newest.position.epoch == epochs["t.30"])
        let oldest = history.read(try Topic("t.1"), HistoryQuery(after: 0, limit: 10))
        #expect(oldest.messages.isEmpty && oldest.position.offset == 0 && oldest.position.epoch != epochs["t.1"])
    }

    @Test("each topic's ring counts, and each message's topic and ids: one small message to each of many new topics is bounded by HISTORY_MAX_BYTES as large ones are")
    func ringsCount() throws {
        let history = MemoryHistory(policy: HistoryPolicy(size: 10, maxBytes: 100_000))
        for n in 1...1_000 {
            var envelope = Self.message(n, topic: "t.\(n)", key: "k-\(n)")
            _ = history.record(&envelope, topic: try Topic("t.\(n)"))
        }
        let stats = history.stats(backend: "memory")
        let last = Self.message(1_000, topic: "t.1000", key: "k-1000")
        let perTopic = MemoryHistory.overheadPerRing + MemoryHistory.cost(of: last)
        #expect(MemoryHistory.cost(of: last) >= 1 + "n-1000".utf8.count + "t.1000".utf8.count + 2 * "k-1000".utf8.count)
        #expect(stats.bytes <= 100_000)
        #expect(stats.topics * perTopic <= 100_000 && stats.topics >= 100_000 / perTopic - 1, "\(stats.topics) topics of \(perTopic) bytes")
        #expect(stats.bytes > stats.topics * (perTopic - 8), "each held topic counted whole (the others' numbers are a digit shorter)")
    }

    @Test("a topic published to keeps its place: the least recently published goes first, not the oldest created")
    func bytesEvictLeastRecent() throws {
        let history = MemoryHistory(policy: HistoryPolicy(size: 100, maxBytes: 70_000))
        var n = 0
        func publish(_ topic: String) throws {
            n += 1
            var envelope = Self.large(n, topic: topic, bytes: 10_000)
            _ = history.record(&envelope, topic: try Topic(topic))
        }
        try publish("busy")
        for other in 1...4 { try publish("quiet.\(other)") }
        try publish("busy")  // now the most recent: quiet.1 is the least recently published
        try publish("new")  // over 70 KB: quiet.1 goes, busy stays
        #expect(history.read(try Topic("busy"), HistoryQuery(after: 0, limit: 10)).messages.count == 2)
        #expect(history.read(try Topic("quiet.1"), HistoryQuery(after: 0, limit: 10)).messages.isEmpty)
        #expect(history.read(try Topic("quiet.2"), HistoryQuery(after: 0, limit: 10)).messages.count == 1)
    }

    @Test("one topic over HISTORY_MAX_BYTES alone keeps its newest messages within the limit")
    func bytesTrimOneTopic() throws {
        let history = MemoryHistory(policy: HistoryPolicy(size: 100, maxBytes: 50_000))
        let topic = try Topic("t.big")
        var epoch: String?
        for n in 1...20 {
            var envelope = Self.large(n, topic: "t.big", bytes: 10_000)
            let position = history.record(&envelope, topic: topic).position
            if epoch == nil { epoch = position?.epoch }
            #expect(position?.epoch == epoch && position?.offset == n, "the stream goes on: same epoch, next offset")
        }
        let page = history.read(topic, HistoryQuery(after: 0, limit: 100))
        #expect(page.messages.map(\.offset) == [17, 18, 19, 20])
        #expect(history.stats(backend: "memory").bytes <= 50_000)
        var huge = Self.large(21, topic: "t.big", bytes: 80_000)
        _ = history.record(&huge, topic: topic)
        #expect(history.read(topic, HistoryQuery(after: 0, limit: 100)).messages.map(\.offset) == [21], "the newest stays, even alone over the limit")
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
