/// Finds the current master of one Sentinel master name, with blocking calls each bounded by
/// `timeout` (`PUBSUB_REDIS_TIMEOUT`).
///
/// ``discover(preferring:startingAt:)`` asks the Sentinels in turn
/// (`SENTINEL get-master-addr-by-name <name>`) and accepts an address only after the server
/// itself confirms it with `ROLE` (first element `master`): a Sentinel that has not heard of a
/// failover yet names the old master, which is down or by now a replica, and a replica would
/// take `PUBLISH`es that no subscriber of the master ever sees.
///
/// A value: no connection outlives a call, so any thread may use it (the sentinel thread of a
/// ``RedisServerLink``, the link's publisher, the node directory's queue).
struct RedisSentinelDiscovery: Sendable {
    let sentinels: [RedisURL]
    /// The master name as `host`, with the master's credentials and database.
    let master: RedisURL
    let timeout: Duration

    var masterName: String { master.host }

    /// The master's URL at `host:port`, with the credentials and database of the template.
    func masterURL(host: String, port: Int) -> RedisURL {
        var url = master
        url.host = host
        url.port = port
        return url
    }

    /// The verified master: `candidate` first when given (the address of a `+switch-master`),
    /// then what each Sentinel names, from `startingAt`. Throws with every refusal when none is
    /// a master. `proceed` is asked before each Sentinel (a stopping link gives up between
    /// them, so that its shutdown waits for one step at most).
    func discover(
        preferring candidate: RedisURL? = nil, startingAt first: Int = 0, while proceed: () -> Bool = { true }
    ) throws(RedisConnectionError) -> RedisURL {
        var problems: [String] = []
        var tried: Set<String> = []
        if let candidate {
            tried.insert(candidate.server)
            do {
                return try verified(candidate)
            } catch {
                problems.append(error.description)
            }
        }
        for offset in 0..<sentinels.count where proceed() {
            let sentinel = sentinels[(first + offset) % sentinels.count]
            do {
                let named = try masterNamed(by: sentinel)
                guard tried.insert(named.server).inserted else { continue }
                return try verified(named)
            } catch {
                problems.append(error.description)
            }
        }
        throw RedisConnectionError("no master for '\(masterName)' from Sentinel: \(problems.joined(separator: "; "))")
    }

    /// What `sentinel` names as the master (`SENTINEL get-master-addr-by-name`).
    func masterNamed(by sentinel: RedisURL) throws(RedisConnectionError) -> RedisURL {
        let connection = try RedisConnection(connectingTo: sentinel, timeout: timeout, clientName: nil)
        let reply = try connection.command(["SENTINEL", "get-master-addr-by-name", masterName])
        guard let (host, port) = Self.address(from: reply) else {
            throw RedisConnectionError("Sentinel \(sentinel.server) does not know master '\(masterName)': \(reply)")
        }
        return masterURL(host: host, port: port)
    }

    /// `candidate` when it answers `ROLE` as a master (after `AUTH`/`SELECT`); throws otherwise.
    func verified(_ candidate: RedisURL) throws(RedisConnectionError) -> RedisURL {
        let connection = try RedisConnection(connectingTo: candidate, timeout: timeout, clientName: nil)
        try Self.requireMaster(connection.command(["ROLE"]), at: candidate)
        return candidate
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
