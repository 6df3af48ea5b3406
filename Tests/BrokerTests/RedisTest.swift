import Foundation
import Testing
import TestSupport

@testable import Broker

/// Helpers shared by the Redis test suites (servers, nodes, bounded waits).
enum RedisTest {
    /// Runs `body` with `count` fresh Redis servers (made by `make`), started unless `started`
    /// is false, and stops them afterwards whatever happens.
    static func withServers<Result>(
        _ count: Int = 1, started: Bool = true, make: () throws -> RedisTestServer = { try RedisTestServer() },
        _ body: ([RedisTestServer]) async throws -> Result
    ) async throws -> Result {
        let servers = try (0..<count).map { _ in try make() }
        do {
            if started {
                for server in servers { try await server.start() }
            }
            let result = try await body(servers)
            for server in servers { await server.kill() }
            return result
        } catch {
            for server in servers { await server.kill() }
            throw error
        }
    }

    /// Runs `body` with one started node per name on `urls`, and shuts them all down afterwards.
    static func withNodes<Result>(
        _ names: [String], urls: [RedisURL], _ body: ([RedisTestNode]) async throws -> Result
    ) async throws -> Result {
        let nodes = names.map { RedisTestNode($0, urls: urls) }
        return try await shuttingDown(nodes) { try await body(nodes) }
    }

    /// Runs `body`, then shuts `nodes` down, also when `body` throws.
    static func shuttingDown<Result>(_ nodes: [RedisTestNode], _ body: () async throws -> Result) async throws -> Result {
        let result: Result
        do {
            result = try await body()
        } catch {
            try? await shutDown(nodes)  // the body's error is the one to report
            throw error
        }
        try await shutDown(nodes)
        return result
    }

    /// Shuts `nodes` down, each bounded so a shutdown that hangs fails the test instead of
    /// running into the suite's time limit. Every node is shut down even when an earlier one
    /// fails; the first failure is thrown.
    private static func shutDown(_ nodes: [RedisTestNode]) async throws {
        var failure: (any Error)?
        for node in nodes {
            do {
                try await withDeadline(.seconds(30), "shutdown of node \(node.id)") { await node.adapter.shutdown() }
            } catch {
                failure = failure ?? error
            }
        }
        if let failure { throw failure }
    }

    /// Polls `condition` every 10 ms until it holds or `timeout` passes; the result of the last
    /// check (at once in a cancelled task, whose sleeps would not wait).
    static func eventually(within timeout: Duration = .seconds(10), _ condition: () -> Bool) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline, !Task.isCancelled {
            if condition() { return true }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return condition()
    }

    /// Waits until every node is connected with its interests confirmed by Redis.
    static func settle(_ nodes: [RedisTestNode], within timeout: Duration = .seconds(10)) async throws {
        let settled = await eventually(within: timeout) { nodes.allSatisfy(\.adapter.isSettled) }
        try #require(settled, "nodes did not connect and subscribe within \(timeout)")
    }

    static func topic(_ name: String) -> Interest { .topic(try! Topic(name)) }
    static func pattern(_ text: String) -> Interest { .pattern(try! TopicPattern(text)) }
}
