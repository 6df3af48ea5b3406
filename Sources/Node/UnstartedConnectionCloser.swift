import NIOCore

/// Closes an accepted connection on which no request has started yet when the server
/// quiesces (a graceful shutdown), and remembers a quiesce that arrives while the first request
/// is still being read, until HTTP handling is set up.
///
/// Hummingbird's graceful shutdown closes the listener and waits for every accepted connection
/// to close. Once a connection serves HTTP, Hummingbird's `HTTPConnectionStateHandler` closes it
/// when idle; but before its first request a connection sits in the upgrade handler, which
/// ignores the quiesce. One idle connection (a client that connects and waits) then held the
/// shutdown until `DRAIN_TIMEOUT`, and the cancellation that follows is no clean stop. This
/// handler sits first in the pipeline until the upgrade is decided (``NodeChildChannel`` removes
/// it then). It lives on the channel's event loop, like every handler.
///
/// It also closes a connection whose first request has not arrived whole within
/// `HTTP_IDLE_TIMEOUT` (one that never sends, or dribbles its headers): such connections would
/// otherwise hold places under `HTTP_MAX_CONNECTIONS` for ever.
final class UnstartedConnectionCloser: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private let firstRequestTimeout: TimeAmount
    private var timeout: Scheduled<Void>?

    init(firstRequestTimeout: TimeAmount) {
        self.firstRequestTimeout = firstRequestTimeout
    }

    func handlerAdded(context: ChannelHandlerContext) {
        let channel = context.channel
        timeout = context.eventLoop.scheduleTask(in: firstRequestTimeout) { channel.close(promise: nil) }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timeout?.cancel()
        timeout = nil
    }

    /// Whether any bytes have arrived.
    private var started = false
    /// A quiesce arrived after the first bytes: the HTTP handlers must hear of it once they exist.
    private(set) var quiesceRequested = false

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        started = true
        context.fireChannelRead(data)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ChannelShouldQuiesceEvent {
            guard started else {
                context.close(promise: nil)
                return
            }
            quiesceRequested = true
        }
        context.fireUserInboundEventTriggered(event)
    }
}
