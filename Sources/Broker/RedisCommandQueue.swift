import Dispatch
import Synchronization

/// Request/reply commands to one Redis server, for work beside the publish and subscribe paths
/// (the node directory, history reads, presence scripts).
///
/// **Ownership.** One serial dispatch queue alone owns the connection (a blocking
/// ``RedisRequestConnection``: hiredis for `redis://`, a NIO channel for `rediss://`); callers
/// on any thread, event loops included, never block: they get the reply through a completion
/// handler run on that queue, or by awaiting it. The connection is opened
/// on first use and dropped after any error, so the next command reconnects and the queue
/// follows Redis through outages. Every round trip, connect included, is bounded by `timeout`.
/// Commands queued while a round trip failed (a hung or unreachable server) fail at their turn
/// without being sent, so a caller behind many commands to a hung server waits for the one in
/// progress, not one `timeout` per command ahead of it; a long queue to a server that answers
/// is never cut short.
///
/// **Sentinel.** Made with a ``RedisSentinelDiscovery``, every (re)connect looks the master up
/// (checked with `ROLE`), and an error reply that says the server is no usable master
/// (`READONLY`, `LOADING`, `MASTERDOWN`) drops the connection too, so the next command finds
/// the master Sentinel has promoted since.
public final class RedisCommandQueue: Sendable {
    /// The server, or with Sentinel the template (master name as host).
    public let url: RedisURL
    private let sentinel: RedisSentinelDiscovery?
    private let timeout: Duration
    private let clientName: String
    private let queue: DispatchQueue
    /// Touched only on `queue`; the mutex makes that checkable rather than assumed.
    private let connection = Mutex<(any RedisRequestConnection)?>(nil)
    /// When the last round trip failed (not an error reply): commands sent before it fail.
    private let lastFailure = Mutex<ContinuousClock.Instant?>(nil)
    /// SHA1 digests of scripts loaded on the current connection's server, by script text.
    private let loadedScripts = Mutex<[String: String]>([:])
    /// Bytes of the arguments of commands queued and not yet run (``backlogBytes``).
    private let waiting = Atomic<Int>(0)

    /// Bytes of arguments queued behind the command in progress: a caller whose writes can
    /// wait and be coalesced (presence) holds them back past a bound instead of queueing more
    /// than the server takes.
    public var backlogBytes: Int { waiting.load(ordering: .relaxed) }

    /// - Parameters:
    ///   - timeout: the longest wait for a connect or for one reply (`PUBSUB_REDIS_TIMEOUT`).
    ///   - clientName: shown by `CLIENT LIST`, and the dispatch queue's label.
    public init(url: RedisURL, timeout: Duration, clientName: String) {
        self.url = url
        self.sentinel = nil
        self.timeout = timeout
        self.clientName = clientName
        self.queue = DispatchQueue(label: "chorus.\(clientName)")
    }

    /// Commands to the master `sentinel` finds, with its timeout.
    init(sentinel: RedisSentinelDiscovery, clientName: String) {
        self.url = sentinel.master
        self.sentinel = sentinel
        self.timeout = sentinel.timeout
        self.clientName = clientName
        self.queue = DispatchQueue(label: "chorus.\(clientName)")
    }

    /// Runs `arguments` on the queue's connection and hands the reply (an error reply as
    /// ``RedisConnectionError``) to `completion`, on the queue.
    public func send(
        _ arguments: [[UInt8]],
        completion: @escaping @Sendable (Result<RedisReply, RedisConnectionError>) -> Void = { _ in }
    ) {
        let sentAt = ContinuousClock.now
        let size = Self.size(arguments)
        waiting.add(size, ordering: .relaxed)
        queue.async {
            self.waiting.subtract(size, ordering: .relaxed)
            completion(Result { () throws(RedisConnectionError) in
                try self.checkTurn(sentAt)
                return try self.run(arguments)
            })
        }
    }

    /// Text arguments.
    public func send(
        _ arguments: [String],
        completion: @escaping @Sendable (Result<RedisReply, RedisConnectionError>) -> Void = { _ in }
    ) {
        send(arguments.map { Array($0.utf8) }, completion: completion)
    }

    /// Awaits one command's reply.
    public func command(_ arguments: [String]) async throws(RedisConnectionError) -> RedisReply {
        try await command(arguments.map { Array($0.utf8) })
    }

    /// Awaits one command's reply (binary-safe arguments).
    public func command(_ arguments: [[UInt8]]) async throws(RedisConnectionError) -> RedisReply {
        let result = await withCheckedContinuation { continuation in
            send(arguments) { continuation.resume(returning: $0) }
        }
        return try result.get()
    }

    /// Runs a Lua script with `EVALSHA`, loading it first on a server that does not know it
    /// (a new connection, or a server restarted or flushed since: `NOSCRIPT`).
    public func evaluate(
        _ script: String, keys: [[UInt8]], arguments: [[UInt8]],
        completion: @escaping @Sendable (Result<RedisReply, RedisConnectionError>) -> Void
    ) {
        let sentAt = ContinuousClock.now
        let size = Self.size(keys) + Self.size(arguments)
        waiting.add(size, ordering: .relaxed)
        queue.async {
            self.waiting.subtract(size, ordering: .relaxed)
            completion(Result { () throws(RedisConnectionError) in
                try self.checkTurn(sentAt)
                return try self.runScript(script, keys: keys, arguments: arguments)
            })
        }
    }

    private static func size(_ arguments: [[UInt8]]) -> Int {
        arguments.reduce(0) { $0 + $1.count }
    }

    /// Awaits a Lua script's reply.
    public func evaluate(_ script: String, keys: [[UInt8]], arguments: [[UInt8]]) async throws(RedisConnectionError)
        -> RedisReply
    {
        let result = await withCheckedContinuation { continuation in
            evaluate(script, keys: keys, arguments: arguments) { continuation.resume(returning: $0) }
        }
        return try result.get()
    }

    /// Runs `body` on the queue with a ``Turn``, through which it sends commands one after
    /// another: for work that decides what to send only when its turn comes
    /// (``RedisHistoryReads`` gathers the reads that waited meanwhile).
    func perform(_ body: @escaping @Sendable (Turn) -> Void) {
        queue.async { body(Turn(owner: self)) }
    }

    /// The queue's connection, lent to a ``perform(_:)`` body for the length of the call.
    struct Turn {
        fileprivate let owner: RedisCommandQueue

        /// Like ``RedisCommandQueue/evaluate(_:keys:arguments:completion:)``, blocking the queue.
        func evaluate(_ script: String, keys: [[UInt8]], arguments: [[UInt8]]) throws(RedisConnectionError) -> RedisReply {
            try owner.runScript(script, keys: keys, arguments: arguments)
        }
    }

    /// Returns once the commands queued before this call have run.
    public func drained() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            queue.async { continuation.resume() }
        }
    }

    /// Closes the connection once the commands queued before this call have run.
    public func close() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            queue.async {
                self.connection.withLock { $0 = nil }
                continuation.resume()
            }
        }
    }

    // MARK: On the queue

    /// Throws for a command sent at `sentAt` when a round trip failed after that: it waited
    /// behind a command the server did not answer, and trying it too would only wait again.
    private func checkTurn(_ sentAt: ContinuousClock.Instant) throws(RedisConnectionError) {
        if let failed = lastFailure.withLock({ $0 }), sentAt < failed {
            throw RedisConnectionError("not sent: queued behind a command Redis did not answer within PUBSUB_REDIS_TIMEOUT")
        }
    }

    private func runScript(_ script: String, keys: [[UInt8]], arguments: [[UInt8]]) throws(RedisConnectionError)
        -> RedisReply
    {
        let count = Array(String(keys.count).utf8)
        if let sha = loadedScripts.withLock({ $0[script] }) {
            do throws(RedisConnectionError) {
                return try run([Array("EVALSHA".utf8), Array(sha.utf8), count] + keys + arguments)
            } catch where error.description.hasPrefix("NOSCRIPT") {
                loadedScripts.withLock { $0[script] = nil }
            }
        }
        guard case .bulk(let sha) = try load(script) else {
            throw RedisConnectionError("unexpected SCRIPT LOAD reply")
        }
        loadedScripts.withLock { $0[script] = String(decoding: sha, as: UTF8.self) }
        return try run([Array("EVALSHA".utf8), sha, count] + keys + arguments)
    }

    /// `SCRIPT LOAD`s `script`. A server older than Redis 7 does not know a `#!lua` line (script
    /// flags such as `allow-oom`) and cannot compile it: it gets the script without that line,
    /// and runs it as Redis 6 runs every script.
    private func load(_ script: String) throws(RedisConnectionError) -> RedisReply {
        do throws(RedisConnectionError) {
            return try run(["SCRIPT", "LOAD", script].map { Array($0.utf8) })
        } catch where script.hasPrefix("#!") && error.description.contains("Error compiling script") {
            let body = script.drop { $0 != "\n" }
            return try run(["SCRIPT", "LOAD", String(body)].map { Array($0.utf8) })
        }
    }

    /// One command on the queue's connection, connecting first if needed.
    private func run(_ arguments: [[UInt8]]) throws(RedisConnectionError) -> RedisReply {
        dispatchPrecondition(condition: .onQueue(queue))
        return try connection.withLock { (connection) throws(RedisConnectionError) -> RedisReply in
            do throws(RedisConnectionError) {
                if connection == nil {
                    connection = try RedisRequestConnections.open(
                        sentinel?.discover() ?? url, timeout: timeout, clientName: "chorus-\(clientName)")
                    loadedScripts.withLock { $0.removeAll() }
                }
                let reply = try connection!.command(arguments)
                if case .error(let message) = reply { throw RedisConnectionError(message, isReplyError: true) }
                return reply
            } catch {
                // An error reply leaves the connection usable; a failed round trip does not.
                if !error.isReplyError || (sentinel != nil && RedisSentinelDiscovery.meansWrongServer(error.description)) {
                    connection = nil
                }
                if !error.isReplyError { lastFailure.withLock { $0 = .now } }
                throw error
            }
        }
    }
}
