import NIOCore
import Synchronization

/// The node's side of permessage-deflate for what it sends: `WEBSOCKET_COMPRESSION=on` makes
/// one, shared by the hub (deliveries) and every connection that agreed (its replies).
///
/// Compressed frames carry no context (`server_no_context_takeover`), so one compressed frame
/// is good for every connection that agreed: the hub compresses each delivered message once
/// for the whole node, beside its uncompressed frame. Thread-safe: a ``MessageDeflater``
/// behind a lock, held for one message's compression. Deliveries (the adapter's thread) and
/// replies (the connections' loops) have one each, so that no client's replies hold up the
/// node's deliveries.
final class OutboundDeflate: Sendable {
    /// `WEBSOCKET_COMPRESSION_MIN_SIZE`: messages shorter than this go uncompressed.
    let minimumSize: Int
    private let deliveries = Mutex(MessageDeflater())
    private let replies = Mutex(MessageDeflater())
    private let allocator = ByteBufferAllocator()

    init(minimumSize: Int) {
        self.minimumSize = minimumSize
    }

    /// `payload`'s text frame compressed; nil when the message is shorter than
    /// ``minimumSize`` or would not come out shorter. `reply`: a reply to one connection, not
    /// a delivery.
    func compressedText(_ payload: [UInt8], reply: Bool = false) -> OutboundFrame? {
        guard payload.count >= minimumSize else { return nil }
        let deflated = reply ? replies.withLock { $0.compress(payload) } : deliveries.withLock { $0.compress(payload) }
        guard deflated.count < payload.count else { return nil }
        return .compressedText(deflated, allocator: allocator)
    }
}
