import NIOCore
import Synchronization

/// The node's side of permessage-deflate for what it sends: `WEBSOCKET_COMPRESSION=on` makes
/// one, shared by the hub (deliveries) and every connection that agreed (its replies).
///
/// Compressed frames carry no context (`server_no_context_takeover`), so one compressed frame
/// is good for every connection that agreed: the hub compresses each delivered message once
/// for the whole node, beside its uncompressed frame. Thread-safe: deliveries (the adapter's
/// thread) have a ``MessageDeflater`` behind a lock; replies have one per event loop, used on
/// that loop only, so that a client whose replies are large (a `presence.get` of a big room)
/// keeps only its own loop busy, never another loop nor the node's deliveries.
final class OutboundDeflate: Sendable {
    /// `WEBSOCKET_COMPRESSION_MIN_SIZE`: messages shorter than this go uncompressed.
    let minimumSize: Int
    private let deliveries = Mutex(MessageDeflater())
    /// One per event loop of the node, made at its first reply; a handful, so a scan finds a
    /// loop's.
    private let replies: [NIOLoopBoundBox<MessageDeflater?>]
    private let allocator = ByteBufferAllocator()

    /// - Parameter loops: the event loops whose connections' replies are compressed.
    init(minimumSize: Int, loops: [any EventLoop] = []) {
        self.minimumSize = minimumSize
        replies = loops.map { .makeEmptyBox(valueType: MessageDeflater.self, eventLoop: $0) }
    }

    /// A delivered message's text frame compressed; nil when the message is shorter than
    /// ``minimumSize`` or would not come out shorter.
    func compressedText(_ payload: [UInt8]) -> OutboundFrame? {
        guard payload.count >= minimumSize else { return nil }
        return frame(of: payload, deflated: deliveries.withLock { $0.compress(payload) })
    }

    /// A reply to one connection compressed, as ``compressedText(_:)``; called on `loop`, one
    /// of the loops given at init.
    func compressedReply(_ payload: [UInt8], on loop: any EventLoop) -> OutboundFrame? {
        guard payload.count >= minimumSize else { return nil }
        guard let box = replies.first(where: { $0.eventLoop === loop }) else {
            preconditionFailure("event loop \(loop) is not in the node's group")
        }
        let deflater = box.value ?? MessageDeflater()
        box.value = deflater
        return frame(of: payload, deflated: deflater.compress(payload))
    }

    private func frame(of payload: [UInt8], deflated: [UInt8]) -> OutboundFrame? {
        guard deflated.count < payload.count else { return nil }
        return .compressedText(deflated, allocator: allocator)
    }
}
