import NIOCore
import NIOPosix
import NIOSSL

/// What a Redis connection on an event loop does with what its channel reads: the link's
/// subscriber (``RedisSubscriberSession``) and publisher (``RedisPublisherSession``).
/// Called on the channel's event loop only.
protocol RedisReplyReceiver: AnyObject, SendableMetatype {
    var url: RedisURL { get }
    /// One reply; a throw fails the connection.
    func received(_ reply: RedisReply) throws(RedisConnectionError)
    /// The end of a read burst.
    func readComplete()
    /// The connect completed: write what waits.
    func connected(_ channel: any Channel)
    /// The connection failed or closed; reported once.
    func fail(_ error: RedisConnectionError)
    /// The host name is looked up and the TCP connect starts: the receiver's own deadline for
    /// the connect starts now (the lookup had its own).
    func addressResolved()
}

/// The end of a Redis connection's pipeline: parses what Redis sends with a
/// ``RedisReplyParser`` and hands each reply, each end of a read burst and the connection's end
/// to its receiver. Runs on the channel's event loop, which is the receiver's.
final class RedisReplyHandler<Receiver: RedisReplyReceiver>: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    private let parser = RedisReplyParser()
    private let receiver: Receiver

    init(receiver: Receiver) {
        self.receiver = receiver
    }

    /// Starts a TCP connection to `receiver.url` on `loop` with this handler at the end of its
    /// pipeline, behind a TLS handler for a `rediss://` URL (``RedisTLS``). A host name is
    /// looked up first on NIO's thread pool, bounded by `timeout` (``RedisHostResolver``: a
    /// lookup past it is abandoned), and by ``RedisHostResolver/lookupBound(_:)`` from now, waiting for a thread of
    /// the pool included; the connect is bounded by `timeout` too. The receiver hears
    /// ``RedisReplyReceiver/connected(_:)`` or ``RedisReplyReceiver/fail(_:)``. The receiver
    /// keeps the attempt to abandon the connect if it closes before it completes.
    static func connect(_ receiver: Receiver, timeout: Duration, on loop: any EventLoop) -> RedisConnectAttempt {
        let bound = NIOLoopBound(receiver, eventLoop: loop)
        let attempt = RedisConnectAttempt()
        let tracked = NIOLoopBound(attempt, eventLoop: loop)
        let (host, port) = (receiver.url.host, receiver.url.port)
        let address =
            RedisHostResolver.isNumeric(host)
            ? loop.makeSucceededFuture(host)
            : NIOThreadPool.singleton.runIfActive(eventLoop: loop) {
                try RedisHostResolver.numericAddress(of: host, timeout: timeout)
            }
        if !RedisHostResolver.isNumeric(host) {
            let server = receiver.url.server
            let limit = RedisHostResolver.lookupBound(timeout)
            let late = loop.assumeIsolated().scheduleTask(in: TimeAmount(limit)) {
                receiver.fail(RedisConnectionError("connect to \(server): no address for the host within \(limit)", isTimeout: true))
            }
            address.whenComplete { _ in late.cancel() }
        }
        let connecting = address.flatMap { address -> EventLoopFuture<any Channel> in
            guard !tracked.value.abandoned else { return loop.makeFailedFuture(RedisConnectionError("connect abandoned")) }
            bound.value.addressResolved()
            return ClientBootstrap(group: loop)
                .connectTimeout(TimeAmount(timeout))
                .channelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
                .channelOption(ChannelOptions.socketOption(.so_keepalive), value: 1)
                .channelOption(ChannelOptions.maxMessagesPerRead, value: 16)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        guard !tracked.value.abandoned else { throw RedisConnectionError("connect abandoned") }
                        tracked.value.channel = channel
                        let pipeline = channel.pipeline.syncOperations
                        if let tls = bound.value.url.tls { try pipeline.addHandler(tls.handler(host: host)) }
                        try pipeline.addHandler(RedisReplyHandler(receiver: bound.value))
                    }
                }
                .connect(host: address, port: port)
        }
        let server = receiver.url.server
        connecting.assumeIsolated().whenComplete { result in
            attempt.channel = nil
            switch result {
            case .success(let channel): receiver.connected(channel)
            case .failure(let error): receiver.fail(RedisConnectionError("connect to \(server): \(error)"))
            }
        }
        return attempt
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        do throws(RedisConnectionError) {
            try parser.feed(unwrapInboundIn(data))
            while let reply = try parser.next() {
                try receiver.received(reply)
            }
        } catch {
            receiver.fail(error)
            context.close(promise: nil)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        receiver.readComplete()
    }

    func channelInactive(context: ChannelHandlerContext) {
        receiver.fail(RedisConnectionError("read on \(receiver.url.server): connection closed by the server"))
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        let server = receiver.url.server
        if case .uncleanShutdown? = error as? NIOSSLError {
            // A TLS server that closed without a close_notify (a restart, a kill, CLIENT KILL).
            receiver.fail(RedisConnectionError("read on \(server): connection closed by the server"))
        } else {
            let tls = error is NIOSSLError || error is NIOSSLExtraError || error is BoringSSLError
            receiver.fail(RedisConnectionError("\(tls ? "TLS with" : "read on") \(server): \(error)"))
        }
        context.close(promise: nil)
    }
}
