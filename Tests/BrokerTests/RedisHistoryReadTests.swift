import Dispatch
import Foundation
import Testing
import TestSupport

@testable import Broker

/// History reads of one topic that wait together share one read (``RedisHistoryReads``,
/// ``HistoryReadBatch``); each must still get exactly the page it would have read alone.
@Suite("Redis history: reads of one topic shared")
struct RedisHistoryReadTests {
    /// A topic's history as offsets `oldest...position`, each message ``messageBytes`` long,
    /// read as the script reads it.
    struct Stream {
        static let messageBytes = 100
        var oldest: Int
        var position: Int

        func read(_ query: HistoryQuery) -> HistoryPage {
            let after = max(query.after ?? 0, oldest - 1)
            var offsets = (after < position ? Array((after + 1)...position) : []).prefix(query.limit)
            var truncated = false
            if let maxBytes = query.maxBytes, offsets.count > max(1, maxBytes / Self.messageBytes) {
                offsets = offsets.prefix(max(1, maxBytes / Self.messageBytes))  // the first always fits
                truncated = true
            }
            let messages = offsets.map { offset in
                var envelope = Envelope(id: "m\(offset)", origin: "t", topic: try! Topic("t"), data: RawJSON(.number(JSONNumber(offset))))
                envelope.offset = offset
                envelope.epoch = "e"
                return envelope
            }
            return HistoryPage(
                position: HistoryPosition(offset: position, epoch: "e"), messages: messages, oldestHeld: oldest, truncated: truncated)
        }
    }

    /// A small deterministic generator (the test must fail the same way every run).
    struct Generator: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return state
        }
    }

    @Test("each query's part of the shared page is the page it would have read alone, or it is read alone")
    func partsMatchReadsAlone() {
        var random = Generator(state: 7)
        var readAlone = 0
        for _ in 0..<2_000 {
            let oldest = Int.random(in: 1...50, using: &random)
            let stream = Stream(oldest: oldest, position: oldest - 1 + Int.random(in: 0...60, using: &random))
            let queries = (0..<Int.random(in: 1...6, using: &random)).map { _ in
                HistoryQuery(
                    after: Bool.random(using: &random) ? nil : Int.random(in: 0...120, using: &random),
                    limit: [0, 1, 5, 20, 100].randomElement(using: &random)!,
                    maxBytes: [nil, nil, 50, 250, 1_000].randomElement(using: &random)!)
            }
            let batch = HistoryReadBatch(queries)
            let shared = stream.read(batch.read)
            for (index, query) in queries.enumerated() {
                let alone = stream.read(query)
                guard let part = batch.part(of: shared, for: index) else {
                    readAlone += 1
                    #expect(
                        shared.messages.count == batch.read.limit || shared.truncated,
                        "read alone only when the shared page was cut at its limit or its byte bound")
                    continue
                }
                #expect(part.position == alone.position && part.oldestHeld == alone.oldestHeld)
                #expect(part.truncated == alone.truncated, "a part given is cut only where the query's own read would be")
                #expect(part.messages.map(\.offset) == alone.messages.map(\.offset), "\(query) of \(stream) from \(batch.read)")
            }
        }
        #expect(readAlone > 0, "the generated cases include pages cut short")
    }

    @Test("reads of one topic that wait together on Redis become one read, and each gets its own page")
    func sharedOnRedis() async throws {
        try await RedisTest.withServers { servers in
            let node = HistoryNode(urls: [servers[0].url])
            // Until the link is connected, publishes and reads are served by the fallback rings.
            #expect(await RedisTest.eventually { node.adapter.isSettled })
            let outcomes = await node.publishAndWait("t.reads", count: 300)
            #expect(outcomes.count == 300 && outcomes.allSatisfy { $0.refusal == nil })
            let topic = try Topic("t.reads")

            // Recoveries (`since`), positions alone, short pages, and two reads never shared.
            let recoveries: [HistoryQuery] =
                (0..<40).map { HistoryQuery(after: $0 * 7, limit: 1_000) } + (0..<10).map { _ in HistoryQuery(limit: 0) }
                + [HistoryQuery(after: 0, limit: 10), HistoryQuery(after: 290, limit: 5)]
                + [HistoryQuery(limit: 5, newest: true), HistoryQuery(before: 50, limit: 5, newest: true)]
            #expect(try await Self.readTogether(recoveries, of: topic, on: node) == 1 + 2)
            // The shared page (after 0, 20 messages) stops short of what the second would read: alone.
            #expect(try await Self.readTogether([HistoryQuery(after: 0, limit: 10), HistoryQuery(after: 100, limit: 20)], of: topic, on: node) == 2)
            await node.adapter.shutdown()
        }
    }

    @Test("a read while Redis is unreachable comes from the fallback rings and says so (nodeOnly); once Redis is back it does not")
    func fallbackPagesSayNodeOnly() async throws {
        try await RedisTest.withServers(started: false) { servers in
            let node = HistoryNode(urls: [servers[0].url])
            #expect(await RedisTest.eventually { node.adapter.status().state == .fallback })
            let topic = try Topic("t.fallback")
            #expect(await node.publishAndWait("t.fallback", count: 2).count == 2)
            let local = try await Self.read(HistoryQuery(limit: 10, newest: true), of: topic, on: node)
            #expect(local.nodeOnly && local.messages.count == 2, "the node's own messages, marked as such")
            try await servers[0].start()
            #expect(await RedisTest.eventually { node.adapter.status().state == .connected && node.adapter.isSettled })
            let shared = try await Self.read(HistoryQuery(limit: 10, newest: true), of: topic, on: node)
            #expect(!shared.nodeOnly)
            await node.adapter.shutdown()
        }
    }

    @Test("a second outage starts new epochs: a position from the first one's rings is not continued, as if the messages Redis carried in between did not exist")
    func outagesDoNotShareEpochs() async throws {
        try await RedisTest.withServers(started: false) { servers in
            let node = HistoryNode(urls: [servers[0].url])
            #expect(await RedisTest.eventually { node.adapter.status().state == .fallback })
            let topic = try Topic("t.outages")
            let first = await node.publishAndWait("t.outages", count: 2)
            let firstEpoch = try #require(first.last?.position?.epoch)
            #expect(first.allSatisfy { $0.nodeOnly })
            try await servers[0].start()
            #expect(await RedisTest.eventually { node.adapter.status().state == .connected && node.adapter.isSettled })
            await servers[0].kill()
            #expect(await RedisTest.eventually { node.adapter.status().state == .fallback })
            let second = await node.publishAndWait("t.outages", count: 1, from: 3)
            let position = try #require(second.first?.position)
            #expect(second.first?.nodeOnly == true)
            #expect(position.epoch != firstEpoch, "a client at offset 2 of the first outage must be told recovered: false")
            let page = try await Self.read(HistoryQuery(limit: 10, newest: true), of: topic, on: node)
            #expect(page.messages.count == 1, "the first outage's messages are not offered as what came before")
            await node.adapter.shutdown()
        }
    }

    /// Asks for `queries` while the server's queue is held busy, so that they all wait
    /// together; checks each page against the same query read on its own afterwards, and
    /// returns how many script runs the queries took together.
    static func readTogether(_ queries: [HistoryQuery], of topic: Topic, on node: HistoryNode) async throws -> Int {
        let reads = node.adapter.historyReads[0]
        let gate = DispatchSemaphore(value: 0)
        reads.commands.perform { _ in gate.wait() }
        let before = reads.readsMade
        let shared = queries.filter(HistoryReadBatch.canShare).count
        let pages = try await withThrowingTaskGroup(of: (Int, HistoryPage).self) { group in
            for (index, query) in queries.enumerated() {
                group.addTask { (index, try await read(query, of: topic, on: node)) }
            }
            let queued = await RedisTest.eventually { reads.waitingCount(for: topic) == shared }
            gate.signal()
            #expect(queued, "\(reads.waitingCount(for: topic)) of \(shared) reads waiting")
            var pages: [Int: HistoryPage] = [:]
            for try await (index, page) in group { pages[index] = page }
            return pages
        }
        let made = reads.readsMade - before
        for (index, query) in queries.enumerated() {
            let alone = try await read(query, of: topic, on: node)
            let page = try #require(pages[index])
            #expect(page.position == alone.position, "\(query)")
            #expect(page.messages.map(\.id) == alone.messages.map(\.id), "\(query)")
            #expect(page.messages.map(\.offset) == alone.messages.map(\.offset), "\(query)")
        }
        return made
    }

    static func read(_ query: HistoryQuery, of topic: Topic, on node: HistoryNode) async throws -> HistoryPage {
        try await withCheckedContinuation { continuation in
            node.adapter.readHistory(topic, query) { continuation.resume(returning: $0) }
        }.get()
    }

    @Test("a read with a byte bound stops near it, from the end asked for; unbounded reads cross the script's steps whole")
    func byteBound() async throws {
        try await RedisTest.withServers { servers in
            let node = await HistoryNode.settled(urls: [servers[0].url])
            _ = await node.publishAndWait("t.bytes", count: 90, from: 10)  // ids of one length
            let topic = try Topic("t.bytes")
            func offsets(_ query: HistoryQuery) async throws -> (offsets: [Int], truncated: Bool) {
                let page = try await Self.read(query, of: topic, on: node)
                return (page.messages.compactMap(\.offset), page.truncated)
            }

            // 90 messages are six steps of the script: none lost or repeated at their seams.
            #expect(try await offsets(HistoryQuery(after: 0, limit: 90)) == (Array(1...90), false))
            #expect(try await offsets(HistoryQuery(limit: 90, newest: true)) == (Array(1...90), false))
            #expect(try await offsets(HistoryQuery(after: 40, limit: 30, maxBytes: 1 << 20)) == (Array(41...70), false))
            // The first message always comes, however small the bound.
            #expect(try await offsets(HistoryQuery(after: 0, limit: 90, maxBytes: 1)) == ([1], true))
            #expect(try await offsets(HistoryQuery(limit: 90, newest: true, maxBytes: 1)) == ([90], true))

            let size = EnvelopeCodec.encode(try await Self.read(HistoryQuery(after: 50, limit: 1), of: topic, on: node).messages[0]).count
            let forward = try await offsets(HistoryQuery(after: 0, limit: 90, maxBytes: 20 * size + size / 2))
            #expect(forward.truncated && (19...21).contains(forward.offsets.count), "\(forward) at \(size) bytes a message")
            #expect(forward.offsets == Array(1...forward.offsets.count), "the oldest, in order")
            let newest = try await offsets(HistoryQuery(limit: 90, newest: true, maxBytes: 20 * size + size / 2))
            #expect(newest.truncated && (19...21).contains(newest.offsets.count), "\(newest)")
            #expect(newest.offsets == Array((91 - newest.offsets.count)...90), "the newest, oldest first")
            // Offsets of 15 digits and more, up to the largest a client may name: ahead of the
            // topic, an empty page (Lua wrote them as 1e+14, which is no stream ID).
            for far in [99_999_999_999_999, HistoryPosition.maxOffset - 1] {
                #expect(try await offsets(HistoryQuery(after: far, limit: 10)) == ([], false), "after \(far)")
                #expect(try await offsets(HistoryQuery(before: far, limit: 3, newest: true)) == ([88, 89, 90], false), "before \(far)")
            }
            await node.adapter.shutdown()
        }
    }

    @Test("a shutdown answers the reads still waiting at once, with a failure")
    func stopAnswersWaitingReads() async throws {
        try await RedisTest.withServers { servers in
            let node = HistoryNode(urls: [servers[0].url])
            // Until the link is connected, publishes and reads are served by the fallback rings.
            #expect(await RedisTest.eventually { node.adapter.isSettled })
            _ = await node.publishAndWait("t.stop", count: 10)
            let topic = try Topic("t.stop")
            let reads = node.adapter.historyReads[0]
            let gate = DispatchSemaphore(value: 0)
            reads.commands.perform { _ in gate.wait() }
            // Bounded, and the gate released however the wait ends: a stop that answered
            // nothing fails at the deadline instead of deadlocking, and Redis then answers the
            // reads so that their tasks end.
            let results: [Result<HistoryPage, HistoryError>]
            do {
                results = try await withDeadline(.seconds(30), "the stop's answers to the waiting reads") {
                    try await withThrowingTaskGroup(of: Result<HistoryPage, HistoryError>.self) { group in
                        for _ in 0..<20 {
                            group.addTask {
                                await withCheckedContinuation { continuation in
                                    node.adapter.readHistory(topic, HistoryQuery(after: 0, limit: 100)) { continuation.resume(returning: $0) }
                                }
                            }
                        }
                        #expect(await RedisTest.eventually { reads.waitingCount(for: topic) == 20 })
                        // The queue is still held: the reads are answered by the stop, not by Redis.
                        reads.stop()
                        var results: [Result<HistoryPage, HistoryError>] = []
                        for try await result in group { results.append(result) }
                        return results
                    }
                }
            } catch {
                gate.signal()
                throw error
            }
            gate.signal()
            #expect(results.count == 20)
            #expect(results.allSatisfy { if case .failure(let error) = $0 { "\(error)".contains("stopping") } else { false } })
            await node.adapter.shutdown()
        }
    }
}
