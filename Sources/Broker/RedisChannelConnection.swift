import NIOCore
import NIOPosix

/// One request/reply connection to a Redis server on a NIO channel, for a thread that waits
/// for each reply: a ``RedisCommandQueue``'s to a `rediss://` server, which the hiredis
/// connection (``RedisConnection``) cannot encrypt (see ``RedisRequestConnection``).
///
/// **Ownership.** Used by one thread at a time, which must not be an event loop (it waits on
/// futures); not `Sendable`. Its ``RedisExchange`` lives on the channel's loop.
///
/// **Deadlines.** The name lookup and the TCP connect are bounded by `timeout` each
/// (``RedisReplyHandler/connect(_:timeout:on:)``) and by twice `timeout` together; every reply
/// by `timeout`, the TLS handshake included (it completes before the first command's reply can
/// arrive). A late reply fails with ``RedisConnectionError/isTimeout`` and closes the connection.
final class RedisChannelConnection {
    let url: RedisURL
    private let exchange: NIOLoopBound<RedisExchange>

    /// Connects, then authenticates, selects the database and names the client (the same
    /// handshake as ``RedisConnection``).
    init(connectingTo url: RedisURL, timeout: Duration, clientName: String?, on loop: any EventLoop) throws(RedisConnectionError) {
        self.url = url
        let connected = loop.makePromise(of: Void.self)
        exchange = try RedisExchange.wait(
            for: loop.submit { NIOLoopBound(RedisExchange.connect(url, timeout: timeout, connected: connected), eventLoop: loop) })
        try RedisExchange.wait(for: connected.futureResult)
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
        let (exchange, command) = (exchange, buffer)
        return try RedisExchange.wait(for: exchange.eventLoop.flatSubmit { exchange.value.send(command) })
    }
}
