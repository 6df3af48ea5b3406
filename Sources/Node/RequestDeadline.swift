import NIOCore
import NIOHTTPTypes

/// Bounds how long an HTTP request may hold its connection, and what it holds meanwhile.
///
/// - **Deadline.** A request not arrived whole, body included, `HTTP_IDLE_TIMEOUT` after its
///   head closes its connection. The idle timeout alone does not end a request whose client
///   sends a byte of body now and then: each byte is activity, and the request holds its
///   body's memory meanwhile. Before the head, ``UnstartedConnectionCloser`` (the first
///   request) and Hummingbird's idle timeout (between requests) apply.
/// - **Answered before its body arrived** (a 503 when the node's body budget is taken, a 413,
///   a 401 before the body is read): the rest of the body is dropped here, as it arrives, and
///   a request whose body has not ended ``lingering`` after the answer closes its connection.
///   Hummingbird reads such a body to its end before the next request, keeping each part it
///   read until the next one comes: a slice of a receive buffer of up to 64 KiB, held for as
///   long as the client waited to send more (a drill held 280 MB so with 3,000 connections).
///   A body that does end within the time leaves the connection open for the next request.
///
/// Owned by the channel's pipeline, on its event loop.
final class RequestDeadline: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    /// How long a client answered before its body arrived has to end the body (or to read the
    /// answer, if it stops sending) before the connection is closed.
    static let lingering = TimeAmount.seconds(5)

    private let limit: TimeAmount
    private var deadline: Scheduled<Void>?
    /// When the request in progress must have arrived whole; nil between requests.
    private var closesAt: NIODeadline?
    /// Its answer went out before its body ended: what more of the body comes is dropped.
    private var discarding = false

    init(limit: TimeAmount) {
        self.limit = limit
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head:
            discarding = false
            close(context, at: context.eventLoop.now + limit)
        case .body:
            if discarding { return }
        case .end:
            discarding = false
            deadline?.cancel()
            deadline = nil
            closesAt = nil
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = unwrapOutboundIn(data), let closesAt, !discarding {
            discarding = true
            // Hummingbird's reader keeps the part it read last until the next arrives: an empty
            // one takes its place, and the receive buffer it was a slice of is freed.
            context.fireChannelRead(wrapInboundOut(.body(ByteBuffer())))
            close(context, at: min(closesAt, context.eventLoop.now + Self.lingering))
        }
        context.write(data, promise: promise)
    }

    private func close(_ context: ChannelHandlerContext, at time: NIODeadline) {
        let channel = context.channel
        deadline?.cancel()
        closesAt = time
        deadline = context.eventLoop.scheduleTask(deadline: time) { channel.close(promise: nil) }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        deadline?.cancel()
        deadline = nil
    }
}
