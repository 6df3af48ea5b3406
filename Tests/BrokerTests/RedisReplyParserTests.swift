import NIOCore
import Testing

@testable import Broker

/// hiredis formats commands and parses replies for the NIO subscriber connection, without sockets.
@Suite("Redis commands and replies through hiredis")
struct RedisReplyParserTests {
    @Test("a formatted command is RESP: an array of binary-safe bulk strings, read back whole across split reads")
    func commandRoundTrip() throws {
        var buffer = ByteBuffer()
        RedisCommandEncoder.append([Array("PUBLISH".utf8), Array("pubsub:a.b".utf8), [0x61, 0x00, 0x0d, 0x0a, 0x62]], to: &buffer)
        let bytes = Array(buffer.readableBytesView)
        #expect(bytes.starts(with: Array("*3\r\n$7\r\nPUBLISH\r\n".utf8)))

        let parser = RedisReplyParser()
        try parser.feed(ByteBuffer(bytes: bytes.prefix(11)))
        #expect(try parser.next() == nil, "half a command is not a reply yet")
        try parser.feed(ByteBuffer(bytes: bytes.dropFirst(11)))
        #expect(
            try parser.next()
                == .array([.bulk(Array("PUBLISH".utf8)), .bulk(Array("pubsub:a.b".utf8)), .bulk([0x61, 0x00, 0x0d, 0x0a, 0x62])]))
        #expect(try parser.next() == nil)
    }

    @Test("pushes and pongs of a subscribed connection, several in one read")
    func pushes() throws {
        let parser = RedisReplyParser()
        let wire = "*3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$2\r\nhi\r\n*2\r\n$4\r\npong\r\n$0\r\n\r\n+PONG\r\n-ERR no\r\n"
        try parser.feed(ByteBuffer(string: wire))
        #expect(try parser.next() == .array([.bulk(Array("message".utf8)), .bulk(Array("c".utf8)), .bulk(Array("hi".utf8))]))
        #expect(try parser.next() == .array([.bulk(Array("pong".utf8)), .bulk([])]))
        #expect(try parser.next() == .status("PONG"))
        #expect(try parser.next() == .error("ERR no"))
        #expect(try parser.next() == nil)
    }

    @Test("bytes that are not RESP are a protocol error")
    func protocolError() throws {
        let parser = RedisReplyParser()
        try? parser.feed(ByteBuffer(string: "?what\r\n"))
        #expect(throws: RedisConnectionError.self) { try parser.next() }
    }
}
