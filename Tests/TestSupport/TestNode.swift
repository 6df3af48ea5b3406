import ChorusClient
import Foundation
import Logging
import Node

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
public func withNode<T: Sendable>(
    _ environment: [String: String] = [:], _ body: (TestNode) async throws -> T
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
    let port = await node.httpPort()
    do {
        let result = try await body(TestNode(node: node, port: port))
        await node.shutdown()
        try await running.value
        return result
    } catch {
        await node.shutdown()
        _ = try? await running.value
        throw error
    }
}

/// A test precondition that did not hold.
public struct TestFailure: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
