import NIOCore
import NIOPosix

/// One request/reply connection to a Redis server on a NIO channel, for a thread that waits
/// for each reply: a ``RedisCommandQueue``'s to a `rediss://` server, which the hiredis
/// connection (``RedisConnection``) cannot encrypt (see ``RedisRequestConnection``).
///
/// **Ownership.** Used by one thread at a time, which must not be an event loop (it waits on
/// futures); not `Sendable`. Its ``Exchange`` lives on the channel's loop.
///
/// **Deadlines.** The name lookup and the TCP connect are bounded by `timeout` each
/// (``RedisReplyHandler/connect(_:timeout:on:)``) and by twice `timeout` together; every reply
/// by `timeout`, the TLS handshake included (it completes before the first command's reply can
/// arrive). A late reply fails with ``RedisConnectionError/isTimeout`` and closes the connection.
final class RedisChannelConnection {
    let url: RedisURL
    private let exchange: NIOLoopBound<Exchange>

    /// Connects, then authenticates, selects the database and names the client (the same
    /// handshake as ``RedisConnection``).
    init(connectingTo url: RedisURL, timeout: Duration, clientName: String?, on loop: any EventLoop) throws(RedisConnectionError) {
        self.url = url
        let connected = loop.makePromise(of: Void.self)
        exchange = try Self.waiting {
            try loop.submit {
                let exchange = Exchange(url: url, timeout: timeout, connected: connected)
                RedisReplyHandler.connect(exchange, timeout: timeout, on: loop)
                exchange.boundConnect()
                return NIOLoopBound(exchange, eventLoop: loop)
            }.wait()
        }
        try Self.waiting { try connected.futureResult.wait() }
        try shakeHands(url, clientName: clientName)
    }

    deinit {
        let exchange = exchange
        exchange.eventLoop.execute { exchange.value.close() }
    }

    /// Sends one command and waits for its reply (an error reply is returned, not thrown).
    func command(_ arguments: [[UInt8]]) throws(RedisConnectionError) -> RedisReply {
        var buffer = ByteBuffer()
        RedisCommandEncoder.append(arguments, to: &buffer)
        let exchange = exchange
        return try Self.waiting {
            try exchange.eventLoop.flatSubmit { exchange.value.send(buffer) }.wait()
        }
    }

    /// Runs `body`, which waits on a future, with any failure as a ``RedisConnectionError``.
    private static func waiting<Result>(_ body: () throws -> Result) throws(RedisConnectionError) -> Result {
        do {
            return try body()
        } catch let error as RedisConnectionError {
            throw error
        } catch {
            throw RedisConnectionError("\(error)")
        }
    }

    /// The connection's side on its event loop: one command in flight at a time, its reply
    /// awaited with a deadline.
    final class Exchange: RedisReplyReceiver {
        let url: RedisURL
        private let timeout: Duration
        private let loop: any EventLoop
        private var connected: EventLoopPromise<Void>?
        private var channel: (any Channel)?
        private var waiting: EventLoopPromise<RedisReply>?
        private var deadline: Scheduled<Void>?
        /// Why the connection ended; every later command fails with it.
        private var failure: RedisConnectionError?

        init(url: RedisURL, timeout: Duration, connected: EventLoopPromise<Void>) {
            self.url = url
            self.timeout = timeout
            self.loop = connected.futureResult.eventLoop
            self.connected = connected
        }

        /// Writes one encoded command; the future completes with its reply.
        func send(_ command: ByteBuffer) -> EventLoopFuture<RedisReply> {
            guard let channel, failure == nil, waiting == nil else {
                let error = failure ?? RedisConnectionError("\(url.server): a command is already in flight")
                return loop.makeFailedFuture(error)
            }
            let promise = loop.makePromise(of: RedisReply.self)
            waiting = promise
            let server = url.server
            deadline = loop.assumeIsolated().scheduleTask(in: RedisTurnTimer.timeAmount(timeout)) { [self] in
                fail(RedisConnectionError("read on \(server): no answer within the timeout", isTimeout: true))
            }
            channel.writeAndFlush(command, promise: nil)
            return promise.futureResult
        }

        /// Fails a connect still pending after the lookup's and the connect's deadlines together
        /// (a lookup can also wait for a thread of NIO's pool before its own deadline starts).
        func boundConnect() {
            let server = url.server
            loop.assumeIsolated().scheduleTask(in: RedisTurnTimer.timeAmount(timeout * 2)) { [self] in
                guard connected != nil else { return }
                fail(RedisConnectionError("connect to \(server): not connected within \(timeout * 2)", isTimeout: true))
            }
        }

        func close() {
            fail(RedisConnectionError("\(url.server): connection closed"))
        }

        // MARK: RedisReplyReceiver

        func received(_ reply: RedisReply) throws(RedisConnectionError) {
            guard let waiting else { throw RedisConnectionError("read on \(url.server): a reply nobody asked for") }
            self.waiting = nil
            deadline?.cancel()
            deadline = nil
            waiting.succeed(reply)
        }

        func readComplete() {}

        func connected(_ channel: any Channel) {
            guard failure == nil else { return channel.close(promise: nil) }
            self.channel = channel
            connected?.succeed()
            connected = nil
        }

        func fail(_ error: RedisConnectionError) {
            guard failure == nil else { return }
            failure = error
            deadline?.cancel()
            deadline = nil
            connected?.fail(error)
            connected = nil
            waiting?.fail(error)
            waiting = nil
            channel?.close(promise: nil)
        }

        func addressResolved() {}
    }
}
