import Broker
import Foundation
@testable import Node
import Synchronization
import Testing

@Suite("Presence batches: one event per user, cut to a size", .timeLimit(.minutes(1)))
struct PresenceBatcherTests {
    static let topic = try! Topic("rooms.lobby")

    static func event(_ kind: String, _ user: String, pad: Int = 0) -> Envelope {
        let data = try! RawJSON(validating: Array(#"{"pad":"\#(String(repeating: "x", count: pad))"}"#.utf8))
        var envelope = Envelope(
            id: UUID().uuidString, origin: "n", topic: topic,
            data: PresenceEventData.make(event: kind, member: PresenceMember.document(userId: user, data: data)))
        envelope.kind = .presence
        return envelope
    }

    /// The batches `batcher` sends, as (event, userId) lists, one per message.
    static func batches(of stream: AsyncStream<Envelope>, count: Int) async throws -> [[String]] {
        var result: [[String]] = []
        for await envelope in stream {
            let object = try #require(try JSONSerialization.jsonObject(with: Data(envelope.data.bytes)) as? [String: Any])
            #expect(object["event"] as? String == "batch")
            let events = object["events"] as? [[String: Any]] ?? []
            result.append(events.map { "\($0["event"] as? String ?? "?") \(($0["member"] as? [String: Any])?["userId"] as? String ?? "?")" })
            if result.count == count { break }
        }
        return result
    }

    @Test("a batch brings a watcher to each user's state at the window's end, also from a list taken during it: join+update is a join, join+leave a join and a leave, leave+join a join, repeated updates one update")
    func coalesced() async throws {
        let (stream, continuation) = AsyncStream.makeStream(of: Envelope.self)
        let batcher = PresenceBatcher(rate: 1, maxBatchBytes: 1 << 20) { continuation.yield($0) }
        #expect(batcher.admit(Self.event("join", "first")), "within the rate: at once")
        let waiting: [(String, String)] = [
            ("join", "bob"), ("update", "bob"), ("join", "carol"), ("leave", "carol"), ("leave", "dave"),
            ("join", "dave"), ("update", "erin"), ("leave", "frank"),
        ] + Array(repeating: ("update", "mallory"), count: 500)
        for (kind, user) in waiting { #expect(!batcher.admit(Self.event(kind, user))) }
        let batches = try await Self.batches(of: stream, count: 1)
        #expect(batches == [["join bob", "join carol", "leave carol", "join dave", "update erin", "leave frank", "update mallory"]])
    }

    @Test("an event that comes while a batch is being sent waits for the next batch instead of overtaking it (a leave before the batch's join left a ghost member)")
    func noOvertaking() async throws {
        let entered = DispatchSemaphore(value: 0)
        let proceed = DispatchSemaphore(value: 0)
        let flushes = Mutex(0)
        let (stream, continuation) = AsyncStream.makeStream(of: Envelope.self)
        let batcher = PresenceBatcher(rate: 1, maxBatchBytes: 1 << 20) { envelope in
            // The first batch is slow to go out (a large one, being encoded and handed over).
            if flushes.withLock({ $0 += 1; return $0 }) == 1 {
                entered.signal()
                proceed.wait()
            }
            continuation.yield(envelope)
        }
        #expect(batcher.admit(Self.event("join", "first")))
        #expect(!batcher.admit(Self.event("join", "carol")), "past the rate: batched")
        // Bounded, so a first batch that never goes out fails the test instead of hanging it.
        let sending = await withCheckedContinuation { (done: CheckedContinuation<Bool, Never>) in
            DispatchQueue.global().async {
                done.resume(returning: entered.wait(timeout: .now() + 30) == .success)
            }
        }
        guard sending else {
            proceed.signal()  // should the batch start late
            Issue.record("the first batch did not start within 30 s")
            return
        }
        let admitted = batcher.admit(Self.event("leave", "carol"))
        proceed.signal()
        #expect(!admitted, "waits behind the batch being sent")
        #expect(try await Self.batches(of: stream, count: 2) == [["join carol"], ["leave carol"]])
    }

    @Test("a batch larger than maxBatchBytes goes out as several messages, every event once and in order")
    func cut() async throws {
        let (stream, continuation) = AsyncStream.makeStream(of: Envelope.self)
        let batcher = PresenceBatcher(rate: 1, maxBatchBytes: 10_000) { continuation.yield($0) }
        #expect(batcher.admit(Self.event("join", "first")))
        let users = (0..<30).map { "user-\($0)" }
        for user in users { #expect(!batcher.admit(Self.event("join", user, pad: 1_000))) }
        let batches = try await Self.batches(of: stream, count: 4)
        #expect(batches.flatMap { $0 } == users.map { "join \($0)" })
        #expect(batches.map(\.count) == [9, 9, 9, 3], "about 1,100 bytes each: nine fit in 10,000")
    }
}
