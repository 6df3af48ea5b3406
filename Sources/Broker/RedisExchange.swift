import NIOCore

/// One request/reply connection to a Redis server on an event loop: one command in flight at
/// a time, its reply awaited with a deadline (`timeout`), on a NIO channel whose replies
/// hiredis parses (``RedisReplyHandler``), behind TLS for a `rediss://` URL.
///
/// Two users: a ``RedisCommandQueue``'s thread through the blocking facade
/// ``RedisChannelConnection``, and the Sentinel watch of a ``RedisServerLink`` on its loop
/// (``ask(_:_:timeout:on:tracked:)``, through ``RedisSentinelDiscovery``).
///
/// **Ownership.** Created, used and closed on its loop only (not `Sendable`); its futures
/// complete there.
final class RedisExchange: RedisReplyReceiver {
    let url: RedisURL
    private let timeout: Duration
    private let loop: any EventLoop
    private var connected: EventLoopPromise<Void>?
    private var channel: (any Channel)?
    /// The connect, until it completes: closed with the exchange if it is still under way.
    private var attempt: RedisConnectAttempt?
    private var waiting: EventLoopPromise<RedisReply>?
    private var deadline: Scheduled<Void>?
    /// Why the connection ended; every later command fails with it.
    private var failure: RedisConnectionError?

    private init(url: RedisURL, timeout: Duration, connected: EventLoopPromise<Void>) {
        self.url = url
        self.timeout = timeout
        self.loop = connected.futureResult.eventLoop
        self.connected = connected
    }

    /// Starts connecting to `url` on `connected`'s loop (on that loop): `connected` completes
    /// once the TCP connection is up, or fails with the lookup, the connect or their deadline.
    static func connect(_ url: RedisURL, timeout: Duration, connected: EventLoopPromise<Void>) -> RedisExchange {
        let exchange = RedisExchange(url: url, timeout: timeout, connected: connected)
        exchange.attempt = RedisReplyHandler.connect(exchange, timeout: timeout, on: exchange.loop)
        exchange.boundConnect()
        return exchange
    }

    /// On `loop`: connects to `url`, prepares the connection (``RedisConnection/handshake(_:clientName:)``;
    /// a refused `AUTH` or `SELECT` fails), sends `commands` one after another and closes. The
    /// future holds their replies, error replies included; each step is bounded by `timeout`.
    /// `open`, when given, holds the connection while it lasts (its owner may close it early).
    static func ask(
        _ url: RedisURL, _ commands: [[String]], timeout: Duration, on loop: any EventLoop, tracked open: RedisOpenExchanges? = nil
    ) -> EventLoopFuture<[RedisReply]> {
        loop.preconditionInEventLoop()
        let answered = loop.makePromise(of: [RedisReply].self)
        let connected = loop.makePromise(of: Void.self)
        let exchange = connect(url, timeout: timeout, connected: connected)
        open?.insert(exchange)
        let handshake = RedisConnection.handshake(url, clientName: nil)
        connected.futureResult.assumeIsolated().whenComplete { result in
            switch result {
            case .success: exchange.sendAll(handshake + commands, checked: handshake.count, into: answered)
            case .failure(let error): answered.fail(error)
            }
        }
        answered.futureResult.assumeIsolated().whenComplete { _ in
            open?.remove(exchange)
            exchange.close()
        }
        return answered.futureResult
    }

    /// Sends `commands` in turn; the replies of all but the first `checked` (the handshake,
    /// which must not be refused) complete `answered`.
    private func sendAll(_ commands: [[String]], checked: Int, into answered: EventLoopPromise<[RedisReply]>) {
        var replies: [RedisReply] = []
        func send(_ index: Int) {
            guard index < commands.count else { return answered.succeed(replies) }
            var buffer = ByteBuffer()
            RedisCommandEncoder.append(commands[index], to: &buffer)
            self.send(buffer).assumeIsolated().whenComplete { [url] result in
                switch result {
                case .failure(let error):
                    answered.fail(error)
                case .success(let reply):
                    if index < checked {
                        if case .error(let message) = reply, RedisConnection.failsHandshake(commands[index][0], error: message) {
                            return answered.fail(RedisConnectionError("\(commands[index][0]) on \(url.server) failed: \(message)"))
                        }
                    } else {
                        replies.append(reply)
                    }
                    send(index + 1)
                }
            }
        }
        send(0)
    }

    /// Waits for `future` (on a thread that is not its loop's), with any failure as a
    /// ``RedisConnectionError``.
    static func wait<Value: Sendable>(for future: EventLoopFuture<Value>) throws(RedisConnectionError) -> Value {
        do {
            return try future.wait()
        } catch let error as RedisConnectionError {
            throw error
        } catch {
            throw RedisConnectionError("\(error)")
        }
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
        deadline = loop.assumeIsolated().scheduleTask(in: TimeAmount(timeout)) { [self] in
            fail(RedisConnectionError("read on \(server): no answer within the timeout", isTimeout: true))
        }
        channel.writeAndFlush(command, promise: nil)
        return promise.futureResult
    }

    /// Fails a connect still pending after the lookup's and the connect's deadlines together
    /// (a lookup can also wait for a thread of NIO's pool before its own deadline starts).
    private func boundConnect() {
        let server = url.server
        loop.assumeIsolated().scheduleTask(in: TimeAmount(timeout * 2)) { [self] in
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
        attempt = nil
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
        if let channel { channel.close(promise: nil) } else { _ = attempt?.abandon() }
        attempt = nil
    }

    func addressResolved() {}
}

/// The ``RedisExchange``s one owner has open on its loop, so that it can close them at once:
/// a stopping link ends its Sentinel look-up at the step under way instead of waiting for it.
///
/// **Ownership.** Used on the owner's loop only (not `Sendable`).
final class RedisOpenExchanges {
    private var open: [ObjectIdentifier: RedisExchange] = [:]
    private var closed = false

    func insert(_ exchange: RedisExchange) {
        guard !closed else { return exchange.close() }
        open[ObjectIdentifier(exchange)] = exchange
    }

    func remove(_ exchange: RedisExchange) {
        open[ObjectIdentifier(exchange)] = nil
    }

    /// Closes every open exchange (its command fails at once) and every later one.
    func closeAll() {
        closed = true
        let all = open.values
        open = [:]
        for exchange in all { exchange.close() }
    }
}
