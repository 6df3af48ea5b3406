import NIOCore
import Testing

@testable import Node

@Suite("Reading client frames (RFC 6455 §5)")
struct WebSocketFrameReaderTests {
    /// A client frame: header, 4-byte mask and masked payload.
    static func frame(
        _ opcode: UInt8, _ payload: [UInt8], fin: Bool = true, masked: Bool = true, reserved: UInt8 = 0,
        declaredLength: UInt64? = nil
    ) -> [UInt8] {
        var bytes: [UInt8] = [(fin ? 0x80 : 0) | reserved | opcode]
        let length = declaredLength ?? UInt64(payload.count)
        let maskBit: UInt8 = masked ? 0x80 : 0
        if length < 126 {
            bytes.append(maskBit | UInt8(length))
        } else if length <= 0xFFFF {
            bytes.append(maskBit | 126)
            bytes += withUnsafeBytes(of: UInt16(length).bigEndian, Array.init)
        } else {
            bytes.append(maskBit | 127)
            bytes += withUnsafeBytes(of: length.bigEndian, Array.init)
        }
        let mask: [UInt8] = masked ? [0x37, 0xFA, 0x21, 0x3D] : [0, 0, 0, 0]
        if masked { bytes += mask }
        bytes += payload.enumerated().map { $1 ^ mask[$0 & 3] }
        return bytes
    }

    static func text(_ string: String, fin: Bool = true) -> [UInt8] { frame(0x1, Array(string.utf8), fin: fin) }

    /// Feeds `chunks` as separate reads and collects what comes out.
    static func read(_ chunks: [[UInt8]], limit: Int = 1 << 20) throws(WebSocketFrameReader.Violation)
        -> [(WebSocketFrameReader.Opcode, String)]
    {
        var reader = WebSocketFrameReader(maxMessageSize: limit)
        var out: [(WebSocketFrameReader.Opcode, String)] = []
        for chunk in chunks {
            reader.receive(ByteBuffer(bytes: chunk))
            while let frame = try reader.next() {
                out.append((frame.opcode, String(buffer: frame.payload)))
            }
            reader.endOfRead()
        }
        return out
    }

    @Test("a frame that arrives one byte per read comes out once, whole, after its last byte")
    func byteByByte() throws {
        let bytes = Self.text(#"{"type":"ping"}"#)
        let messages = try Self.read(bytes.map { [$0] })
        #expect(messages.map(\.1) == [#"{"type":"ping"}"#])
    }

    @Test("several frames in one read all come out, and a partial one is finished by the next read")
    func severalPerRead() throws {
        let bytes = Self.text("one") + Self.text("two") + Self.text("three")
        let cut = bytes.count - 2
        let messages = try Self.read([Array(bytes[..<cut]), Array(bytes[cut...])])
        #expect(messages.map(\.1) == ["one", "two", "three"])
    }

    @Test("16-bit and 64-bit payload lengths", arguments: [200, 70_000])
    func extendedLengths(size: Int) throws {
        let payload = String(repeating: "x", count: size)
        let messages = try Self.read([Self.frame(0x1, Array(payload.utf8))])
        #expect(messages.map(\.1) == [payload])
    }

    @Test("fragments are joined into one message, with a ping between them read on its own")
    func fragments() throws {
        let messages = try Self.read([
            Self.text("he", fin: false), Self.frame(0x9, Array("p".utf8)), Self.frame(0x0, Array("ll".utf8), fin: false),
            Self.frame(0x0, Array("o".utf8)),
        ])
        #expect(messages.map(\.0) == [.ping, .text])
        #expect(messages.map(\.1) == ["p", "hello"])
    }

    @Test(
        "frames RFC 6455 forbids are protocol errors",
        arguments: [
            ("unmasked", frame(0x1, [1], masked: false)),
            ("reserved bit", frame(0x1, [1], reserved: 0x40)),
            ("unknown opcode", frame(0x3, [1])),
            ("fragmented ping", frame(0x9, [1], fin: false)),
            ("ping over 125 bytes", frame(0x9, Array(repeating: 1, count: 126))),
            ("continuation with nothing to continue", frame(0x0, [1])),
            ("new message before the final fragment", text("a", fin: false) + text("b")),
            ("64-bit length with its top bit set", Array(frame(0x1, [], declaredLength: 1 << 63).prefix(14))),
        ])
    func violations(name: String, bytes: [UInt8]) {
        do {
            _ = try Self.read([bytes])
            Issue.record("\(name): read without error")
        } catch {
            if case .tooBig = error { Issue.record("\(name): refused as too big, not as a protocol error") }
        }
    }

    @Test("a frame declaring more than the limit is refused from its header, before the payload arrives")
    func tooBigFromHeader() {
        let header = Array(Self.frame(0x1, [], declaredLength: 2_000).prefix(8))
        #expect(throws: WebSocketFrameReader.Violation.tooBig) { try Self.read([header], limit: 1_000) }
        let huge = Array(Self.frame(0x1, [], declaredLength: 1 << 40).prefix(14))
        #expect(throws: WebSocketFrameReader.Violation.tooBig) { try Self.read([huge], limit: 1_000) }
    }

    @Test("a ping between fragments does not count towards the message, even near the limit")
    func controlFrameNearLimit() throws {
        let part = Array(repeating: UInt8(ascii: "x"), count: 990)
        let messages = try Self.read(
            [Self.frame(0x1, part, fin: false), Self.frame(0x9, Array(repeating: 1, count: 50)), Self.frame(0x0, Array("0123456789".utf8))],
            limit: 1_000)
        #expect(messages.map(\.0) == [.ping, .text])
        #expect(messages.last?.1.count == 1_000)
    }

    @Test("fragments adding up to more than the limit are refused")
    func tooBigInFragments() {
        let part = Array(repeating: UInt8(ascii: "x"), count: 600)
        #expect(throws: WebSocketFrameReader.Violation.tooBig) {
            try Self.read([Self.frame(0x1, part, fin: false), Self.frame(0x0, part)], limit: 1_000)
        }
    }

    @Test("a message in more fragments than allowed is refused")
    func tooManyFragments() {
        var bytes = Self.text("a", fin: false)
        for _ in 0..<WebSocketFrameReader.maxFragments { bytes += Self.frame(0x0, [UInt8(ascii: "a")], fin: false) }
        #expect(throws: WebSocketFrameReader.Violation.self) { try Self.read([bytes]) }
    }

    @Test("the fragment-count violation repeats when read again, like every other violation (a fuzz finding)")
    func tooManyFragmentsIsSticky() throws {
        var bytes = Self.text("a", fin: false)
        for _ in 0..<WebSocketFrameReader.maxFragments { bytes += Self.frame(0x0, [UInt8(ascii: "a")], fin: false) }
        bytes += Self.text("b")
        var reader = WebSocketFrameReader(maxMessageSize: 1 << 20)
        var buffer = ByteBuffer()
        buffer.writeBytes(bytes)
        reader.receive(buffer)
        var first: WebSocketFrameReader.Violation?
        do { _ = try reader.next() } catch { first = error }
        var second: WebSocketFrameReader.Violation?
        do { _ = try reader.next() } catch { second = error }
        #expect(first != nil)
        #expect("\(String(describing: second))" == "\(String(describing: first))")
    }

    @Test("a text message that is not UTF-8 is reported again when read again (a fuzz finding)")
    func invalidUTF8IsSticky() throws {
        var reader = WebSocketFrameReader(maxMessageSize: 1 << 20)
        var buffer = ByteBuffer()
        buffer.writeBytes(Self.frame(0x1, [0xC3, 0x28]) + Self.text("next"))
        reader.receive(buffer)
        #expect(throws: WebSocketFrameReader.Violation.invalidUTF8) { try reader.next() }
        #expect(throws: WebSocketFrameReader.Violation.invalidUTF8) { try reader.next() }
    }

    @Test(
        "lengths not in the minimal number of bytes are protocol errors",
        arguments: [
            ("5 bytes in 16 bits", [0x81, 0x80 | 126, 0x00, 0x05] + [0, 0, 0, 0] + Array("hello".utf8)),
            ("125 bytes in 16 bits", [0x82, 0x80 | 126, 0x00, 125] + [0, 0, 0, 0] + Array(repeating: 1, count: 125)),
            ("200 bytes in 64 bits", [0x82, 0x80 | 127, 0, 0, 0, 0, 0, 0, 0, 200] + [0, 0, 0, 0] + Array(repeating: 1, count: 200)),
        ] as [(String, [UInt8])])
    func nonMinimalLengths(name: String, bytes: [UInt8]) {
        #expect(throws: WebSocketFrameReader.Violation.self, "\(name)") { try Self.read([bytes]) }
    }

    @Test("a text message that is not UTF-8 is refused, whole or split across fragments; binary is not checked")
    func invalidUTF8() throws {
        #expect(throws: WebSocketFrameReader.Violation.invalidUTF8) { try Self.read([Self.frame(0x1, [0x61, 0xFF])]) }
        #expect(throws: WebSocketFrameReader.Violation.invalidUTF8) {
            try Self.read([Self.frame(0x1, [0xE2, 0x82], fin: false), Self.frame(0x0, [0x41])])
        }
        #expect(try Self.read([Self.frame(0x2, [0xFF])]).count == 1)
    }

    @Test("a character split between fragments is valid once they are joined")
    func characterAcrossFragments() throws {
        let messages = try Self.read([Self.frame(0x1, [0xE2, 0x82], fin: false), Self.frame(0x0, [0xAC])])
        #expect(messages.map(\.1) == ["€"])
    }
}
