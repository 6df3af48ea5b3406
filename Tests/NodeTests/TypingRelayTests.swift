import Broker
import Foundation
@testable import Node
import Testing
import TestSupport

@Suite("Typing relay: coalescing on both ends")
struct TypingRelayTests {
    static let topic = try! Topic("rooms.lobby")

    static func signal(_ user: String, _ state: String, from origin: String = "n") -> Envelope {
        var envelope = Envelope(id: UUID().uuidString, origin: origin, topic: topic, data: PresenceFrames.typingData(userId: user, state: state))
        envelope.kind = .typing
        return envelope
    }

    @Test("a node sends at most one start per second per user and topic, and a stop only after a start")
    func outgoing() {
        let relay = TypingRelay(timeout: .seconds(600)) { _ in }
        let t0 = ContinuousClock.now
        #expect(!relay.outgoing(topic: Self.topic, userId: "alice", start: false, now: t0), "no stop without a start")
        #expect(relay.outgoing(topic: Self.topic, userId: "alice", start: true, now: t0))
        #expect(!relay.outgoing(topic: Self.topic, userId: "alice", start: true, now: t0 + .milliseconds(999)))
        #expect(relay.outgoing(topic: Self.topic, userId: "bob", start: true, now: t0 + .milliseconds(10)), "per user")
        #expect(relay.outgoing(topic: Self.topic, userId: "alice", start: true, now: t0 + .seconds(1)))
        #expect(relay.outgoing(topic: Self.topic, userId: "alice", start: false, now: t0 + .seconds(2)))
        #expect(!relay.outgoing(topic: Self.topic, userId: "alice", start: false, now: t0 + .seconds(2)), "one stop")
        #expect(relay.outgoing(topic: Self.topic, userId: "alice", start: true, now: t0 + .milliseconds(2100)), "the next line begun at once")
        // Start/stop pairs in a loop, 40 within a second: two pairs pass, then one a second.
        var sent: [String] = []
        for n in 0..<80 {
            let at = t0 + .seconds(10) + .milliseconds(25 * n)
            if relay.outgoing(topic: Self.topic, userId: "carol", start: true, now: at) { sent.append("start") }
            if relay.outgoing(topic: Self.topic, userId: "carol", start: false, now: at + .milliseconds(10)) { sent.append("stop") }
        }
        #expect(sent == ["start", "stop", "start", "stop", "start", "stop", "start", "stop"], "two pairs in each of two seconds: \(sent)")
        // Whenever the window restarts, the stop of a start that left always leaves too.
        for (offset, start) in [(0, true), (500, false), (600, true), (1050, false), (1100, true), (1200, false), (1300, true), (1400, false)] {
            let sent = relay.outgoing(topic: Self.topic, userId: "dave", start: start, now: t0 + .seconds(20) + .milliseconds(offset))
            if !start { #expect(sent, "the stop at \(offset) ms") }
        }
    }

    @Test("a user typing in two tabs of one node types until both stop: one tab's stop (or close) does not end the indicator, unless the other's start is older than TYPING_TIMEOUT")
    func twoTabs() {
        let relay = TypingRelay(timeout: .seconds(5)) { _ in }
        let t0 = ContinuousClock.now
        #expect(relay.outgoing(topic: Self.topic, userId: "alice", session: 1, start: true, now: t0))
        #expect(!relay.outgoing(topic: Self.topic, userId: "alice", session: 2, start: true, now: t0 + .milliseconds(300)), "coalesced")
        #expect(!relay.outgoing(topic: Self.topic, userId: "alice", session: 1, start: false, now: t0 + .seconds(1)), "tab 2 types on")
        #expect(relay.outgoing(topic: Self.topic, userId: "alice", session: 2, start: false, now: t0 + .seconds(2)), "the last tab stopped")
        // A tab that typed long ago and never stopped (its indicator timed out everywhere) does
        // not hold back another tab's stop.
        #expect(relay.outgoing(topic: Self.topic, userId: "bob", session: 1, start: true, now: t0))
        #expect(relay.outgoing(topic: Self.topic, userId: "bob", session: 2, start: true, now: t0 + .seconds(10)))
        #expect(relay.outgoing(topic: Self.topic, userId: "bob", session: 2, start: false, now: t0 + .seconds(11)))
    }

    @Test("a user typing on two nodes: a stop from one node is not shown while the other node's start runs; the last stop, or the other's timeout, ends it")
    func twoNodes() async throws {
        let relay = TypingRelay(timeout: .seconds(600)) { _ in }
        let t0 = ContinuousClock.now
        #expect(relay.incoming(Self.signal("alice", "start", from: "n1"), now: t0))
        #expect(!relay.incoming(Self.signal("alice", "start", from: "n2"), now: t0 + .milliseconds(200)), "coalesced")
        #expect(!relay.incoming(Self.signal("alice", "stop", from: "n1"), now: t0 + .seconds(1)), "still typing on n2")
        #expect(relay.incoming(Self.signal("alice", "stop", from: "n2"), now: t0 + .seconds(2)))
        // The other node's start ends by its own timeout: then the indicator ends.
        let stops = AsyncStream<Envelope>.makeStream()
        let timed = TypingRelay(timeout: .milliseconds(50)) { stops.continuation.yield($0) }
        #expect(timed.incoming(Self.signal("bob", "start", from: "n1")))
        #expect(!timed.incoming(Self.signal("bob", "start", from: "n2")))
        #expect(!timed.incoming(Self.signal("bob", "stop", from: "n1")))
        let stop = try await withDeadline(.seconds(30), "the stop of n2's start, timed out") {
            var iterator = stops.stream.makeAsyncIterator()
            return await iterator.next()
        }
        #expect(stop?.data.description == #"{"userId":"bob","state":"stop"}"#, "n2's start timed out")
    }

    @Test("a refresh held back by the coalescing does not end the indicator early: a received start is shown TYPING_TIMEOUT and the coalescing interval before the node's own stop")
    func heldRefreshCovered() async throws {
        let relay = TypingRelay(timeout: .seconds(5)) { _ in }
        let t0 = ContinuousClock.now
        #expect(relay.outgoing(topic: Self.topic, userId: "u", start: true, now: t0))
        // The typist refreshes just under a second later: held back, so receivers count from t0.
        let refresh = t0 + .milliseconds(999)
        #expect(!relay.outgoing(topic: Self.topic, userId: "u", start: true, now: refresh))

        // A receiving node's own stop, timed: never before the held refresh's TYPING_TIMEOUT.
        let stops = AsyncStream<ContinuousClock.Instant>.makeStream()
        let receiver = TypingRelay(timeout: .milliseconds(200)) { _ in stops.continuation.yield(.now) }
        let shownAt = ContinuousClock.now
        #expect(receiver.incoming(Self.signal("u", "start")))
        let stoppedAt = try #require(
            try await withDeadline(.seconds(30), "the receiving node's own stop") {
                var iterator = stops.stream.makeAsyncIterator()
                return await iterator.next()
            })
        // A lower bound on a timer, not a timing threshold: the stop came no sooner than due
        // (less 50 ms for the clocks' rounding; armed with TYPING_TIMEOUT alone it comes 1 s sooner).
        #expect(stoppedAt - shownAt >= receiver.timeout + TypingRelay.interval - .milliseconds(50), "stop after \(stoppedAt - shownAt)")
    }

    @Test("starts for ever new topics: the outgoing table is pruned of ended indicators, and not again at every start while all are recent")
    func outgoingPruned() throws {
        let relay = TypingRelay(timeout: .seconds(5)) { _ in }
        let t0 = ContinuousClock.now
        let count = TypingRelay.minimumPruneAt * 3
        for n in 0..<count {
            #expect(relay.outgoing(topic: try Topic("rooms.r\(n)"), userId: "u", start: true, now: t0))
        }
        #expect(relay.outgoingCount == count, "all recent: nothing pruned")
        #expect(relay.outgoingPruneAt >= count, "the next prune waits for the table to double")
        _ = relay.outgoing(topic: try Topic("rooms.late"), userId: "u", start: true, now: t0 + .seconds(11))
        #expect(relay.outgoingCount <= count + 1)
        // Just enough new starts to pass the threshold once.
        for n in 0..<(relay.outgoingPruneAt - relay.outgoingCount + 1) {
            _ = relay.outgoing(topic: try Topic("rooms.later\(n)"), userId: "u", start: true, now: t0 + .seconds(11))
        }
        #expect(relay.outgoingCount < count, "the ended ones went at the next prune")
    }

    @Test("a node shows at most one start per second per user and topic (two devices on two nodes), and a stop only for a shown start")
    func incoming() {
        let relay = TypingRelay(timeout: .seconds(600)) { _ in }
        let t0 = ContinuousClock.now
        #expect(!relay.incoming(Self.signal("alice", "stop"), now: t0))
        #expect(relay.incoming(Self.signal("alice", "start"), now: t0))
        #expect(!relay.incoming(Self.signal("alice", "start"), now: t0 + .milliseconds(500)))
        #expect(relay.incoming(Self.signal("alice", "start"), now: t0 + .milliseconds(1500)))
        #expect(relay.incoming(Self.signal("alice", "stop"), now: t0 + .seconds(2)))
        #expect(!relay.incoming(Self.signal("alice", "stop"), now: t0 + .seconds(2)))
    }

    @Test("an unrefreshed start ends with a stop shown locally")
    func timeout() async throws {
        let stops = AsyncStream<Envelope>.makeStream()
        let relay = TypingRelay(timeout: .milliseconds(50)) { stops.continuation.yield($0) }
        #expect(relay.incoming(Self.signal("alice", "start")))
        let stop = try await withDeadline(.seconds(30), "the stop of the unrefreshed start") {
            var iterator = stops.stream.makeAsyncIterator()
            return await iterator.next()
        }
        #expect(stop?.kind == .typing && stop?.data.description == #"{"userId":"alice","state":"stop"}"#)
    }
}
