import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A Redis Sentinel setup of real processes on loopback: one master, one replica, and
/// `sentinels` `redis-sentinel`s monitoring the master as ``masterName`` with lowered timers
/// (``downAfter``: the master is *subjectively down* after 1 s without an answer; a failover
/// may be retried after ``failoverTimeout``), quorum 2 (a majority of 3).
///
/// Made by ``withSentinelGroup(sentinels:_:)``, which waits until every Sentinel knows the
/// replica and the other Sentinels (so that a failover can be agreed), and always stops every
/// process. Logs and the Sentinels' config files (which they rewrite) go to a folder under
/// `.build/test-logs`.
///
/// With ``tls``, every server and Sentinel also has a TLS port, and replication, the Sentinels'
/// connections to the servers and to each other, and therefore the addresses Sentinel names,
/// all use the TLS ports (`tls-replication yes`); the test's own queries keep the plain ports.
/// With `clientCertificates` too, every TLS port requires a client certificate
/// (`tls-auth-clients yes`; the servers and Sentinels present their own to each other).
public final class RedisSentinelGroup: Sendable {
    public static let masterName = "chorus"
    public static let downAfter = 1_000
    public static let failoverTimeout = 5_000

    public let directory: URL
    /// `servers[0]` starts as the master, `servers[1]` as its replica.
    public let servers: [RedisProcess]
    public let sentinels: [RedisSentinelProcess]
    public let tls: TestCertificates?

    fileprivate init(directory: URL, servers: [RedisProcess], sentinels: [RedisSentinelProcess], tls: TestCertificates?) {
        self.directory = directory
        self.servers = servers
        self.sentinels = sentinels
        self.tls = tls
    }

    /// `PUBSUB_REDIS_SENTINELS` for a node: every Sentinel as `127.0.0.1:port`, or with TLS as
    /// `rediss://127.0.0.1:<TLS port>`.
    public var sentinelList: String {
        sentinels.map { $0.tlsPort.map { "rediss://127.0.0.1:\($0)" } ?? "127.0.0.1:\($0.port)" }.joined(separator: ",")
    }

    /// The environment a node needs to find the master through these Sentinels.
    public var nodeEnvironment: [String: String] {
        ["PUBSUB_REDIS_SENTINELS": sentinelList, "PUBSUB_REDIS_MASTER_NAME": Self.masterName]
    }

    /// The port every reachable Sentinel names as the master, when they agree.
    public func agreedMasterPort() async -> Int? {
        var ports: Set<Int> = []
        for sentinel in sentinels where sentinel.process.isRunning {
            guard let port = try? await sentinel.masterPort() else { return nil }
            ports.insert(port)
        }
        return ports.count == 1 ? ports.first : nil
    }

    /// The server whose `ROLE` is `master` (nil when none or several are).
    public func currentMaster() async -> RedisProcess? {
        var masters: [RedisProcess] = []
        for server in servers where server.isRunning {
            if case .array(let parts?) = try? await server.command(["ROLE"], timeout: .seconds(2)), parts.first?.text == "master" {
                masters.append(server)
            }
        }
        return masters.count == 1 ? masters[0] : nil
    }

    fileprivate static func start(
        sentinelCount: Int, passwords: SentinelPasswords, tls: TestCertificates?, clientCertificates: Bool
    ) async throws -> RedisSentinelGroup {
        let directory = try TestLogs.folder("sentinel")
        var servers: [RedisProcess] = []
        var sentinels: [RedisSentinelProcess] = []
        do {
            for _ in 0..<2 {
                let server = try RedisProcess(
                    directory: directory, password: passwords.master, tls: tls, clientCertificates: clientCertificates)
                try await server.start()
                servers.append(server)
            }
            let master = servers[0]
            let masterPort = master.tls?.port ?? master.port
            _ = try await servers[1].command(["REPLICAOF", "127.0.0.1", "\(masterPort)"])
            try await waitFor("the replica to sync with the master") {
                let info = try await servers[1].cli(["INFO", "replication"])
                return info.contains("master_link_status:up")
            }
            for index in 0..<sentinelCount {
                let sentinel = try RedisSentinelProcess(
                    directory: directory, index: index, passwords: passwords, tls: tls, clientCertificates: clientCertificates)
                try await sentinel.start(monitoring: masterPort)
                sentinels.append(sentinel)
            }
            // A failover needs the Sentinels to know the replica and each other (hello messages
            // on the master, every 2 s).
            for sentinel in sentinels {
                try await waitFor("Sentinel \(sentinel.port) to know the replica and \(sentinelCount - 1) other Sentinels") {
                    let replicas = try await sentinel.knownReplicas()
                    let others = try await sentinel.knownSentinels()
                    return replicas == 1 && others == sentinelCount - 1
                }
            }
            return RedisSentinelGroup(directory: directory, servers: servers, sentinels: sentinels, tls: tls)
        } catch {
            await stop(servers: servers, sentinels: sentinels)
            throw TestFailure("Sentinel group did not start (logs in \(directory.path)): \(error)\n\(TestLogs.tails(of: directory))")
        }
    }

    private static func waitFor(_ what: String, _ condition: () async throws -> Bool) async throws {
        let reached = await eventually(within: .seconds(30), every: .milliseconds(100)) { (try? await condition()) ?? false }
        guard reached else { throw TestFailure("timed out waiting for \(what)") }
    }

    fileprivate func stop() async {
        await Self.stop(servers: servers, sentinels: sentinels)
    }

    private static func stop(servers: [RedisProcess], sentinels: [RedisSentinelProcess]) async {
        for sentinel in sentinels { await sentinel.process.stop() }
        for server in servers { await server.stop() }
    }
}

/// Runs `body` with a fresh ``RedisSentinelGroup`` (master, replica, `sentinels` Sentinels),
/// then stops all of it, also when `body` throws.
public func withSentinelGroup<T>(
    sentinels: Int = 3, passwords: SentinelPasswords = SentinelPasswords(), tls: TestCertificates? = nil,
    clientCertificates: Bool = false, _ body: (RedisSentinelGroup) async throws -> T
) async throws -> T {
    let group = try await RedisSentinelGroup.start(
        sentinelCount: sentinels, passwords: passwords, tls: tls, clientCertificates: clientCertificates)
    do {
        let result = try await body(group)
        await group.stop()
        return result
    } catch {
        await group.stop()
        print("sentinel logs kept in \(group.directory.path) after: \(error)\n\(TestLogs.tails(of: group.directory))")
        throw error
    }
}

/// Passwords of a ``RedisSentinelGroup``: `master` is `requirepass` (and `masterauth`) of both
/// servers and `sentinel auth-pass` of the Sentinels; `sentinel` is the Sentinels' own
/// `requirepass` (and `sentinel sentinel-pass`, with which they talk to each other).
public struct SentinelPasswords: Sendable {
    public var master: String?
    public var sentinel: String?

    public init(master: String? = nil, sentinel: String? = nil) {
        self.master = master
        self.sentinel = sentinel
    }
}

/// One real `redis-sentinel` on a reserved loopback port, monitoring
/// ``RedisSentinelGroup/masterName`` with the group's lowered timers.
public final class RedisSentinelProcess: Sendable {
    public let port: Int
    private let directory: URL
    private let index: Int
    private let binary: String
    private let started = Mutex<ChildProcess?>(nil)
    private let passwords: SentinelPasswords
    private let tls: TestCertificates?
    private let clientCertificates: Bool
    /// The TLS port beside ``port``, with TLS.
    public let tlsPort: Int?

    init(
        directory: URL, index: Int, passwords: SentinelPasswords = SentinelPasswords(), tls: TestCertificates? = nil,
        clientCertificates: Bool = false
    ) throws {
        self.passwords = passwords
        self.tls = tls
        self.clientCertificates = clientCertificates
        self.tlsPort = try tls.map { _ in try LoopbackPort.reserve() }
        self.port = try LoopbackPort.reserve()
        self.directory = directory
        self.index = index
        self.binary = try Executable.find("redis-sentinel", hint: "install Redis Sentinel (Debian: apt-get install -y redis-sentinel)")
    }

    /// The running (or ended) process; only after ``start(monitoring:)``.
    public var process: ChildProcess { started.withLock { $0! } }

    func start(monitoring masterPort: Int) async throws {
        let config = directory.appendingPathComponent("sentinel-\(index).conf")
        let name = RedisSentinelGroup.masterName
        var tlsConfig = ""
        if let tlsPort, let tls {
            tlsConfig = """
                tls-port \(tlsPort)
                tls-cert-file \(tls.serverCertificate)
                tls-key-file \(tls.serverKey)
                tls-ca-cert-file \(tls.authority)
                tls-auth-clients \(clientCertificates ? "yes" : "no")
                tls-replication yes
                """
        }
        let text = """
            port \(port)
            bind 127.0.0.1
            daemonize no
            dir \(directory.path)
            sentinel monitor \(name) 127.0.0.1 \(masterPort) 2
            sentinel down-after-milliseconds \(name) \(RedisSentinelGroup.downAfter)
            sentinel failover-timeout \(name) \(RedisSentinelGroup.failoverTimeout)
            sentinel parallel-syncs \(name) 1
            \(passwords.master.map { "sentinel auth-pass \(name) \($0)" } ?? "")
            \(passwords.sentinel.map { "requirepass \($0)\nsentinel sentinel-pass \($0)" } ?? "")
            \(tlsConfig)

            """
        try text.write(to: config, atomically: true, encoding: .utf8)
        if let password = passwords.sentinel { RedisWire.passwords.withLock { $0[port] = password } }
        let child = try await ChildProcess.spawn(
            binary, [config.path], log: directory.appendingPathComponent("sentinel-\(index)-\(port).log"))
        started.withLock { $0 = child }
        let answered = await eventually(within: .seconds(20), every: .milliseconds(20)) {
            guard child.isRunning else { return true }
            return (try? await RedisWire.command(["PING"], port: port, timeout: .seconds(2))) == .simple("PONG")
        }
        guard answered, child.isRunning else {
            await child.stop()
            throw TestFailure("redis-sentinel on port \(port) did not start: \(child.output())")
        }
    }

    /// Sends one command to this Sentinel; an error reply throws.
    public func command(_ arguments: [String]) async throws -> RedisValue {
        let reply = try await RedisWire.command(arguments, port: port, timeout: .seconds(5))
        if case .error(let message) = reply { throw TestFailure("\(arguments.joined(separator: " ")) on Sentinel \(port): \(message)") }
        return reply
    }

    /// The master's port this Sentinel names (`SENTINEL get-master-addr-by-name`).
    public func masterPort() async throws -> Int? {
        guard case .array(let parts?) = try await command(["SENTINEL", "get-master-addr-by-name", RedisSentinelGroup.masterName]),
            parts.count == 2
        else { return nil }
        return parts[1].text.flatMap(Int.init)
    }

    /// Replicas this Sentinel could promote: it has heard from them itself (`flags` just
    /// `slave`, their link to the master `ok`), which is what `SENTINEL FAILOVER` and a
    /// failover require.
    func knownReplicas() async throws -> Int {
        guard case .array(let items?) = try await command(["SENTINEL", "replicas", RedisSentinelGroup.masterName]) else { return 0 }
        return items.filter { item in
            guard case .array(let fields?) = item else { return false }
            var values: [String: String] = [:]
            for pair in stride(from: 0, to: fields.count - 1, by: 2) {
                if let key = fields[pair].text { values[key] = fields[pair + 1].text }
            }
            return values["flags"] == "slave" && values["master-link-status"] == "ok" && values["info-refresh"].flatMap(Int.init) != nil
                && values["role-reported"] == "slave"
        }.count
    }

    func knownSentinels() async throws -> Int {
        guard case .array(let items?) = try await command(["SENTINEL", "sentinels", RedisSentinelGroup.masterName]) else { return 0 }
        return items.count
    }
}
