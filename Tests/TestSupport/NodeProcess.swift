import Broker
import ChorusClient
import Node
import Foundation
import Synchronization
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// One `chorus` node running as a child process on a loopback port of its own choosing.
///
/// The node binds port 0 and the port it got is read back from its log, so no other process
/// can take the port between a probe and the bind. Whoever starts a node stops it with
/// ``stop(within:)`` or ``kill()`` (``Cluster`` does, for all of its nodes) and then calls
/// ``checkExit(sourceLocation:)``, which records an issue unless the node exited as expected
/// (0 after SIGTERM, 137 after ``kill()``) with no crash or failed assertion in its log.
public final class NodeProcess: Sendable {
    /// `node-1`, `node-2`, ... (its `NODE_ID`).
    public let id: String
    public let port: Int
    public let process: ChildProcess
    private let secret: String
    /// The exit status the node must end with: 0, or 137 once the test has killed it.
    private let expectedExit = Mutex<Int32>(0)

    private init(id: String, port: Int, process: ChildProcess, secret: String) {
        self.id = id
        self.port = port
        self.process = process
        self.secret = secret
    }

    /// Starts `binary serve` with `environment` (everything but the port; see ``Cluster``) on
    /// `HTTP_PORT=0` and returns once the node has said which port it listens on (it logs that
    /// at `LOG_LEVEL` info). Does not wait for readiness: see ``waitUntilReady(within:)``.
    static func start(
        id: String, binary: String, environment: [String: String], secret: String, log: URL,
        port: Int = 0, within timeout: Duration = .seconds(60)
    ) async throws -> NodeProcess {
        var environment = environment
        environment["HTTP_PORT"] = "\(port)"
        environment["WEBSOCKET_PORT"] = "\(port)"  // the same listener as HTTP
        let process = try await ChildProcess.spawn(binary, ["serve"], environment: environment, log: log)
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let port = listeningPort(in: process.output()) {
                return NodeProcess(id: id, port: port, process: process, secret: secret)
            }
            if let status = process.exitStatus {
                throw StartFailure(status: status, description: "\(id) exited during start (status \(status)):\n\(process.output().suffix(3000))")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        await process.stop()
        throw TestFailure("\(id) logged no listening port within \(timeout) (LOG_LEVEL must be info or lower):\n\(process.output().suffix(3000))")
    }

    /// A node process that ended before it listened (78: it could not bind its port).
    public struct StartFailure: Error, CustomStringConvertible {
        public var status: Int32
        public var description: String
    }

    /// The port in Hummingbird's "Server started and listening on 127.0.0.1:<port>" line.
    /// Waits up to 60 s for `process`, a node started some other way than ``start``, to log
    /// "node ready", and returns the port it listens on; kills it and throws if it does not.
    public static func readyPort(of process: ChildProcess) async throws -> Int {
        let deadline = ContinuousClock.now + .seconds(60)
        while ContinuousClock.now < deadline, process.isRunning {
            let output = process.output()
            if output.contains("node ready"), let port = listeningPort(in: output) { return port }
            try await Task.sleep(for: .milliseconds(20))  // until it is ready
        }
        process.signal(SIGKILL)
        throw TestFailure("node did not start: \(process.output())")
    }

    public static func listeningPort(in log: String) -> Int? {
        guard let line = log.split(separator: "\n").first(where: { $0.contains("Server started and listening on") }),
            let colon = line.lastIndex(of: ":")
        else { return nil }
        return Int(line[line.index(after: colon)...].prefix { $0.isNumber })
    }

    public var baseURL: String { "http://127.0.0.1:\(port)" }

    /// A WebSocket to this node, authenticated as `user` (it has read `auth_success`); with
    /// `subscribeGrants`, its token grants those subscribe patterns (and no publish grants).
    public func connect(as user: String, subscribeGrants: [String]? = nil) async throws -> WebSocketClient {
        let grants = try subscribeGrants.map { Grants(subscribe: try $0.map { try TopicPattern($0) }, publish: []) }
        return try await WebSocketClient.connect(port: port).authenticated(as: user, secret: secret, grants: grants)
    }

    /// `GET /stats` as JSON.
    public func stats() async throws -> [String: Any] {
        try await HTTP.get("\(baseURL)/stats").json()
    }

    /// `adapter` of `/stats`.
    public func adapter() async throws -> [String: Any] {
        guard let adapter = try await stats()["adapter"] as? [String: Any] else {
            throw TestFailure("\(id): /stats has no 'adapter' object")
        }
        return adapter
    }

    /// `adapter.state` of `/stats` (`connected`, `fallback`, ...); nil when the node does not answer.
    public func adapterState() async -> String? {
        (try? await adapter())?["state"] as? String
    }

    /// The state of each backend in `/stats`, by address (`redis://127.0.0.1:P/0`).
    public func backendStates() async throws -> [String: String] {
        let backends = try await adapter()["backends"] as? [[String: Any]] ?? []
        var states: [String: String] = [:]
        for backend in backends {
            if let address = backend["address"] as? String, let state = backend["state"] as? String {
                states[address] = state
            }
        }
        return states
    }

    /// Waits until `GET /ready` answers 200; throws with the end of the node's log when the
    /// process exits or `timeout` passes first.
    public func waitUntilReady(within timeout: Duration = .seconds(30)) async throws {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            guard process.isRunning else {
                throw TestFailure("\(id) exited during start (status \(process.exitStatus ?? -1)):\n\(logTail())")
            }
            if let response = try? await HTTP.get("\(baseURL)/ready"), response.status == 200 { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw TestFailure("\(id): /ready did not answer 200 within \(timeout):\n\(logTail())")
    }

    /// SIGTERM: the node drains (WebSockets get 1001) and exits (with 0, which
    /// ``checkExit(sourceLocation:)`` holds it to).
    public func terminate() {
        process.signal(SIGTERM)
    }

    /// SIGTERM, and waits until the node has exited; its exit status, nil if it is still running
    /// after `timeout` (then it is killed, and ``checkExit(sourceLocation:)`` reports it).
    @discardableResult
    public func stop(within timeout: Duration = .seconds(20)) async -> Int32? {
        process.signal(SIGTERM)
        if let status = await process.wait(timeout: timeout) { return status }
        process.signal(SIGKILL)
        await process.wait(timeout: .seconds(5))
        return nil
    }

    /// Kills the node like a crash (SIGKILL) and waits until it is gone; from then on its exit
    /// status must be 137 (128 + SIGKILL).
    public func kill() async {
        expectedExit.withLock { $0 = 128 + SIGKILL }
        process.signal(SIGKILL)
        await process.wait(timeout: .seconds(10))
    }

    /// Problems with how the node ended: an exit status other than the expected one (0 after
    /// SIGTERM, 137 after ``kill()``), or a crash or a failed assertion in its log. Empty while
    /// it runs.
    public func exitProblems() -> [String] {
        guard let status = process.exitStatus else { return [] }
        var problems: [String] = []
        let expected = expectedExit.withLock { $0 }
        if status != expected { problems.append("\(id) exited with status \(status), expected \(expected)") }
        let crashes = TestLogs.crashLines(in: process.output())
        if !crashes.isEmpty { problems.append("\(id) logged a crash or an assertion: \(crashes.prefix(5).joined(separator: " | "))") }
        return problems
    }

    /// Records an issue for every problem of ``exitProblems()``, with the end of the node's log;
    /// an issue as well if the node is still running.
    public func checkExit(sourceLocation: SourceLocation = #_sourceLocation) {
        guard !process.isRunning else {
            Issue.record("\(id) is still running", sourceLocation: sourceLocation)
            return
        }
        for problem in exitProblems() {
            Issue.record("\(problem); log \(process.log.path) ends:\n\(logTail(40))", sourceLocation: sourceLocation)
        }
    }

    /// The last lines the node logged.
    public func logTail(_ lines: Int = 20) -> String {
        process.output().split(separator: "\n", omittingEmptySubsequences: false).suffix(lines).joined(separator: "\n")
    }
}

extension WebSocketClient {
    /// Sends `auth` with a token for `user` signed with `secret` and waits for `auth_success`.
    public func authenticated(as user: String, secret: String, grants: Grants? = nil) async throws -> WebSocketClient {
        let token = TokenMinter(secret: Array(secret.utf8)).mint(subject: user, grants: grants)
        try await send(json: ["type": "auth", "token": token])
        let reply = try await nextJSON(timeout: .seconds(20))
        guard reply["type"] as? String == "auth_success" else {
            throw TestFailure("expected auth_success, got \(reply)")
        }
        return self
    }
}
