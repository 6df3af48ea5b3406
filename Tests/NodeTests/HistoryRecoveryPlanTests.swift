import Broker
import NIOCore
import Testing

@testable import Node

@Suite("Joining a history page and the live messages held during a recovery")
struct HistoryRecoveryPlanTests {
    static func envelope(_ offset: Int, epoch: String = "e") -> Envelope {
        var envelope = Envelope(id: "\(offset)", origin: "n", topic: try! Topic("t"), data: .null)
        envelope.offset = offset
        envelope.epoch = epoch
        return envelope
    }

    static func held(_ offsets: [Int], epoch: String = "e") -> RecoveryBuffer {
        var buffer = RecoveryBuffer()
        for offset in offsets {
            let frame = OutboundFrame.text(Array("\(offset)".utf8), allocator: ByteBufferAllocator())
            buffer.hold(Delivery(topic: try! Topic("t"), frame: frame, offset: offset, epoch: epoch, arrivedAt: .now()), limit: 100)
        }
        return buffer
    }

    static func page(_ offsets: [Int], current: Int, epoch: String = "e") -> Result<HistoryPage, HistoryError> {
        .success(HistoryPage(
            position: HistoryPosition(offset: current, epoch: epoch), messages: offsets.map { envelope($0, epoch: epoch) },
            oldestHeld: offsets.first))
    }

    @Test("a session whose token expired during the read is answered at the position before the first message it would have had, and nothing is written: its since after the renewal asks for all of them")
    func deferredWhileExpired() {
        let plan = HistoryRecovery.plan(
            request: .since(offset: 3, epoch: "e"), page: Self.page([4, 5, 6], current: 6), held: Self.held([5, 6, 7, 8]))
        let deferred = HistoryRecovery.deferred(plan)
        #expect(deferred.history.isEmpty && deferred.live.isEmpty)
        #expect(deferred.position == HistoryPosition(offset: 3, epoch: "e"))
        #expect(deferred.recovered == true)
        // Nothing in the page (a plain subscribe), live messages held: before the first of them.
        let live = HistoryRecovery.plan(request: nil, page: Self.page([], current: 6), held: Self.held([7, 8]))
        #expect(HistoryRecovery.deferred(live).position == HistoryPosition(offset: 6, epoch: "e"))
        // Nothing at all: the page's position, as always.
        let idle = HistoryRecovery.plan(request: nil, page: Self.page([], current: 6), held: Self.held([]))
        #expect(HistoryRecovery.deferred(idle).position == HistoryPosition(offset: 6, epoch: "e"))
    }

    @Test("a plain subscribe to a topic the connection subscribes already (a presence change) keeps every held message: those at or before the position go ahead of the answer, the rest after it; a new subscription's earlier ones were published before it")
    func liveAlready() {
        let plan = HistoryRecovery.plan(request: nil, page: Self.page([], current: 6), held: Self.held([5, 6, 7, 8]), wasLive: true)
        #expect(plan.earlier.map(\.offset) == [5, 6] && plan.live.map(\.offset) == [7, 8])
        #expect(plan.position == HistoryPosition(offset: 6, epoch: "e"))
        #expect(HistoryRecovery.deferred(plan).position == HistoryPosition(offset: 4, epoch: "e"))
        let fresh = HistoryRecovery.plan(request: nil, page: Self.page([], current: 6), held: Self.held([5, 6, 7, 8]))
        #expect(fresh.earlier.isEmpty && fresh.live.map(\.offset) == [7, 8])
        #expect(plan.watermark == nil && fresh.watermark == HistoryPosition(offset: 6, epoch: "e"), "only a page's messages are dropped on their way")
        // A since's page hands the earlier ones over itself.
        let since = HistoryRecovery.plan(
            request: .since(offset: 4, epoch: "e"), page: Self.page([5, 6], current: 6), held: Self.held([5, 6, 7]), wasLive: true)
        #expect(since.earlier.isEmpty && since.history.map(\.offset) == [5, 6] && since.live.map(\.offset) == [7])
    }

    @Test("a replay or since on a topic the connection receives already (a pattern delivers it) keeps the held messages the page written lacks: a short replay, a page cut to fit, a since answered false; never those at or before the since")
    func liveAlreadyWithHistory() {
        let replay = HistoryRecovery.plan(
            request: .replay(2), page: Self.page([5, 6], current: 6), held: Self.held([3, 4, 5, 6, 7]), wasLive: true)
        #expect(replay.earlier.map(\.offset) == [3, 4] && replay.history.map(\.offset) == [5, 6] && replay.live.map(\.offset) == [7])
        let nothing = HistoryRecovery.plan(request: .replay(0), page: Self.page([], current: 6), held: Self.held([5, 6, 7]), wasLive: true)
        #expect(nothing.earlier.map(\.offset) == [5, 6] && nothing.live.map(\.offset) == [7])
        var cut = HistoryRecovery.plan(
            request: .replay(3), page: Self.page([4, 5, 6], current: 6), held: Self.held([4, 5, 6, 7]), wasLive: true)
        #expect(cut.earlier.isEmpty)
        HistoryRecovery.fit(&cut, historyBytes: [100, 100, 100], liveBytes: 10, room: 250, request: .replay(3))
        #expect(cut.history.map(\.offset) == [5, 6] && cut.earlier.map(\.offset) == [4], "the message cut from the page is owed")
        let trimmed = HistoryRecovery.plan(
            request: .since(offset: 1, epoch: "e"), page: Self.page([4, 5, 6], current: 6), held: Self.held([5, 6, 7]), wasLive: true)
        #expect(trimmed.recovered == false && trimmed.earlier.map(\.offset) == [5, 6] && trimmed.live.map(\.offset) == [7])
        let claimed = HistoryRecovery.plan(
            request: .since(offset: 5, epoch: "e"), page: Self.page([6], current: 6), held: Self.held([5, 6, 7]), wasLive: true)
        #expect(claimed.recovered == true && claimed.earlier.isEmpty, "5 is the client's already")
        let fresh = HistoryRecovery.plan(request: .replay(2), page: Self.page([5, 6], current: 6), held: Self.held([3, 4, 5, 6, 7]))
        #expect(fresh.earlier.isEmpty, "a new subscription starts with the page")
    }

    @Test("held messages already in the page are dropped; later ones follow it")
    func join() {
        let plan = HistoryRecovery.plan(
            request: .since(offset: 3, epoch: "e"), page: Self.page([4, 5, 6], current: 6), held: Self.held([5, 6, 7, 8]))
        #expect(plan.recovered == true)
        #expect(plan.position == HistoryPosition(offset: 6, epoch: "e"))
        #expect(plan.history.map(\.offset) == [4, 5, 6])
        #expect(plan.live.map(\.offset) == [7, 8])
    }

    @Test("another epoch, an offset ahead, or a trimmed one: recovered false, no history, live after the position")
    func refusals() {
        for request in [HistoryRequest.since(offset: 3, epoch: "old"), .since(offset: 9, epoch: "e"), .since(offset: 1, epoch: "e")] {
            let plan = HistoryRecovery.plan(request: request, page: Self.page([4, 5, 6], current: 6), held: Self.held([6, 7]))
            #expect(plan.recovered == false, "\(request)")
            #expect(plan.history.isEmpty)
            #expect(plan.live.map(\.offset) == [7])
        }
    }

    @Test("too many live messages held: recovered false from the last one seen")
    func overflow() {
        var buffer = RecoveryBuffer()
        for offset in 7...20 {
            let frame = OutboundFrame.text([], allocator: ByteBufferAllocator())
            buffer.hold(Delivery(topic: try! Topic("t"), frame: frame, offset: offset, epoch: "e", arrivedAt: .now()), limit: 5)
        }
        let plan = HistoryRecovery.plan(request: .since(offset: 3, epoch: "e"), page: Self.page([4, 5, 6], current: 6), held: buffer)
        #expect(plan.recovered == false)
        #expect(plan.position == HistoryPosition(offset: 20, epoch: "e"))
        #expect(plan.history.isEmpty && plan.live.isEmpty)
        #expect(!plan.gap, "a since hears recovered: false")
        // A plain subscribe of a topic the connection received already: nothing else says that
        // messages were dropped.
        let live = HistoryRecovery.plan(request: nil, page: Self.page([], current: 6), held: buffer, wasLive: true)
        #expect(live.gap && live.live.isEmpty && live.earlier.isEmpty)
        #expect(!HistoryRecovery.plan(request: nil, page: Self.page([], current: 6), held: buffer).gap, "a new subscription starts after them")
        let replayed = HistoryRecovery.plan(request: .replay(5), page: Self.page([4, 5, 6], current: 6), held: buffer, wasLive: true)
        #expect(replayed.gap, "a pattern that delivers the topic lost messages too")
    }

    @Test("live messages held past the byte bound: recovered false from the last one seen, as past the count")
    func overflowInBytes() {
        var buffer = RecoveryBuffer()
        for offset in 7...9 {
            let frame = OutboundFrame.text(Array(repeating: UInt8(ascii: "x"), count: 400), allocator: ByteBufferAllocator())
            buffer.hold(Delivery(topic: try! Topic("t"), frame: frame, offset: offset, epoch: "e", arrivedAt: .now()), limit: 100, byteLimit: 1000)
        }
        #expect(buffer.overflowed && buffer.deliveries.isEmpty && buffer.bytes == 0, "two frames fit, the third does not")
        let plan = HistoryRecovery.plan(request: .since(offset: 3, epoch: "e"), page: Self.page([4, 5, 6], current: 6), held: buffer)
        #expect(plan.recovered == false)
        #expect(plan.position == HistoryPosition(offset: 9, epoch: "e"))
    }

    @Test("a page the connection has no room for: since answers recovered false without it, replay keeps its newest that fit")
    func fitToRoom() {
        let held = Self.held([7])
        let since = HistoryRequest.since(offset: 3, epoch: "e")
        var plan = HistoryRecovery.plan(request: since, page: Self.page([4, 5, 6], current: 6), held: held)
        HistoryRecovery.fit(&plan, historyBytes: [100, 100, 100], liveBytes: 10, room: 310, request: since)
        #expect(plan.recovered == true && plan.history.count == 3, "it fits: unchanged")
        HistoryRecovery.fit(&plan, historyBytes: [100, 100, 100], liveBytes: 10, room: 309, request: since)
        #expect(plan.recovered == false && plan.history.isEmpty)
        #expect(plan.live.map(\.offset) == [7] && plan.position == HistoryPosition(offset: 6, epoch: "e"), "live and position kept")

        let replay = HistoryRequest.replay(3)
        var replayed = HistoryRecovery.plan(request: replay, page: Self.page([4, 5, 6], current: 6), held: held)
        HistoryRecovery.fit(&replayed, historyBytes: [100, 100, 100], liveBytes: 10, room: 250, request: replay)
        #expect(replayed.history.map(\.offset) == [5, 6] && replayed.recovered == nil, "the newest that fit")
    }

    @Test("a read that comes back after its recovery was cancelled (unsubscribe, subscribe again) does not finish the next one")
    func staleReadIgnored() throws {
        let transport = WebSocketTransport(maxMessageSize: 1 << 20, maxMessagesPerSecond: 100, counters: NodeCounters())
        let topic = try Topic("t")
        var table = RecoveryTable()
        let first = table.begin(transport, topic, requestId: nil) ?? -1
        let meanwhile = table.begin(transport, topic, requestId: nil)
        #expect(first > 0 && meanwhile == nil, "one at a time")
        _ = table.cancel(transport, topic)
        let second = table.begin(transport, topic, requestId: nil) ?? -1
        #expect(second > 0)
        let late = table.finish(transport, topic, recovery: first) { _ in HistoryPosition(offset: 5, epoch: "e") }
        #expect(late == nil, "the first read's answer finds its recovery gone")
        let own = table.finish(transport, topic, recovery: second) { _ in HistoryPosition(offset: 5, epoch: "e") }
        #expect(own != nil)
    }

    @Test("a recovery answered at offset 0 (nothing published yet) keeps no watermark; one past a message keeps it until a later message")
    func watermarkOnlyPastAMessage() throws {
        let transport = WebSocketTransport(maxMessageSize: 1 << 20, maxMessagesPerSecond: 100, counters: NodeCounters())
        let topic = try Topic("t")
        var table = RecoveryTable()
        let began = table.begin(transport, topic, requestId: nil)
        _ = table.finish(transport, topic, recovery: began ?? 0) { _ in HistoryPosition(offset: 0, epoch: "e") }
        #expect(began != nil && table.isEmpty, "an idle subscriber holds nothing")

        let beganAgain = table.begin(transport, topic, requestId: nil)
        _ = table.finish(transport, topic, recovery: beganAgain ?? 0) { _ in HistoryPosition(offset: 5, epoch: "e") }
        #expect(beganAgain != nil && !table.isEmpty)
        let frame = OutboundFrame.text(Array("m".utf8), allocator: ByteBufferAllocator())
        let dropped = table.hold(Delivery(topic: topic, frame: frame, offset: 5, epoch: "e", arrivedAt: .now()), for: transport, topic: topic)
        let later = table.hold(Delivery(topic: topic, frame: frame, offset: 6, epoch: "e", arrivedAt: .now()), for: transport, topic: topic)
        #expect(dropped && !later, "at or before the watermark dropped; past it written, and the watermark gone")
        #expect(table.isEmpty)
    }

    @Test("a recovery begun while an earlier one's watermark stands (a subscribe right after another's answer) drops what that watermark covers instead of holding it to be written twice, and keeps it when it answers without one")
    func recoveryOverAWatermark() throws {
        let transport = WebSocketTransport(maxMessageSize: 1 << 20, maxMessagesPerSecond: 100, counters: NodeCounters())
        let topic = try Topic("t")
        var table = RecoveryTable()
        let first = table.begin(transport, topic, requestId: nil) ?? 0
        _ = table.finish(transport, topic, recovery: first) { _ in HistoryPosition(offset: 5, epoch: "e") }
        let began = table.begin(transport, topic, requestId: nil)
        let second = try #require(began)
        let frame = OutboundFrame.text(Array("m".utf8), allocator: ByteBufferAllocator())
        for offset in [4, 5, 6] {
            let taken = table.hold(Delivery(topic: topic, frame: frame, offset: offset, epoch: "e", arrivedAt: .now()), for: transport, topic: topic)
            #expect(taken)
        }
        let held = table.finish(transport, topic, recovery: second) { _ in nil }
        #expect(held?.deliveries.map(\.offset) == [6], "4 and 5 were the earlier recovery's")
        let late = Delivery(topic: topic, frame: frame, offset: 5, epoch: "e", arrivedAt: .now())
        let dropped = table.hold(late, for: transport, topic: topic)
        #expect(dropped, "the earlier watermark still drops")
    }

    @Test("a watermark on a topic that gets no further message is gone after the second sweep; a running recovery and other topics are untouched")
    func watermarkAgesOut() throws {
        let counters = NodeCounters()
        let quiet = WebSocketTransport(maxMessageSize: 1 << 20, maxMessagesPerSecond: 100, counters: counters)
        let recovering = WebSocketTransport(maxMessageSize: 1 << 20, maxMessagesPerSecond: 100, counters: counters)
        let (topic, other) = (try Topic("t"), try Topic("u"))
        var table = RecoveryTable()
        let began = table.begin(quiet, topic, requestId: nil) ?? 0
        _ = table.finish(quiet, topic, recovery: began) { _ in HistoryPosition(offset: 5, epoch: "e") }
        let running = table.begin(recovering, topic, requestId: nil) ?? 0
        #expect(began > 0 && running > 0)
        #expect(table.involves(topic) && !table.involves(other), "deliveries of other topics skip the table")

        let frame = OutboundFrame.text(Array("m".utf8), allocator: ByteBufferAllocator())
        let old = Delivery(topic: topic, frame: frame, offset: 5, epoch: "e", arrivedAt: .now())
        table.age()
        let droppedAfterOne = table.hold(old, for: quiet, topic: topic)
        #expect(droppedAfterOne, "after one sweep the watermark still drops what it covers")
        table.age()
        let droppedAfterTwo = table.hold(old, for: quiet, topic: topic)
        #expect(!droppedAfterTwo, "after the second it is gone")
        let held = table.hold(old, for: recovering, topic: topic)
        #expect(held, "a running recovery still holds")
        let finished = table.finish(recovering, topic, recovery: running) { _ in nil }
        #expect(finished != nil)
        #expect(table.isEmpty && !table.involves(topic))
    }

    @Test("a recovery cancelled by an unsubscribe hands back the live messages it held (a pattern of the session may still want them) and its request id")
    func cancelHandsBackHeld() throws {
        let transport = WebSocketTransport(maxMessageSize: 1 << 20, maxMessagesPerSecond: 100, counters: NodeCounters())
        let topic = try Topic("rooms.lobby")
        var table = RecoveryTable()
        _ = table.begin(transport, topic, requestId: .string("s1"))
        let frame = OutboundFrame.text(Array("m".utf8), allocator: ByteBufferAllocator())
        let held = table.hold(Delivery(topic: topic, frame: frame, offset: 7, epoch: "e", arrivedAt: .now()), for: transport, topic: topic)
        #expect(held)
        let cancelled = table.cancel(transport, topic)
        #expect(cancelled?.requestId == .string("s1"))
        #expect(cancelled?.held.deliveries.map(\.offset) == [7])
        #expect(table.isEmpty)
    }

    @Test("forgetting a session uncounts every topic it held")
    func forgetUncounts() throws {
        let transport = WebSocketTransport(maxMessageSize: 1 << 20, maxMessagesPerSecond: 100, counters: NodeCounters())
        let topics = [try Topic("a"), try Topic("b")]
        var table = RecoveryTable()
        for topic in topics { _ = table.begin(transport, topic, requestId: nil) }
        #expect(topics.allSatisfy(table.involves))
        table.forget(transport)
        #expect(table.isEmpty && !topics.contains(where: table.involves))
    }
}
