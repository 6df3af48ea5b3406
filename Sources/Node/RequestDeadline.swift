import NIOCore
import NIOHTTPTypes

/// Closes an HTTP connection whose request has not arrived whole, body included,
/// `HTTP_IDLE_TIMEOUT` after its head. The idle timeout alone does not end a request whose
/// client sends a byte of body now and then: each byte is activity, and the request holds its
/// body's memory meanwhile. Before the head, ``UnstartedConnectionCloser`` (the first request)
/// and Hummingbird's idle timeout (between requests) apply.
///
/// Owned by the channel's pipeline, on its event loop.
final class RequestDeadline: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart

    private let limit: TimeAmount
    private var deadline: Scheduled<Void>?

    init(limit: TimeAmount) {
        self.limit = limit
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head:
            let channel = context.channel
            deadline?.cancel()
            deadline = context.eventLoop.scheduleTask(in: limit) { channel.close(promise: nil) }
        case .end:
            deadline?.cancel()
            deadline = nil
        case .body:
            break
        }
        context.fireChannelRead(data)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        deadline?.cancel()
        deadline = nil
    }
}
