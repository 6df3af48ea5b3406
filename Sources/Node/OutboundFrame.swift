import NIOCore
import NIOWebSocket

/// A complete server-to-client WebSocket frame (header and payload) in one buffer.
///
/// Server frames are never masked, so one encoded frame can be written to any number of
/// connections: the node encodes each delivered message once and every subscriber's channel
/// writes the same bytes (`ByteBuffer` shares its storage), with no per-subscriber encoding
/// or allocation. This is why upgraded channels carry no `WebSocketFrameEncoder`.
struct OutboundFrame: Sendable {
    let bytes: ByteBuffer

    static func text(_ payload: some Collection<UInt8>, allocator: ByteBufferAllocator) -> OutboundFrame {
        make(opcode: .text, payload: payload, allocator: allocator)
    }

    /// A text message compressed with permessage-deflate (RSV1 set): `deflated` is what
    /// ``MessageDeflater`` made of it.
    static func compressedText(_ deflated: some Collection<UInt8>, allocator: ByteBufferAllocator) -> OutboundFrame {
        make(opcode: .text, payload: deflated, compressed: true, allocator: allocator)
    }

    static func pong(_ payload: ByteBuffer, allocator: ByteBufferAllocator) -> OutboundFrame {
        make(opcode: .pong, payload: payload.readableBytesView, allocator: allocator)
    }

    static func ping(allocator: ByteBufferAllocator) -> OutboundFrame {
        make(opcode: .ping, payload: EmptyCollection<UInt8>(), allocator: allocator)
    }

    /// A close frame with `code` and a short UTF-8 `reason` (cut to the 123 bytes a control frame allows).
    static func close(_ code: CloseCode, reason: String, allocator: ByteBufferAllocator) -> OutboundFrame {
        close(code: code.rawValue, reason: reason, allocator: allocator)
    }

    /// A close frame with any `code`: the node echoes a client's valid code (RFC 6455 §5.5.1).
    static func close(code: UInt16, reason: String, allocator: ByteBufferAllocator) -> OutboundFrame {
        var payload = allocator.buffer(capacity: 2 + reason.utf8.count)
        payload.writeInteger(code)
        var reason = Substring(reason)
        while reason.utf8.count > 123 { reason.removeLast() }  // whole characters only
        payload.writeString(String(reason))
        return make(opcode: .connectionClose, payload: payload.readableBytesView, allocator: allocator)
    }

    private static func make(
        opcode: WebSocketOpcode, payload: some Collection<UInt8>, compressed: Bool = false,
        allocator: ByteBufferAllocator
    ) -> OutboundFrame {
        let length = payload.count
        var buffer = allocator.buffer(capacity: length + 10)
        buffer.writeInteger(UInt8(0x80) | (compressed ? 0x40 : 0) | UInt8(webSocketOpcode: opcode))  // FIN + RSV1 + opcode
        switch length {
        case 0...125:
            buffer.writeInteger(UInt8(length))
        case 126...0xFFFF:
            buffer.writeInteger(UInt8(126))
            buffer.writeInteger(UInt16(length))
        default:
            buffer.writeInteger(UInt8(127))
            buffer.writeInteger(UInt64(length))
        }
        buffer.writeBytes(payload)
        return OutboundFrame(bytes: buffer)
    }
}
