import NIOCore

/// The first handler of an upgraded pipeline: the point from which ``WebSocketSession`` writes
/// its pre-encoded frames straight to the socket.
///
/// The WebSocket upgrader always installs NIO's `WebSocketFrameEncoder`, which cannot be removed
/// and would re-encode (and allocate a header for) every frame. Writing through this handler's
/// context skips it. Loop-bound like every handler; used only from its channel's event loop.
final class RawFrameWriter: ChannelOutboundHandler {
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private(set) var context: ChannelHandlerContext?

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    /// Queues `bytes` (a complete frame) on the socket; nothing is sent before ``flush()``.
    func write(_ bytes: ByteBuffer) {
        context?.write(wrapOutboundOut(bytes), promise: nil)
    }

    func flush() {
        context?.flush()
    }
}
