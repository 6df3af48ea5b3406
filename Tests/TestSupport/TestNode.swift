import ChorusClient
import Foundation
import Logging
import Node
import Synchronization
import Testing

/// A Chorus node running inside the test process on a free loopback port.
public struct TestNode: Sendable {
    public static let secret = "test-secret-0123456789abcdef"

    public let node: ChorusNode
    public let port: Int

    /// A token for `subject`, signed with the node's secret.
    public func token(_ subject: String, ttl: Duration? = .seconds(3600), grants: Grants? = nil) -> String {
        TokenMinter(secret: Array(Self.secret.utf8)).mint(subject: subject, ttl: ttl, grants: grants)
    }

    /// A WebSocket to this node.
    public func connect(
        path: String = "/ws", headers: [(String, String)] = [], autoPong: Bool = true, receiveBufferSize: Int? = nil
    ) async throws -> WebSocketClient {
        try await WebSocketClient.connect(
            port: port, path: path, headers: headers, autoPong: autoPong, receiveBufferSize: receiveBufferSize)
    }

    /// A WebSocket already authenticated as `user` (it has read `auth_success`).
    public func connect(as user: String, receiveBufferSize: Int? = nil) async throws -> WebSocketClient {
        let client = try await connect(receiveBufferSize: receiveBufferSize)
        try await client.send(json: ["type": "auth", "token": token(user)])
        let reply = try await client.nextJSON()
        guard reply["type"] as? String == "auth_success" else {
            throw TestFailure("expected auth_success, got \(reply)")
        }
        return client
    }

    public var baseURL: String { "http://127.0.0.1:\(port)" }
}

/// Runs `body` against a fresh node configured by `environment` (on top of test defaults), then
/// shuts the node down gracefully and waits for it to stop.
///
/// Every wait is bounded: a node that has not bound its port within `startTimeout` (or whose
/// `run()` ends before it has, as when the port is taken) throws with the reason; a shutdown
/// that takes longer than `DRAIN_TIMEOUT` and 10 s more records an issue, as does a `run()`
/// that ends with an error. (The node runs in this process: a crash or failed assertion in it
/// ends the test run itself.)
public func withNode<T: Sendable>(
    _ environment: [String: String] = [:], startTimeout: Duration = .seconds(60),
    sourceLocation: SourceLocation = #_sourceLocation,
    _ body: (TestNode) async throws -> T
) async throws -> T {
    var env = [
        "JWT_SECRET": TestNode.secret, "HTTP_HOST": "127.0.0.1", "HTTP_PORT": "0", "NODE_ID": "test-node",
        "LOG_LEVEL": "warning", "DATABASE_URL": "sqlite::memory:", "AUTH_BCRYPT_COST": "4",
    ]
    env.merge(environment) { $1 }
    let configuration = try NodeConfiguration(environment: env)
    var logger = Logger(label: "test-node")
    logger.logLevel = configuration.logLevel
    let node = try ChorusNode(configuration: configuration, logger: logger)
    let running = Task { try await node.run() }
    let port = try await boundPort(of: node, running: running, within: startTimeout)
    let result: Result<T, any Error>
    do {
        result = .success(try await body(TestNode(node: node, port: port)))
    } catch {
        result = .failure(error)
    }
    await node.shutdown()
    let stopBound = configuration.drainTimeout + .seconds(10)
    switch await outcome(of: running, within: stopBound) {
    case .none:
        Issue.record("the node did not stop within \(stopBound) of its shutdown", sourceLocation: sourceLocation)
    case .failure(let error)?:
        Issue.record("the node's run() ended with an error: \(error)", sourceLocation: sourceLocation)
    case .success?:
        break
    }
    return try result.get()
}

/// The port `node` listens on, once it does; throws when its `run()` ends first (with its error)
/// or `timeout` passes.
private func boundPort(of node: ChorusNode, running: Task<Void, any Error>, within timeout: Duration) async throws -> Int {
    let racers: [Racer<Result<Int, any Error>>] = [
        { answer in
            do {
                answer(.success(try await node.httpPort()))
            } catch {
                answer(.failure(TestFailure("the node stopped before it listened: \(await running.result)")))
            }
        },
        { answer in
            guard (try? await Task.sleep(for: timeout)) != nil else { return }
            answer(.failure(TestFailure("the node did not listen within \(timeout)")))
        },
    ]
    return try await firstAnswer(racers).get()
}

/// How `running` ended, or nil when it has not within `timeout`.
private func outcome(of running: Task<Void, any Error>, within timeout: Duration) async -> Result<Void, any Error>? {
    let racers: [Racer<Result<Void, any Error>?>] = [
        { answer in answer(await running.result) },
        { answer in
            guard (try? await Task.sleep(for: timeout)) != nil else { return }
            answer(nil)
        },
    ]
    return await firstAnswer(racers)
}

/// One contestant of ``firstAnswer(_:)``: it is handed the way to answer.
private typealias Racer<T> = @Sendable (@escaping @Sendable (T) -> Void) async -> Void

/// The first answer any of `racers` gives (each runs in a task of its own and is handed the
/// way to answer); the others are cancelled, and their answers dropped. A racer that cannot be
/// cancelled (waiting on a continuation) stays suspended, holding what it captured.
private func firstAnswer<T: Sendable>(_ racers: [Racer<T>]) async -> T {
    let tasks = Mutex<[Task<Void, Never>]>([])
    let value = await withCheckedContinuation { (continuation: CheckedContinuation<T, Never>) in
        let waiting = Mutex<CheckedContinuation<T, Never>?>(continuation)
        let answer: @Sendable (T) -> Void = { value in
            waiting.withLock { waiting in
                defer { waiting = nil }
                return waiting
            }?.resume(returning: value)
        }
        tasks.withLock { tasks in tasks = racers.map { racer in Task { await racer(answer) } } }
    }
    tasks.withLock { tasks in tasks.forEach { $0.cancel() } }
    return value
}

/// A test precondition that did not hold.
public struct TestFailure: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
