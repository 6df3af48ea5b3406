import CZlib
import NIOCore
import Testing

@testable import Node

@Suite("permessage-deflate (RFC 7692): negotiation, compression and bounded inflation")
struct PerMessageDeflateTests {
    // MARK: Negotiation

    static let agreed = "permessage-deflate; server_no_context_takeover"
    static let agreedNoClientContext = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"

    @Test(
        "an offer the node can honour is agreed with server_no_context_takeover; client_no_context_takeover is echoed",
        arguments: [
            ("permessage-deflate", agreed),
            ("permessage-deflate; client_max_window_bits", agreed),  // Chromium's offer
            ("permessage-deflate; client_max_window_bits=12", agreed),
            ("permessage-deflate; client_max_window_bits=\"10\"", agreed),
            ("permessage-deflate; server_no_context_takeover", agreed),
            ("permessage-deflate; server_max_window_bits=15", agreed),
            ("permessage-deflate; client_no_context_takeover", agreedNoClientContext),
            ("permessage-deflate;client_no_context_takeover;server_no_context_takeover", agreedNoClientContext),
            ("  Permessage-Deflate ; client_no_context_takeover ", agreedNoClientContext),
        ])
    func honoured(offer: String, response: String) {
        #expect(PerMessageDeflate.negotiate(offers: [offer])?.responseHeader == response)
    }

    @Test(
        "an offer the node cannot honour is declined, so the connection goes on uncompressed",
        arguments: [
            "x-webkit-deflate-frame",
            "permessage-deflate; server_max_window_bits=10",  // the node compresses once, with 15 bits
            "permessage-deflate; server_max_window_bits",  // needs a value
            "permessage-deflate; client_max_window_bits=16",
            "permessage-deflate; client_max_window_bits=7",
            "permessage-deflate; client_max_window_bits=012",
            "permessage-deflate; client_no_context_takeover=1",
            "permessage-deflate; client_no_context_takeover; client_no_context_takeover",
            "permessage-deflate; mystery_parameter",
            "permessage-deflate; =",
            "",
        ])
    func declined(offer: String) {
        #expect(PerMessageDeflate.negotiate(offers: [offer]) == nil)
    }

    @Test("of several offers, in one header or several, the first the node can honour is agreed")
    func firstHonourableOffer() {
        let offers = [
            "permessage-deflate; server_max_window_bits=9, permessage-deflate; client_no_context_takeover",
            "permessage-deflate",
        ]
        #expect(PerMessageDeflate.negotiate(offers: offers)?.clientNoContextTakeover == true)
        #expect(PerMessageDeflate.negotiate(offers: ["foo", "permessage-deflate"])?.clientNoContextTakeover == false)
        #expect(PerMessageDeflate.negotiate(offers: []) == nil)
    }

    // MARK: Compression

    static let chatMessage = Array(
        #"{"type":"message","topic":"chat.lobby","data":{"text":"Hello everyone, the deploy is done and the dashboards look green again. If you see anything odd in the chat history, tell me here.","author":"alice","mentions":["bob","carol"],"attachments":[],"replyTo":"n1-000000000041"},"userId":"alice","id":"n1-000000000042","timestamp":"2026-12-01T17:20:57.123Z"}"#.utf8)

    @Test("a compressed message has no trailing 00 00 FF FF, its frame has RSV1, and it inflates back to itself")
    func roundTrip() throws {
        let deflater = MessageDeflater()
        for message in [Self.chatMessage, [], Array(repeating: 0x61, count: 200_000), Self.chatMessage] {
            let compressed = deflater.compress(message)
            #expect(!compressed.suffix(4).elementsEqual([0, 0, 0xFF, 0xFF]))
            let inflated = try MessageInflater().inflate(ByteBuffer(bytes: compressed), limit: 1 << 20)
            #expect(Array(inflated.readableBytesView) == message)
        }
        #expect(Self.chatMessage.count > 300)
        #expect(deflater.compress(Self.chatMessage).count < Self.chatMessage.count * 3 / 4)
        let frame = OutboundFrame.compressedText(deflater.compress(Self.chatMessage), allocator: .init())
        #expect(frame.bytes.getInteger(at: 0, as: UInt8.self) == 0xC1)  // FIN, RSV1, text
    }

    @Test("messages under WEBSOCKET_COMPRESSION_MIN_SIZE, or that would not shrink, are not compressed")
    func minimumSize() {
        let deflate = OutboundDeflate(minimumSize: 256)
        #expect(deflate.compressedText(Array(Self.chatMessage.prefix(255))) == nil)
        #expect(deflate.compressedText(Self.chatMessage) != nil)
        var random = SystemRandomNumberGenerator()
        let noise = (0..<1024).map { _ in UInt8.random(in: 0...255, using: &random) }
        #expect(deflate.compressedText(noise) == nil)
    }

    // MARK: Bounded inflation

    @Test("a zip bomb (16 MiB of zeros in a few KiB) is refused as too big once the limit is passed")
    func zipBomb() throws {
        let bomb = MessageDeflater().compress([UInt8](repeating: 0, count: 16 << 20))
        #expect(bomb.count < 32 << 10)
        #expect(throws: MessageInflater.Failure.tooBig) {
            try MessageInflater().inflate(ByteBuffer(bytes: bomb), limit: 1 << 20)
        }
    }

    @Test("a message inflating to exactly the limit is read; one byte more is too big")
    func limitIsInclusive() throws {
        let message = [UInt8](repeating: 0x7A, count: 10_000)
        let compressed = ByteBuffer(bytes: MessageDeflater().compress(message))
        #expect(try MessageInflater().inflate(compressed, limit: 10_000).readableBytes == 10_000)
        #expect(throws: MessageInflater.Failure.tooBig) { try MessageInflater().inflate(compressed, limit: 9_999) }
    }

    @Test("a message ending its deflate stream (a final block) inflates; bytes after the final block are invalid data")
    func finalBlock() throws {
        // A stored block with BFINAL set: "hi".
        let final: [UInt8] = [0x01, 0x02, 0x00, 0xFD, 0xFF, 0x68, 0x69]
        let inflated = try MessageInflater().inflate(ByteBuffer(bytes: final), limit: 1 << 20)
        #expect(String(buffer: inflated) == "hi")
        // RFC 7692 §7.2.3.4's own example: "Hello" in a final block, then one 0x00 byte.
        let example: [UInt8] = [0xF3, 0x48, 0xCD, 0xC9, 0xC9, 0x07, 0x00, 0x00]
        #expect(String(buffer: try MessageInflater().inflate(ByteBuffer(bytes: example), limit: 1 << 20)) == "Hello")
        #expect(throws: MessageInflater.Failure.invalidData) {
            try MessageInflater().inflate(ByteBuffer(bytes: final + Array("garbage".utf8)), limit: 1 << 20)
        }
    }

    @Test("bytes that are not a deflate stream are invalid data")
    func invalidData() {
        #expect(throws: MessageInflater.Failure.invalidData) {
            try MessageInflater().inflate(ByteBuffer(bytes: [0xFF, 0xFF, 0xFF, 0xFF, 0x00]), limit: 1 << 20)
        }
    }

    // MARK: Compressed frames in the reader

    /// Reads `chunks` with permessage-deflate agreed as `agreed`.
    static func read(_ chunks: [[UInt8]], agreed: PerMessageDeflate?, limit: Int = 1 << 20)
        throws(WebSocketFrameReader.Violation) -> [String]
    {
        var reader = WebSocketFrameReader(maxMessageSize: limit, inflation: agreed.map { .init($0) })
        var out: [String] = []
        for chunk in chunks {
            reader.receive(ByteBuffer(bytes: chunk))
            while let frame = try reader.next() { out.append(String(buffer: frame.payload)) }
            reader.endOfRead()
        }
        return out
    }

    static let noContext = PerMessageDeflate(clientNoContextTakeover: true)
    static let withContext = PerMessageDeflate(clientNoContextTakeover: false)

    static func compressedText(_ text: String) -> [UInt8] {
        WebSocketFrameReaderTests.frame(0x1, MessageDeflater().compress(Array(text.utf8)), reserved: 0x40)
    }

    @Test("a compressed text message (RSV1) comes out inflated, next to uncompressed ones")
    func compressedMessage() throws {
        let text = String(decoding: Self.chatMessage, as: UTF8.self)
        let read = try Self.read(
            [Self.compressedText(text) + WebSocketFrameReaderTests.text("plain") + Self.compressedText(text)],
            agreed: Self.noContext)
        #expect(read == [text, "plain", text])
    }

    @Test("a compressed message in fragments: RSV1 on the first, joined, then inflated")
    func compressedFragments() throws {
        let compressed = MessageDeflater().compress(Self.chatMessage)
        let cut = compressed.count / 2
        let first = WebSocketFrameReaderTests.frame(0x1, Array(compressed[..<cut]), fin: false, reserved: 0x40)
        let last = WebSocketFrameReaderTests.frame(0x0, Array(compressed[cut...]))
        #expect(try Self.read([first, last], agreed: Self.withContext) == [String(decoding: Self.chatMessage, as: UTF8.self)])
    }

    @Test(
        "RSV1 without the extension, or on a continuation or control frame, is a protocol error",
        arguments: [
            ("not agreed", compressedText("hello"), nil),
            ("continuation", WebSocketFrameReaderTests.text("a", fin: false) + WebSocketFrameReaderTests.frame(0x0, [0x61], reserved: 0x40), noContext),
            ("ping", WebSocketFrameReaderTests.frame(0x9, [], reserved: 0x40), noContext),
            ("RSV2", WebSocketFrameReaderTests.frame(0x1, [0x61], reserved: 0x20), noContext),
        ] as [(String, [UInt8], PerMessageDeflate?)])
    func misplacedRSV1(name: String, bytes: [UInt8], agreed: PerMessageDeflate?) {
        do {
            _ = try Self.read([bytes], agreed: agreed)
            Issue.record("\(name): read without error")
        } catch {
            guard case .protocolError = error else {
                Issue.record("\(name): \(error)")
                return
            }
        }
    }

    @Test("once the connection is closing, compressed messages come out as they came: a zip bomb is not inflated, bad deflate data is no error")
    func discardedWhileClosing() throws {
        let bomb = WebSocketFrameReaderTests.frame(
            0x2, MessageDeflater().compress([UInt8](repeating: 0, count: 4 << 20)), reserved: 0x40)
        let garbage = WebSocketFrameReaderTests.frame(0x1, [0xFF, 0xFF, 0xFF, 0xFF, 0x00], reserved: 0x40)
        var reader = WebSocketFrameReader(maxMessageSize: 1 << 20, inflation: .init(Self.withContext))
        reader.discardsData = true
        reader.receive(ByteBuffer(bytes: bomb + garbage + WebSocketFrameReaderTests.frame(0x8, [0x03, 0xE8])))
        let frames = try [reader.next(), reader.next(), reader.next()]
        #expect(frames.map { $0?.opcode } == [.binary, .text, .close])
        #expect(frames[0]?.payload.readableBytes == bomb.count - 8, "the bomb's payload as sent, not inflated")
        #expect(frames.allSatisfy { $0?.wasCompressed == false })
    }

    @Test("a compressed message that inflates past WEBSOCKET_MAX_MESSAGE_SIZE is too big (1009), though its frame is small")
    func inflatedPastTheLimit() {
        let bomb = WebSocketFrameReaderTests.frame(
            0x2, MessageDeflater().compress([UInt8](repeating: 0, count: 4 << 20)), reserved: 0x40)
        #expect(bomb.count < 8 << 10)
        #expect(throws: WebSocketFrameReader.Violation.tooBig) { try Self.read([bomb], agreed: Self.noContext, limit: 1 << 20) }
    }

    @Test("compressed text that is not valid UTF-8 once inflated closes with 1007; bad deflate data with 1002")
    func inflatedChecks() {
        let badText = WebSocketFrameReaderTests.frame(0x1, MessageDeflater().compress([0xC3, 0x28]), reserved: 0x40)
        #expect(throws: WebSocketFrameReader.Violation.invalidUTF8) { try Self.read([badText], agreed: Self.noContext) }
        let garbage = WebSocketFrameReaderTests.frame(0x1, [0xFF, 0xFF, 0xFF], reserved: 0x40)
        do {
            _ = try Self.read([garbage], agreed: Self.noContext)
            Issue.record("garbage inflated")
        } catch {
            #expect(error == .protocolError("a compressed message that is not valid deflate data"))
        }
    }

    @Test("with context takeover, a message that refers back into the previous one inflates; the connection keeps its window")
    func contextTakeover() throws {
        let client = ContextTakeoverDeflater()
        let text = String(decoding: Self.chatMessage, as: UTF8.self)
        let first = WebSocketFrameReaderTests.frame(0x1, client.compress(Self.chatMessage), reserved: 0x40)
        let second = WebSocketFrameReaderTests.frame(0x1, client.compress(Self.chatMessage), reserved: 0x40)
        #expect(second.count < first.count / 3, "the second refers to the first")
        #expect(try Self.read([first, second], agreed: Self.withContext) == [text, text])
        #expect(try Self.read([first + second], agreed: Self.withContext) == [text, text])
        // Without context takeover agreed, the node inflates each message alone, so the second fails.
        #expect(throws: WebSocketFrameReader.Violation.self) { try Self.read([first, second], agreed: Self.noContext) }
    }
}

/// A client's compressor with context takeover (what Chromium and Python's websockets do by
/// default): one raw deflate stream for the whole connection, sync-flushed after each message.
final class ContextTakeoverDeflater {
    private let stream = UnsafeMutablePointer<z_stream>.allocate(capacity: 1)

    init() {
        stream.initialize(to: z_stream())
        _ = czlib_deflate_init_raw(stream, 6, 15, 8)
    }

    deinit {
        deflateEnd(stream)
        stream.deallocate()
    }

    func compress(_ message: [UInt8]) -> [UInt8] {
        var input = message
        var output = [UInt8](repeating: 0, count: message.count + 64)
        let produced = input.withUnsafeMutableBytes { inBytes in
            output.withUnsafeMutableBytes { outBytes in
                stream.pointee.next_in = inBytes.baseAddress?.assumingMemoryBound(to: Bytef.self)
                stream.pointee.avail_in = uInt(inBytes.count)
                stream.pointee.next_out = outBytes.baseAddress!.assumingMemoryBound(to: Bytef.self)
                stream.pointee.avail_out = uInt(outBytes.count)
                _ = deflate(stream, Z_SYNC_FLUSH)
                return outBytes.count - Int(stream.pointee.avail_out)
            }
        }
        return Array(output[..<(produced - 4)])  // without 00 00 FF FF
    }
}
