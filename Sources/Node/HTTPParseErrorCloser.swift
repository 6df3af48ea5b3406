import NIOCore
import NIOHTTP1

/// Closes a connection whose request NIO could not parse (a garbage request line, two
/// `Content-Length`s, a header past NIO's limit), after NIO's `HTTPServerProtocolErrorHandler`
/// has answered it 400. That handler leaves the close to the rest of the pipeline, and before
/// the upgrade is decided nothing else there closes: the connection waited for
/// `HTTP_IDLE_TIMEOUT`. Sits after the HTTP handlers; a WebSocket's pipeline drops it at the
/// upgrade (``NodeChildChannel``). Lives on the channel's event loop, like every handler.
final class HTTPParseErrorCloser: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if error is HTTPParserError { context.close(promise: nil) }
        context.fireErrorCaught(error)
    }
}
