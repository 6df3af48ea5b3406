import Broker
import Foundation
@testable import Node
import Testing

@Suite("Typing relay: coalescing on both ends")
struct TypingRelayTests {
    static let topic = try! Topic("rooms.lobby")

    static func signal(_ user: String, _ state: String) -> Envelope {
        var envelope = Envelope(id: UUID().uuidString, origin: "n", topic: topic, data: PresenceFrames.typingData(userId: user, state: state))
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
        var iterator = stops.stream.makeAsyncIterator()
        let stop = await iterator.next()
        #expect(stop?.kind == .typing && stop?.data.description == #"{"userId":"alice","state":"stop"}"#)
    }
}
