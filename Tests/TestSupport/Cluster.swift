import ChorusClient
import Foundation
import Testing
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A Chorus cluster of real processes on loopback: one or more `redis-server`s, N `chorus`
/// nodes (the built binary, see ``Executable/chorus()``) sharing them, and `nginx` in front.
///
/// Made by ``withCluster(nodes:redisServers:environment:sourceLocation:_:)``, which always stops
/// everything and then holds every node to a clean exit (``NodeProcess/checkExit(sourceLocation:)``:
/// status 0 after SIGTERM, 137 after ``NodeProcess/kill()``, no crash or assertion in its log).
/// Logs (`node-N.log`, `redis-*.log`, `nginx/`) and the nodes' SQLite files go to a folder under
/// `.build/test-logs` named after the test, which is kept (see ``TestLogs``); when the body
/// throws or a node ends badly, its path and the tails of every log are printed.
public final class Cluster: Sendable {
    public static let secret = "cluster-test-secret-0123456789abcdef"
    public static let apiKey = "cluster-test-api-key"

    public let directory: URL
    public let redis: [RedisProcess]
    /// node-1 is `nodes[0]`; see ``node(_:)``.
    public let nodes: [NodeProcess]
    public let nginx: NginxProcess
    /// The nodes as they run now: a node restarted by ``restart(_:)`` is its new process here.
    private let current: Mutex<[NodeProcess]>
    /// Processes replaced by a restart (stopped), still held to a clean exit.
    private let retired = Mutex<[NodeProcess]>([])
    private let binary: String
    private let environments: [[String: String]]

    fileprivate init(
        directory: URL, redis: [RedisProcess], nodes: [NodeProcess], nginx: NginxProcess, binary: String,
        environments: [[String: String]]
    ) {
        self.directory = directory
        self.redis = redis
        self.nodes = nodes
        self.nginx = nginx
        self.current = Mutex(nodes)
        self.binary = binary
        self.environments = environments
    }

    /// The node `NODE_ID=node-<number>` (1-based, as the tests name them), its current process.
    public func node(_ number: Int) -> NodeProcess { current.withLock { $0[number - 1] } }

    /// Restarts node `number` as an operator's rolling upgrade would: SIGTERM (it drains: its
    /// WebSockets get 1001), then a new process with the same settings on the same port, and
    /// returns once it is ready and its adapter connected.
    ///
    /// Throws, naming the step, when the old process has not exited cleanly (status 0, no crash
    /// or assertion in its log) within `stopTimeout`, or the new one is not ready and connected
    /// within `startTimeout`: every step is bounded.
    @discardableResult
    public func restart(
        _ number: Int, stopTimeout: Duration = .seconds(30), startTimeout: Duration = .seconds(60)
    ) async throws -> NodeProcess {
        let old = node(number)
        let status = await old.stop(within: stopTimeout)
        try Task.checkCancellation()  // a cancelled stop waits for nothing: not the node's fault
        guard status != nil else {
            throw TestFailure("restarting node-\(number): it had not exited \(stopTimeout) after SIGTERM (killed); its log ends:\n\(old.logTail(40))")
        }
        let problems = old.exitProblems()
        guard problems.isEmpty else {
            throw TestFailure("restarting node-\(number): \(problems.joined(separator: "; ")); its log ends:\n\(old.logTail(40))")
        }
        let run = retired.withLock { $0.count } + 2
        let new = try await NodeProcess.start(
            id: old.id, binary: binary, environment: environments[number - 1], secret: Self.secret,
            log: directory.appendingPathComponent("node-\(number)-run\(run).log"), port: old.port)
        current.withLock { $0[number - 1] = new }
        retired.withLock { $0.append(old) }
        try await new.waitUntilReady(within: startTimeout)
        try await waitUntilAdapters(are: "connected", on: [new], within: startTimeout)
        return new
    }

    /// A WebSocket through nginx (to whichever node it picks), authenticated as `user`.
    /// Bounded by `timeout` (connect, upgrade and `auth_success`): nginx answers an upgrade only
    /// once a node has, and a WebSocket upgrade has no deadline of its own.
    public func connectThroughNginx(as user: String, within timeout: Duration = .seconds(30)) async throws -> WebSocketClient {
        let port = nginx.port
        return try await withDeadline(timeout, "\(user): WebSocket through nginx") {
            try await WebSocketClient.connect(port: port).authenticated(as: user, secret: Self.secret)
        }
    }

    /// `POST /api/publish` through nginx with the API key; the HTTP status.
    public func publishThroughNginx(topic: String, data: [String: Any], eventType: String? = nil) async throws -> Int {
        var body: [String: Any] = ["topic": topic, "data": data]
        if let eventType { body["eventType"] = eventType }
        return try await HTTP.post("\(nginx.baseURL)/api/publish", json: body, headers: ["X-API-Key": Self.apiKey]).status
    }

    /// Waits until every node of `nodes` (all by default) reports `adapter.state == state` in `/stats`.
    public func waitUntilAdapters(
        are state: String, on nodes: [NodeProcess]? = nil, within timeout: Duration = .seconds(30)
    ) async throws {
        let nodes = nodes ?? self.nodes
        let reached = await eventually(within: timeout) {
            for node in nodes where await node.adapterState() != state { return false }
            return true
        }
        guard reached else {
            var states: [String] = []
            for node in nodes { states.append("\(node.id): \(await node.adapterState() ?? "no answer")") }
            throw TestFailure("adapters did not all report '\(state)' within \(timeout): \(states.joined(separator: ", "))")
        }
    }

    /// Where the Redis server of `redis` sits in the `/stats` backends (`redis://127.0.0.1:P/0`).
    public func backendAddress(_ server: RedisProcess) -> String { "\(server.url)/0" }

    // MARK: Start and stop

    fileprivate static func start(nodeCount: Int, redisServers: Int, environment: [String: String]) async throws -> Cluster {
        let binary = try Executable.chorus()
        let directory = try TestLogs.folder("cluster")

        var redis: [RedisProcess] = []
        var nodes: [NodeProcess] = []
        var environments: [[String: String]] = []
        var nginx: NginxProcess?
        do {
            for _ in 0..<redisServers {
                let server = try RedisProcess(directory: directory)
                redis.append(server)
                try await server.start()
            }
            for number in 1...nodeCount {
                var env = [
                    "JWT_SECRET": secret, "API_KEY": apiKey, "NODE_ID": "node-\(number)",
                    "HTTP_HOST": "127.0.0.1", "WEBSOCKET_HOST": "127.0.0.1", "WEBSOCKET_ENABLED": "true",
                    "PUBSUB_ADAPTER": "redis", "PUBSUB_REDIS_URL": redis.map(\.url).joined(separator: ","),
                    "PUBSUB_REDIS_PREFIX": "pubsub:", "TRUSTED_PROXIES": "127.0.0.1", "LOG_LEVEL": "info",
                    "DRAIN_TIMEOUT": "5000", "AUTH_BCRYPT_COST": "4",
                    "DATABASE_URL": "sqlite:\(directory.appendingPathComponent("node-\(number).sqlite").path)",
                    // Tests publish bursts from one connection; the default 100/s would drop them.
                    "WEBSOCKET_MAX_MESSAGES_PER_SECOND": "1000000",
                ]
                env.merge(environment) { $1 }
                environments.append(env)
                nodes.append(try await startOnReservedPort(
                    id: "node-\(number)", binary: binary, environment: env,
                    log: directory.appendingPathComponent("node-\(number).log")))
            }
            nginx = try await NginxProcess.start(
                upstreamPorts: nodes.map(\.port), directory: directory.appendingPathComponent("nginx"))
            for node in nodes { try await node.waitUntilReady() }
            try await nginx!.waitUntilServing()
            let cluster = Cluster(
                directory: directory, redis: redis, nodes: nodes, nginx: nginx!, binary: binary, environments: environments)
            try await cluster.waitUntilAdapters(are: "connected")
            return cluster
        } catch {
            await stop(redis: redis, nodes: nodes, nginx: nginx)
            throw TestFailure("cluster did not start (logs kept in \(directory.path)): \(error)\n\(TestLogs.tails(of: directory))")
        }
    }

    /// Starts a node on a port of ``LoopbackPort/reserve()`` (below the ephemeral range), on
    /// another one if a process outside this one took it first (the node exits with 78).
    ///
    /// Not on port 0: the kernel would pick an ephemeral port, and ``restart(_:stopTimeout:startTimeout:)``
    /// binds the same port again after the old process has exited; meanwhile any outgoing
    /// connection on the machine (hundreds while subscribers reconnect through nginx) may take
    /// it as its local port, and the new process could not listen.
    private static func startOnReservedPort(id: String, binary: String, environment: [String: String], log: URL) async throws -> NodeProcess {
        var attempt = 1
        while true {
            let port = try LoopbackPort.reserve()
            do {
                return try await NodeProcess.start(
                    id: id, binary: binary, environment: environment, secret: secret, log: log, port: port)
            } catch let failure as NodeProcess.StartFailure where failure.status == 78 && attempt < 5 {
                attempt += 1
            }
        }
    }

    fileprivate func stop() async {
        await Self.stop(redis: redis, nodes: current.withLock { $0 }, nginx: nginx)
    }

    /// Nodes first (SIGTERM: they drain while Redis is still up; nodes a test has stopped
    /// already are left as they are), then nginx, then Redis.
    private static func stop(redis: [RedisProcess], nodes: [NodeProcess], nginx: NginxProcess?) async {
        await withTaskGroup(of: Void.self) { group in
            for node in nodes where node.process.isRunning { group.addTask { await node.stop() } }
        }
        await nginx?.process.stop()
        for server in redis { await server.stop() }
    }

    /// Records an issue for each node that did not end cleanly; true when all did.
    fileprivate func checkExits(sourceLocation: SourceLocation) -> Bool {
        var clean = true
        for node in retired.withLock({ $0 }) + current.withLock({ $0 }) {
            if node.process.isRunning || !node.exitProblems().isEmpty { clean = false }
            node.checkExit(sourceLocation: sourceLocation)
        }
        return clean
    }
}

/// Runs `body` against a fresh cluster of `nodes` nodes sharing `redisServers` Redis servers
/// behind nginx, all adapters connected; then stops every process it started, also when
/// `body` throws, and records an issue for every node that did not exit cleanly (see
/// ``NodeProcess/checkExit(sourceLocation:)``). `environment` is added to (and overrides) every
/// node's environment. The logs stay in ``Cluster/directory``.
public func withCluster<T>(
    nodes: Int = 3, redisServers: Int = 1, environment: [String: String] = [:],
    sourceLocation: SourceLocation = #_sourceLocation,
    _ body: (Cluster) async throws -> T
) async throws -> T {
    let cluster = try await Cluster.start(nodeCount: nodes, redisServers: redisServers, environment: environment)
    let result: Result<T, any Error>
    do {
        result = .success(try await body(cluster))
    } catch {
        result = .failure(error)
    }
    await cluster.stop()
    let clean = cluster.checkExits(sourceLocation: sourceLocation)
    if case .failure(let error) = result {
        print("cluster logs kept in \(cluster.directory.path) after: \(error)\n\(TestLogs.tails(of: cluster.directory))")
    } else if !clean {
        print("cluster logs kept in \(cluster.directory.path)\n\(TestLogs.tails(of: cluster.directory))")
    }
    return try result.get()
}
