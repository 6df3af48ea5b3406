import NIOCore
import Synchronization

/// The node's side of permessage-deflate for what it sends: `WEBSOCKET_COMPRESSION=on` makes
/// one, shared by the hub (deliveries) and every connection that agreed (its replies).
///
/// Compressed frames carry no context (`server_no_context_takeover`), so one compressed frame
/// is good for every connection that agreed: the hub compresses each delivered message once
/// for the whole node, beside its uncompressed frame. Thread-safe: one ``MessageDeflater``
/// behind a lock, held for one message's compression (the adapter's thread for deliveries,
/// the connection's loop for a reply).
final class OutboundDeflate: Sendable {
    /// `WEBSOCKET_COMPRESSION_MIN_SIZE`: messages shorter than this go uncompressed.
    let minimumSize: Int
    private let deflater = Mutex(MessageDeflater())
    private let allocator = ByteBufferAllocator()

    init(minimumSize: Int) {
        self.minimumSize = minimumSize
    }

    /// `payload`'s text frame compressed; nil when the message is shorter than
    /// ``minimumSize`` or would not come out shorter.
    func compressedText(_ payload: [UInt8]) -> OutboundFrame? {
        guard payload.count >= minimumSize else { return nil }
        let deflated = deflater.withLock { $0.compress(payload) }
        guard deflated.count < payload.count else { return nil }
        return .compressedText(deflated, allocator: allocator)
    }
}
