import ChorusClient
import Foundation
import NIOCore
import Testing
import TestSupport

@Suite("RFC 6455 text and framing rules over a running node")
struct WebSocketTransportTests {
    @Test("a text frame that is not valid UTF-8 closes the connection with 1007, never repaired")
    func invalidText() async throws {
        try await withNode { node in
            let client = try await node.connect(as: "u")
            try await client.send(opcode: .text, ByteBuffer(bytes: Array(#"{"type":"ping","id":""#.utf8) + [0xC3, 0x28] + Array(#""}"#.utf8)))
            #expect(try await client.closeCode() == 1007)
        }
    }

    @Test("invalid UTF-8 split across fragments closes with 1007; a valid character split across them is fine")
    func fragmentedText() async throws {
        try await withNode { node in
            let bad = try await node.connect(as: "bad")
            // An "é" (C3 A9) whose second byte is replaced by an ASCII one in the next fragment.
            try await bad.send(opcode: .text, ByteBuffer(bytes: Array(#"{"type":"ping","id":"\#u{00}"#.utf8.dropLast()) + [0xC3]), fin: false)
            try await bad.send(opcode: .continuation, ByteBuffer(bytes: [0x28] + Array(#""}"#.utf8)))
            #expect(try await bad.closeCode() == 1007)

            let good = try await node.connect(as: "good")
            try await good.send(opcode: .text, ByteBuffer(bytes: Array(#"{"type":"ping","id":""#.utf8) + [0xC3]), fin: false)
            try await good.send(opcode: .continuation, ByteBuffer(bytes: [0xA9] + Array(#""}"#.utf8)))
            let pong = try await good.nextJSON()
            #expect(pong["type"] as? String == "pong")
            #expect(pong["id"] as? String == "é")
        }
    }

    @Test("a length not in the minimal number of bytes closes the connection with 1002")
    func nonMinimalLength() async throws {
        try await withNode { node in
            let client = try await RawWebSocket.connect(port: node.port, token: node.token("raw"))
            #expect(await client.send(RawWebSocket.frame(0x1, Array(#"{"type":"ping"}"#.utf8), extendedLength: true)))
            #expect(await client.closeCode() == 1002)
        }
    }

    @Test("a client's 1-byte binary flood gets no reply per frame: one error, then 1008")
    func binaryFloodIsClosed() async throws {
        try await withNode { node in
            let client = try await RawWebSocket.connect(port: node.port, token: node.token("raw"))
            var burst: [UInt8] = []
            for _ in 0..<5_000 { burst += RawWebSocket.frame(0x2, [1]) }
            _ = await client.send(burst)
            #expect(await client.closeCode() == 1008)
        }
    }
}
