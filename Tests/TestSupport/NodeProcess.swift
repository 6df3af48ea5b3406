import ChorusClient
import Node
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// One `chorus` node running as a child process on a reserved loopback port.
public final class NodeProcess: Sendable {
    /// `node-1`, `node-2`, ... (its `NODE_ID`).
    public let id: String
    public let port: Int
    public let process: ChildProcess
    private let secret: String

    private init(id: String, port: Int, process: ChildProcess, secret: String) {
        self.id = id
        self.port = port
        self.process = process
        self.secret = secret
    }

    /// Starts `binary serve` with `environment` (which must name the port and everything else;
    /// see ``Cluster``). Does not wait: see ``waitUntilReady(within:)``.
    static func start(
        id: String, port: Int, binary: String, environment: [String: String], secret: String, log: URL
    ) async throws -> NodeProcess {
        let process = try await ChildProcess.spawn(binary, ["serve"], environment: environment, log: log)
        return NodeProcess(id: id, port: port, process: process, secret: secret)
    }

    public var baseURL: String { "http://127.0.0.1:\(port)" }

    /// A WebSocket to this node, authenticated as `user` (it has read `auth_success`).
    public func connect(as user: String) async throws -> WebSocketClient {
        try await WebSocketClient.connect(port: port).authenticated(as: user, secret: secret)
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

    /// SIGTERM: the node drains (WebSockets get 1001) and exits.
    public func terminate() {
        process.signal(SIGTERM)
    }

    /// The last lines the node logged.
    public func logTail(_ lines: Int = 20) -> String {
        process.output().split(separator: "\n", omittingEmptySubsequences: false).suffix(lines).joined(separator: "\n")
    }
}

extension WebSocketClient {
    /// Sends `auth` with a token for `user` signed with `secret` and waits for `auth_success`.
    public func authenticated(as user: String, secret: String) async throws -> WebSocketClient {
        let token = TokenMinter(secret: Array(secret.utf8)).mint(subject: user)
        try await send(json: ["type": "auth", "token": token])
        let reply = try await nextJSON(timeout: .seconds(20))
        guard reply["type"] as? String == "auth_success" else {
            throw TestFailure("expected auth_success, got \(reply)")
        }
        return self
    }
}
