import NIOCore
import NIOPosix

/// Finds the current master of one Sentinel master name, each step bounded by `timeout`
/// (`PUBSUB_REDIS_TIMEOUT`).
///
/// ``discover(preferring:startingAt:on:tracked:while:)`` asks the Sentinels in turn
/// (`SENTINEL get-master-addr-by-name <name>`) and accepts an address only after the server
/// itself confirms it with `ROLE` (first element `master`): a Sentinel that has not heard of a
/// failover yet names the old master, which is down or by now a replica, and a replica would
/// take `PUBLISH`es that no subscriber of the master ever sees.
///
/// Each question is a connection of its own on an event loop (``RedisExchange/ask(_:_:timeout:on:tracked:)``),
/// TLS for a `rediss://` Sentinel or master; nothing blocks a thread. A value: any thread may
/// use it (the Sentinel watch of a ``RedisServerLink`` on its loop; a ``RedisCommandQueue``'s
/// thread through the blocking ``discover(preferring:startingAt:)``).
struct RedisSentinelDiscovery: Sendable {
    let sentinels: [RedisURL]
    /// The master name as `host`, with the master's credentials, database and TLS.
    let master: RedisURL
    let timeout: Duration

    var masterName: String { master.host }

    /// The master's URL at `host:port`, with the credentials, database and TLS of the template.
    func masterURL(host: String, port: Int) -> RedisURL {
        var url = master
        url.host = host
        url.port = port
        return url
    }

    /// The verified master, on `loop` (call it there): `candidate` first when given (the address
    /// of a `+switch-master`), then what each Sentinel names, from `startingAt`. Fails with
    /// every refusal when none is a master. `proceed` is asked before each Sentinel, and the
    /// connections are kept in `open` (a stopping link closes them and gives up at once).
    func discover(
        preferring candidate: RedisURL? = nil, startingAt first: Int = 0, on loop: any EventLoop,
        tracked open: RedisOpenExchanges? = nil, while proceed: @escaping () -> Bool = { true }
    ) -> EventLoopFuture<RedisURL> {
        let found = loop.makePromise(of: RedisURL.self)
        var problems: [String] = []
        var tried: Set<String> = []
        func verify(_ url: RedisURL, otherwise: @escaping () -> Void) {
            verified(url, on: loop, tracked: open).assumeIsolated().whenComplete { result in
                switch result {
                case .success(let master): found.succeed(master)
                case .failure(let error):
                    problems.append("\(error)")
                    otherwise()
                }
            }
        }
        func ask(_ offset: Int) {
            guard offset < sentinels.count, proceed() else {
                return found.fail(
                    // Sorted: the same answers asked in another order (the watch moves on to the
                    // next Sentinel) read the same, so a repeated failure is seen as one.
                    RedisConnectionError("no master for '\(masterName)' from Sentinel: \(problems.sorted().joined(separator: "; "))"))
            }
            masterNamed(by: sentinels[(first + offset) % sentinels.count], on: loop, tracked: open).assumeIsolated().whenComplete { result in
                switch result {
                case .success(let named) where tried.insert(named.server).inserted: verify(named) { ask(offset + 1) }
                case .success: ask(offset + 1)
                case .failure(let error):
                    problems.append("\(error)")
                    ask(offset + 1)
                }
            }
        }
        if let candidate {
            tried.insert(candidate.server)
            verify(candidate) { ask(0) }
        } else {
            ask(0)
        }
        return found.futureResult
    }

    /// ``discover(preferring:startingAt:on:tracked:while:)`` for a thread that waits (never an event
    /// loop's): a ``RedisCommandQueue``'s, on the queues' loop (``RedisRequestConnections/loops``).
    func discover(preferring candidate: RedisURL? = nil, startingAt first: Int = 0) throws(RedisConnectionError) -> RedisURL {
        let loop = RedisRequestConnections.loops.next()
        return try RedisExchange.wait(for: loop.flatSubmit { discover(preferring: candidate, startingAt: first, on: loop) })
    }

    /// What `sentinel` names as the master (`SENTINEL get-master-addr-by-name`), on `loop`.
    func masterNamed(by sentinel: RedisURL, on loop: any EventLoop, tracked open: RedisOpenExchanges? = nil) -> EventLoopFuture<RedisURL> {
        RedisExchange.ask(sentinel, [["SENTINEL", "get-master-addr-by-name", masterName]], timeout: timeout, on: loop, tracked: open)
            .flatMapThrowing { [self] replies in
                guard let (host, port) = Self.address(from: replies[0]) else {
                    throw RedisConnectionError("Sentinel \(sentinel.server) does not know master '\(masterName)': \(replies[0])")
                }
                return masterURL(host: host, port: port)
            }
    }

    /// `candidate` when it answers `ROLE` as a master (after `AUTH`/`SELECT`), on `loop`.
    func verified(_ candidate: RedisURL, on loop: any EventLoop, tracked open: RedisOpenExchanges? = nil) -> EventLoopFuture<RedisURL> {
        RedisExchange.ask(candidate, [["ROLE"]], timeout: timeout, on: loop, tracked: open).flatMapThrowing { replies in
            try Self.requireMaster(replies[0], at: candidate)
            return candidate
        }
    }

    /// ``verified(_:on:tracked:)`` for a thread that waits.
    func verified(_ candidate: RedisURL) throws(RedisConnectionError) -> RedisURL {
        let loop = RedisRequestConnections.loops.next()
        return try RedisExchange.wait(for: loop.flatSubmit { verified(candidate, on: loop) })
    }

    /// Throws unless `reply` (to `ROLE`) says `master`.
    static func requireMaster(_ reply: RedisReply, at url: RedisURL) throws(RedisConnectionError) {
        let role = role(from: reply)
        guard role == "master" else {
            throw RedisConnectionError("\(url.server) is not a master (ROLE: \(role ?? "\(reply)"))")
        }
    }

    // MARK: - Replies (pure)

    /// `[ip, port]`, the answer of `SENTINEL get-master-addr-by-name`; nil for the null reply.
    static func address(from reply: RedisReply) -> (String, Int)? {
        guard case .array(let parts) = reply, parts.count == 2, let host = parts[0].string,
            let portText = parts[1].string, let port = Int(portText), (1...65_535).contains(port)
        else { return nil }
        return (host, port)
    }

    /// The first element of a `ROLE` reply: `master`, `slave` or `sentinel`.
    static func role(from reply: RedisReply) -> String? {
        guard case .array(let parts) = reply, let first = parts.first else { return nil }
        return first.string
    }

    /// An error reply that says the server is not (or not yet) a usable master.
    static func meansWrongServer(_ error: String) -> Bool {
        ["READONLY", "LOADING", "MASTERDOWN"].contains { error.hasPrefix($0) }
    }

    /// The new address in a `+switch-master` message (`<name> <old-ip> <old-port> <new-ip>
    /// <new-port>`) when it is about `name`.
    static func switchedMaster(_ payload: String, name: String) -> (String, Int)? {
        let fields = payload.split(separator: " ")
        guard fields.count == 5, fields[0] == name, let port = Int(fields[4]), (1...65_535).contains(port) else {
            return nil
        }
        return (String(fields[3]), port)
    }
}
