import CHiredis
import Foundation

/// One blocking hiredis connection to a Redis server: a thin owner of one `redisContext`.
/// (The link's subscriber connection is a NIO channel instead: ``RedisSubscriberSession``.)
///
/// **Thread ownership.** A hiredis context is not thread-safe, and neither is this class: a
/// connection is created, used and freed by exactly one thread (a ``RedisCommandQueue``'s) and
/// is never handed to another. It is deliberately not
/// `Sendable`, so the compiler keeps it on its thread.
///
/// Commands are sent with `redisCommandArgv` (hiredis' variadic
/// `redisCommand` cannot be called from Swift), so every argument is binary-safe.
///
/// **Timeouts.** A connection has a connect timeout, and its socket a send and receive timeout
/// (`redisSetTimeout`) for every round trip: a late answer fails with
/// ``RedisConnectionError/isTimeout``. TCP keepalive is on.
final class RedisConnection {
    let url: RedisURL
    private let context: UnsafeMutablePointer<redisContext>

    /// Connects, turns on TCP keepalive, authenticates (`AUTH [user] password`) and selects the
    /// database, each step bounded by `timeout`: a *blocking* connection. Plain TCP only: a
    /// `rediss://` URL throws (``RedisChannelConnection`` speaks TLS).
    ///
    /// - Parameter clientName: shown by `CLIENT LIST` on the server (spaces are replaced).
    init(connectingTo url: RedisURL, timeout: Duration, clientName: String? = nil) throws(RedisConnectionError) {
        // Never a plaintext connection to a server meant for TLS (credentials would travel in clear).
        guard url.tls == nil else {
            throw RedisConnectionError("connect to \(url.server): hiredis cannot do TLS (rediss://)")
        }
        self.url = url
        let limit = Self.timeval(timeout)
        let address = try RedisHostResolver.numericAddress(of: url.host, timeout: timeout)
        let context = try Self.opened(redisConnectWithTimeout(address, Int32(url.port), limit), url)
        self.context = context
        // From here on `deinit` frees the context, also when a step below throws.
        guard redisEnableKeepAlive(context) == REDIS_OK, redisSetTimeout(context, limit) == REDIS_OK else {
            throw failure("connect")
        }
        try shakeHands(url, clientName: clientName)
    }

    /// The context hiredis returned for a new connection to `url`, when it was allocated and
    /// holds no error; a context with an error is freed here.
    private static func opened(
        _ context: UnsafeMutablePointer<redisContext>?, _ url: RedisURL
    ) throws(RedisConnectionError) -> UnsafeMutablePointer<redisContext> {
        guard let context else {
            throw RedisConnectionError("connect to \(url.server): cannot allocate a hiredis context")
        }
        guard context.pointee.err == 0 else {
            let error = Self.error("connect to \(url.server)", context)
            redisFree(context)
            throw error
        }
        return context
    }

    /// Whether `error`, the answer to handshake command `name`, fails the connection: for `AUTH`
    /// and `SELECT` any error does; `CLIENT SETNAME` is only a label, which a restricted ACL user
    /// may be denied, except when the error is Redis refusing the connection itself (`maxclients`
    /// reached: it answers the first command so and closes), which then names the cause.
    static func failsHandshake(_ name: String, error: String) -> Bool {
        name != "CLIENT" || error.hasPrefix("ERR max number of clients")
    }

    /// The commands that prepare a fresh connection.
    static func handshake(_ url: RedisURL, clientName: String?) -> [[String]] {
        var commands: [[String]] = []
        if let password = url.password {
            commands.append(url.user.map { ["AUTH", $0, password] } ?? ["AUTH", password])
        }
        if url.database != 0 { commands.append(["SELECT", String(url.database)]) }
        if let clientName {
            commands.append(["CLIENT", "SETNAME", String(clientName.map { $0.isWhitespace || !$0.isASCII ? "_" : $0 })])
        }
        return commands
    }

    deinit {
        redisFree(context)
    }

    /// Sends one command and waits for its reply (bounded by the timeout given at connect).
    func command(_ arguments: [String]) throws(RedisConnectionError) -> RedisReply {
        try command(arguments.map { Array($0.utf8) })
    }

    /// Sends one command of binary-safe arguments and waits for its reply.
    func command(_ arguments: [[UInt8]]) throws(RedisConnectionError) -> RedisReply {
        let reply = Self.withArgv(arguments) { argc, argv, lengths in
            redisCommandArgv(context, argc, argv, lengths)
        }
        guard let reply else { throw failure(String(decoding: arguments.first ?? Array("command".utf8), as: UTF8.self)) }
        defer { freeReplyObject(reply) }
        return RedisReply(reply.assumingMemoryBound(to: redisReply.self))
    }

    // MARK: - Helpers

    private func failure(_ operation: String) -> RedisConnectionError {
        Self.error("\(operation) on \(url.server)", context)
    }

    /// The context's error; a timeout is hiredis' I/O error with `EAGAIN` (a socket timeout).
    private static func error(_ operation: String, _ context: UnsafeMutablePointer<redisContext>) -> RedisConnectionError {
        // hiredis wrote `strerror(errno)` into `errstr` when the call failed.
        let text = errorString(context)
        let timedOut = context.pointee.err == REDIS_ERR_IO
            && (text == String(cString: strerror(EAGAIN)) || text == String(cString: strerror(ETIMEDOUT)))
        let message = timedOut ? "no answer within the timeout" : text
        return RedisConnectionError("\(operation): \(message)", isTimeout: timedOut)
    }

    private static func errorString(_ context: UnsafeMutablePointer<redisContext>) -> String {
        let message = withUnsafeBytes(of: context.pointee.errstr) { raw in
            String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
        }
        return message.isEmpty ? "unknown error (\(context.pointee.err))" : message
    }

    private static func timeval(_ duration: Duration) -> Foundation.timeval {
        let (seconds, attoseconds) = duration.components
        return Foundation.timeval(tv_sec: Int(seconds), tv_usec: Int(attoseconds / 1_000_000_000_000))
    }

    /// Calls `body` with hiredis' `argc`, `argv` and `argvlen` for `arguments`, all arguments
    /// copied into one buffer that lives for the duration of the call.
    static func withArgv<R>(
        _ arguments: [[UInt8]],
        _ body: (Int32, UnsafeMutablePointer<UnsafePointer<CChar>?>, UnsafePointer<Int>) -> R
    ) -> R {
        var storage: [UInt8] = []
        storage.reserveCapacity(arguments.reduce(0) { $0 + $1.count } + 1)
        var offsets: [Int] = []
        offsets.reserveCapacity(arguments.count)
        for argument in arguments {
            offsets.append(storage.count)
            storage.append(contentsOf: argument)
        }
        storage.append(0)  // never an empty buffer, so the base address is never nil
        let lengths = arguments.map(\.count)
        return storage.withUnsafeBufferPointer { buffer in
            let base = UnsafeRawPointer(buffer.baseAddress!).assumingMemoryBound(to: CChar.self)
            var argv: [UnsafePointer<CChar>?] = offsets.map { base + $0 }
            return argv.withUnsafeMutableBufferPointer { argvBuffer in
                lengths.withUnsafeBufferPointer { lengthBuffer in
                    body(Int32(arguments.count), argvBuffer.baseAddress!, lengthBuffer.baseAddress!)
                }
            }
        }
    }
}
