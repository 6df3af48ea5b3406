@testable import ChorusSDK
import Testing

@Suite("positions seen per topic")
struct StreamPositionsTests {
    @Test("a message at or before the last offset of the same epoch is a repeat; a new epoch starts over")
    func repeats() {
        var positions = StreamPositions()
        let first = positions.advance("t", to: StreamPosition(offset: 5, epoch: "a"))
        let same = positions.advance("t", to: StreamPosition(offset: 5, epoch: "a"))
        let earlier = positions.advance("t", to: StreamPosition(offset: 3, epoch: "a"))
        let next = positions.advance("t", to: StreamPosition(offset: 6, epoch: "a"))
        let newEpoch = positions.advance("t", to: StreamPosition(offset: 1, epoch: "b"))
        #expect([first, same, earlier, next, newEpoch] == [true, false, false, true, true])
        #expect(positions["t"] == StreamPosition(offset: 1, epoch: "b"))
    }

    @Test("a pattern's positions stay bounded: past the limit the least recently delivered topics are forgotten, the recent ones kept")
    func bounded() {
        var positions = StreamPositions(limit: 10)
        for n in 0..<10 { _ = positions.advance("t\(n)", to: StreamPosition(offset: 1, epoch: "a")) }
        _ = positions.advance("t0", to: StreamPosition(offset: 2, epoch: "a"))  // t0 delivered again: recent
        _ = positions.advance("t10", to: StreamPosition(offset: 1, epoch: "a"))
        #expect(positions.byTopic.count <= 10)
        #expect(positions["t0"] != nil && positions["t10"] != nil && positions["t9"] != nil)
        #expect(positions["t1"] == nil && positions["t2"] == nil, "the least recently delivered went")
        for n in 11..<10_000 { _ = positions.advance("t\(n)", to: StreamPosition(offset: 1, epoch: "a")) }
        #expect(positions.byTopic.count <= 10)
    }

    @Test("a subscribed reply sets the position of a new topic, and after a failed recovery, but not after a recovered one")
    func subscribedReplies() {
        var positions = StreamPositions()
        positions.subscribed("t", at: StreamPosition(offset: 41, epoch: "a"), asked: .live)
        #expect(positions["t"] == StreamPosition(offset: 41, epoch: "a"))
        let since = StreamPosition(offset: 41, epoch: "a")
        positions.subscribed("t", at: StreamPosition(offset: 45, epoch: "a"), asked: .since(since, recovered: true))
        #expect(positions["t"] == StreamPosition(offset: 41, epoch: "a"), "the replayed messages move it")
        positions.subscribed("t", at: StreamPosition(offset: 90, epoch: "a"), asked: .since(since, recovered: false))
        #expect(positions["t"] == StreamPosition(offset: 90, epoch: "a"))
        positions.subscribed("t", at: StreamPosition(offset: 2, epoch: "b"), asked: .live)
        #expect(positions["t"] == StreamPosition(offset: 2, epoch: "b"))
    }

    @Test("a subscribed reply's offset is not a delivered message: a message at it still on its way (the connection received the topic through a pattern already) is delivered, once")
    func replyOffsetIsNotSeen() {
        var positions = StreamPositions()
        positions.subscribed("rooms.a", at: StreamPosition(offset: 7, epoch: "a"), asked: .live)
        let onItsWay = positions.advance("rooms.a", to: StreamPosition(offset: 7, epoch: "a"))
        let again = positions.advance("rooms.a", to: StreamPosition(offset: 7, epoch: "a"))
        let next = positions.advance("rooms.a", to: StreamPosition(offset: 8, epoch: "a"))
        #expect([onItsWay, again, next] == [true, false, true])
        positions.subscribed("rooms.a", at: StreamPosition(offset: 8, epoch: "a"), asked: .live)
        let repeated = positions.advance("rooms.a", to: StreamPosition(offset: 8, epoch: "a"))
        #expect(!repeated, "delivered already: a later reply changes nothing")
    }

    @Test("a first subscribe with since or replay keeps the position where the messages sent after the reply start, so that they are not taken for repeats")
    func firstSubscribeWithHistory() {
        var positions = StreamPositions()
        let since = StreamPosition(offset: 2, epoch: "a")
        positions.subscribed("s", at: StreamPosition(offset: 5, epoch: "a"), asked: .since(since, recovered: true))
        #expect(positions["s"] == since)
        let recovered = [3, 4, 5].map { positions.advance("s", to: StreamPosition(offset: $0, epoch: "a")) }
        #expect(recovered == [true, true, true], "messages 3 to 5 are delivered")

        positions.subscribed("r", at: StreamPosition(offset: 5, epoch: "a"), asked: .replay(3))
        #expect(positions["r"] == StreamPosition(offset: 2, epoch: "a"), "a reconnect before the page arrives asks for what follows 2")
        let replayed = [3, 4, 5].map { positions.advance("r", to: StreamPosition(offset: $0, epoch: "a")) }
        #expect(replayed == [true, true, true], "the last three are delivered")

        positions.subscribed("e", at: StreamPosition(offset: 0, epoch: "a"), asked: .replay(50))
        #expect(positions["e"] == StreamPosition(offset: 0, epoch: "a"), "an empty topic: a reconnect asks for everything after 0")
    }
}

@Suite("node URLs")
struct ServerURLTests {
    @Test("ws URLs are taken apart into host, port and request target")
    func parses() throws {
        #expect(try ServerURL("ws://127.0.0.1:3000/ws") == ServerURL(host: "127.0.0.1", port: 3000, target: "/ws"))
        #expect(try ServerURL("ws://example.com") == ServerURL(host: "example.com", port: 80, target: "/ws"))
        #expect(try ServerURL("ws://[::1]:8080/chorus/ws?x=1") == ServerURL(host: "::1", port: 8080, target: "/chorus/ws?x=1"))
    }

    @Test("wss URLs are TLS, on port 443 unless one is given")
    func tls() throws {
        #expect(try ServerURL("wss://chat.example.com/ws") == ServerURL(host: "chat.example.com", port: 443, target: "/ws", tls: true))
        #expect(try ServerURL("wss://chat.example.com/ws").hostHeader == "chat.example.com")
        #expect(try ServerURL("wss://127.0.0.1:8443") == ServerURL(host: "127.0.0.1", port: 8443, target: "/ws", tls: true))
    }

    @Test("other schemes and malformed authorities are refused with the URL", arguments: ["https://x/ws", "http://x/ws", "ws://:80", "ws://h:0", "wss://:443"])
    func refuses(url: String) {
        #expect(throws: ChorusError.invalidURL(url)) { try ServerURL(url) }
    }
}

