import NIOCore

/// The end of a subscriber connection's pipeline: parses what Redis sends with a
/// ``RedisReplyParser`` and hands each reply, each end of a read burst and the connection's end
/// to its ``RedisSubscriberSession``. Runs on the channel's event loop, which is the session's.
final class RedisSubscriberHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    private let parser = RedisReplyParser()
    private let session: RedisSubscriberSession

    init(session: RedisSubscriberSession) {
        self.session = session
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        do throws(RedisConnectionError) {
            try parser.feed(unwrapInboundIn(data))
            while let reply = try parser.next() {
                try session.received(reply)
            }
        } catch {
            session.fail(error)
            context.close(promise: nil)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        session.readComplete()
    }

    func channelInactive(context: ChannelHandlerContext) {
        session.fail(RedisConnectionError("read on \(session.url.server): connection closed by the server"))
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        session.fail(RedisConnectionError("read on \(session.url.server): \(error)"))
        context.close(promise: nil)
    }
}
