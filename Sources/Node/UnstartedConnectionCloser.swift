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
/// A connection with nothing read yet is not closed at the quiesce itself but after
/// ``quiesceGrace``, unless its first bytes come meanwhile (then it is served, and closed after
/// its response): a proxy such as nginx (no upstream keep-alive) connects and sends at once, so
/// its request may be in the socket, unread, when the quiesce comes. Closing then resets it, and
/// nginx answers 502 to a `POST` it does not send to another node.
///
/// It also closes a connection whose first request has not arrived whole within
/// `HTTP_IDLE_TIMEOUT` (one that never sends, or dribbles its headers): such connections would
/// otherwise hold places under `HTTP_MAX_CONNECTIONS` for ever.
final class UnstartedConnectionCloser: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    /// How long an accepted connection with nothing read may still send its first request
    /// once the server quiesces.
    static let quiesceGrace: TimeAmount = .seconds(1)

    private let firstRequestTimeout: TimeAmount
    private var timeout: Scheduled<Void>?
    /// The close ``quiesceGrace`` after a quiesce that found nothing read.
    private var graceClose: Scheduled<Void>?

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
        graceClose?.cancel()
        graceClose = nil
    }

    /// Whether any bytes have arrived.
    private var started = false
    /// A quiesce arrived after the first bytes: the HTTP handlers must hear of it once they exist.
    private(set) var quiesceRequested = false

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        started = true
        if let graceClose {
            // The first request came within the grace: served, then closed like any other.
            graceClose.cancel()
            self.graceClose = nil
            quiesceRequested = true
        }
        context.fireChannelRead(data)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ChannelShouldQuiesceEvent {
            guard started else {
                let channel = context.channel
                graceClose = graceClose ?? context.eventLoop.scheduleTask(in: Self.quiesceGrace) { channel.close(promise: nil) }
                return
            }
            quiesceRequested = true
        }
        context.fireUserInboundEventTriggered(event)
    }
}
