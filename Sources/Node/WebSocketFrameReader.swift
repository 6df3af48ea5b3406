import NIOCore

/// Cuts a client's byte stream into WebSocket messages (RFC 6455 §5), inside the session.
///
/// NIO's upgrader installs a frame decoder, a frame encoder and, for fragmented messages, an
/// aggregator, each a handler with a pipeline context of its own and buffers that an idle
/// connection keeps for its whole life. Reading frames here instead leaves an upgraded
/// channel with one handler, the session. Together with no timer per session, this took an idle
/// connection from 5.4 KB to 3.9 KB (docs/benchmarks.md).
///
/// Between reads the reader holds nothing but the bytes of an unfinished frame or message;
/// both are bounded by `WEBSOCKET_MAX_MESSAGE_SIZE`, checked from the frame headers before the
/// payload arrives. A text message comes out only when it is valid UTF-8 (RFC 6455 §8.1),
/// checked over the whole message once its fragments are joined, so that a character split
/// between fragments is fine; nothing is ever repaired into U+FFFD. A length not written in the
/// minimal number of bytes (§5.2: "MUST") is refused as a protocol error. Loop-bound: a value
/// inside its ``WebSocketTransport``.
///
/// With permessage-deflate agreed (``inflation``), a message whose first frame has RSV1 set is
/// compressed: its frames are joined and bounded as above, then inflated (at most
/// `WEBSOCKET_MAX_MESSAGE_SIZE` bytes of it: more is ``Violation/tooBig``, found without inflating
/// the rest) before the UTF-8 check. Without it, RSV1 is a protocol error, as RSV2 and RSV3 always are.
struct WebSocketFrameReader {
    enum Opcode: UInt8 {
        case continuation = 0x0, text = 0x1, binary = 0x2
        case close = 0x8, ping = 0x9, pong = 0xA
    }

    /// A whole message (fragments joined) or a control frame, unmasked.
    struct Frame {
        var opcode: Opcode
        var payload: ByteBuffer
        /// The message came compressed (permessage-deflate); `payload` is inflated.
        var wasCompressed = false
    }

    /// Why the stream cannot be read further; the connection is then failed with its code.
    enum Violation: Error, Equatable {
        /// A message or frame longer than the limit (close code 1009).
        case tooBig
        /// Anything else RFC 6455 forbids (close code 1002), with a reason for the close frame.
        case protocolError(String)
        /// A text message that is not valid UTF-8 (close code 1007).
        case invalidUTF8
    }

    /// At most this many fragments make one message, so tiny fragments cannot cost a header each
    /// without end.
    static let maxFragments = 1024

    /// How a client that agreed to permessage-deflate compresses its messages.
    enum Inflation {
        /// `client_no_context_takeover`: every message is a deflate stream of its own, inflated
        /// by an inflater made for it and dropped after it, so an idle connection holds none.
        case perMessage
        /// Context takeover: the client's LZ77 window carries over from message to message, so
        /// the connection keeps its inflater (made at the first compressed message).
        case contextTakeover(MessageInflater?)

        init(_ agreed: PerMessageDeflate) {
            self = agreed.clientNoContextTakeover ? .perMessage : .contextTakeover(nil)
        }
    }

    let maxMessageSize: Int
    /// Set when permessage-deflate was agreed; nil: RSV1 is a protocol error.
    var inflation: Inflation?
    /// Received bytes not read yet; nil when there are none.
    private var input: ByteBuffer?
    /// Whether `input` is a buffer of our own rather than the channel's receive buffer, which
    /// NIO reuses for the next read once nobody else holds it.
    private var ownsInput = false
    /// The fragments so far of a message whose final fragment has not come. Boxed: a reader
    /// between messages (every idle connection's) holds one pointer, not the whole of it.
    private final class PartialMessage {
        let opcode: Opcode
        var payload: ByteBuffer
        var fragments = 1
        let compressed: Bool

        init(opcode: Opcode, payload: ByteBuffer, compressed: Bool) {
            self.opcode = opcode
            self.payload = payload
            self.compressed = compressed
        }
    }

    private var partial: PartialMessage?
    /// Set once the connection is closing: data messages still come out, to be dropped, but
    /// are neither inflated nor checked, so a client cannot make a closing connection (whose
    /// reads the rate and budget no longer pause) inflate without end.
    var discardsData = false
    /// The violation found, if any: reported again by every later ``next()``.
    private var violation: Violation?

    init(maxMessageSize: Int, inflation: Inflation? = nil) {
        self.maxMessageSize = maxMessageSize
        self.inflation = inflation
    }

    /// Takes the bytes of one read; then call ``next()`` until it returns nil, and ``endOfRead()``.
    mutating func receive(_ bytes: ByteBuffer) {
        if input == nil {
            input = bytes
            ownsInput = false
        } else {
            input!.writeImmutableBuffer(bytes)
        }
    }

    /// The next complete message or control frame, or nil when more bytes are needed.
    /// Once a violation is found, every later ``next()`` reports it again (until ``reset()``):
    /// nothing past it is read, whichever check found it.
    mutating func next() throws(Violation) -> Frame? {
        if let violation { throw violation }
        do {
            return try nextFrame()
        } catch {
            violation = error
            throw error
        }
    }

    private mutating func nextFrame() throws(Violation) -> Frame? {
        while let frame = try readFrame() {
            switch frame.opcode {
            case .ping, .pong, .close:
                return Frame(opcode: frame.opcode, payload: frame.payload)
            case .text, .binary:
                if frame.fin { return try checked(Frame(opcode: frame.opcode, payload: frame.payload), compressed: frame.compressed) }
                partial = PartialMessage(opcode: frame.opcode, payload: frame.payload, compressed: frame.compressed)
            case .continuation:
                guard let message = partial else {  // readFrame refuses this first
                    throw .protocolError("a continuation frame with no message to continue")
                }
                var payload = frame.payload
                message.payload.writeBuffer(&payload)  // in place: the box holds the only reference
                message.fragments += 1
                if frame.fin {
                    partial = nil
                    return try checked(Frame(opcode: message.opcode, payload: message.payload), compressed: message.compressed)
                }
            }
        }
        return nil
    }

    /// `message`, inflated if `compressed`, unless it is text that is not valid UTF-8; as it
    /// came when ``discardsData``.
    private mutating func checked(_ message: Frame, compressed: Bool) throws(Violation) -> Frame {
        var message = message
        if discardsData { return message }
        if compressed {
            message.payload = try inflate(message.payload)
            message.wasCompressed = true
        }
        guard message.opcode != .text || message.payload.withUnsafeReadableBytes(UTF8Validation.isValid) else {
            throw .invalidUTF8
        }
        return message
    }

    /// A compressed message's payload, inflated to at most ``maxMessageSize`` bytes.
    private mutating func inflate(_ payload: ByteBuffer) throws(Violation) -> ByteBuffer {
        let inflater: MessageInflater
        switch inflation {
        case .perMessage:
            inflater = MessageInflater()
        case .contextTakeover(let kept):
            inflater = kept ?? MessageInflater()
            inflation = .contextTakeover(inflater)
        case nil:  // readFrame refuses RSV1 first
            throw .protocolError("a compressed message, but no extension was agreed")
        }
        do {
            return try inflater.inflate(payload, limit: maxMessageSize)
        } catch .tooBig {
            throw .tooBig
        } catch {
            throw .protocolError("a compressed message that is not valid deflate data")
        }
    }

    /// Keeps an unfinished frame's bytes in a buffer of our own, so that the channel's receive
    /// buffer is free for the next read, and holds nothing when nothing is left.
    mutating func endOfRead() {
        guard var rest = input, rest.readableBytes > 0 else {
            input = nil
            return
        }
        // A buffer of our own is compacted, unless a large frame made it much bigger than what
        // is left: then the rest moves to a small one.
        if ownsInput && rest.capacity <= 2 * rest.readableBytes + 4096 {
            input = nil  // unique again, so the compaction does not copy
            rest.discardReadBytes()
            input = rest
        } else {
            var copy = ByteBufferAllocator().buffer(capacity: rest.readableBytes)
            copy.writeBuffer(&rest)
            input = copy
            ownsInput = true
        }
    }

    /// Drops everything held, after a violation: nothing past it is read.
    mutating func reset() {
        input = nil
        partial = nil
        violation = nil
    }

    /// One frame, unmasked, once all of it has arrived; nil before.
    private mutating func readFrame() throws(Violation) -> (fin: Bool, opcode: Opcode, payload: ByteBuffer, compressed: Bool)? {
        guard var bytes = input, bytes.readableBytes >= 2 else { return nil }
        let first = bytes.getInteger(at: bytes.readerIndex, as: UInt8.self)!
        let second = bytes.getInteger(at: bytes.readerIndex + 1, as: UInt8.self)!
        let fin = first & 0x80 != 0
        guard first & 0x30 == 0 else { throw .protocolError("RSV2 or RSV3 set, but no extension defines them") }
        guard let opcode = Opcode(rawValue: first & 0x0F) else {
            throw .protocolError("unknown opcode \(first & 0x0F)")
        }
        // RSV1 marks a compressed message (RFC 7692 §6), on the first frame of a data message only.
        let compressed = first & 0x40 != 0
        if compressed {
            guard inflation != nil else { throw .protocolError("RSV1 set, but permessage-deflate was not agreed") }
            guard opcode == .text || opcode == .binary else {
                throw .protocolError("RSV1 set on a control or continuation frame")
            }
        }
        guard second & 0x80 != 0 else { throw .protocolError("client frames must be masked") }
        let shortLength = Int(second & 0x7F)
        // What this frame's payload may hold: control frames stand alone between fragments
        // (RFC 6455 §5.4) and do not count towards the message they interrupt.
        let budget: Int
        switch opcode {
        case .close, .ping, .pong:
            guard fin else { throw .protocolError("a fragmented control frame") }
            guard shortLength <= 125 else { throw .protocolError("a control frame longer than 125 bytes") }
            budget = 125
        case .text, .binary:
            guard partial == nil else { throw .protocolError("a new message began before the last one's final fragment") }
            budget = maxMessageSize
        case .continuation:
            guard let partial else { throw .protocolError("a continuation frame with no message to continue") }
            // Refused before the frame is consumed, like every other violation: reading again
            // reports it again.
            guard partial.fragments < Self.maxFragments else {
                throw .protocolError("a message in more than \(Self.maxFragments) fragments")
            }
            budget = maxMessageSize - partial.payload.readableBytes
        }
        let lengthBytes = shortLength == 127 ? 8 : shortLength == 126 ? 2 : 0
        let headerBytes = 2 + lengthBytes + 4
        guard bytes.readableBytes >= headerBytes else { return nil }
        var length = shortLength
        if lengthBytes == 2 {
            length = Int(bytes.getInteger(at: bytes.readerIndex + 2, as: UInt16.self)!)
            guard length > 125 else { throw .protocolError("a length under 126 in 16 bits: lengths must be minimal") }
        } else if lengthBytes == 8 {
            let long = bytes.getInteger(at: bytes.readerIndex + 2, as: UInt64.self)!
            guard long >> 63 == 0 else { throw .protocolError("a 64-bit length with its most significant bit set") }
            guard long > 0xFFFF else { throw .protocolError("a length under 65536 in 64 bits: lengths must be minimal") }
            guard long <= UInt64(budget) else { throw .tooBig }
            length = Int(long)
        }
        guard length <= budget else { throw .tooBig }
        guard bytes.readableBytes >= headerBytes + length else { return nil }

        bytes.moveReaderIndex(forwardBy: 2 + lengthBytes)
        let mask = bytes.readInteger(as: UInt32.self)!.bigEndian  // the key's bytes in wire order
        var payload = ByteBufferAllocator().buffer(capacity: length)
        withUnsafeBytes(of: mask) { key in
            _ = bytes.readWithUnsafeReadableBytes { masked in
                payload.writeWithUnsafeMutableBytes(minimumWritableBytes: length) { out in
                    for index in 0..<length {
                        out[index] = masked[index] ^ key[index & 3]
                    }
                    return length
                }
                return length
            }
        }
        input = bytes
        return (fin, opcode, payload, compressed)
    }
}
