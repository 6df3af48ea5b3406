import Foundation
import Logging
import Node
import Testing
import TestSupport

#if canImport(Glibc)
import Glibc
#endif

/// What an embedder of ``ChorusNode`` sees around `run()`: a node that never listens, and a
/// shutdown asked for before the node started.
@Suite("A node's start and stop, as an embedder sees them")
struct NodeStartStopTests {
    static func node(port: Int = 0) throws -> ChorusNode {
        let configuration = try NodeConfiguration(environment: [
            "JWT_SECRET": TestNode.secret, "HTTP_HOST": "127.0.0.1", "HTTP_PORT": "\(port)", "NODE_ID": "start-stop",
            "LOG_LEVEL": "critical",
        ])
        return try ChorusNode(configuration: configuration, logger: Logger(label: "test.start-stop"))
    }

    @Test("httpPort() of a node whose run() ended without listening (its port taken) throws instead of waiting forever")
    func portOfNodeThatNeverListened() async throws {
        let (holder, port) = try LoopbackPort.taken()
        defer { close(holder) }
        let node = try Self.node(port: port)
        let asked = Task { try await node.httpPort() }  // waiting before run() fails
        let run = await Task { try await node.run() }.result
        #expect(throws: (any Error).self, "run() reports the taken port") { try run.get() }
        let answer = try await withDeadline(.seconds(30), "httpPort() answers once run() ended") { await asked.result }
        #expect(throws: NodeNotListening.self) { try answer.get() }
        await #expect(throws: NodeNotListening.self) { try await node.httpPort() }
    }

    @Test("shutdown() before run() has started its services is kept: run() starts and stops cleanly")
    func shutdownBeforeRun() async throws {
        let node = try Self.node()
        await node.shutdown()
        try await withDeadline(.seconds(60), "run() ends after an earlier shutdown()") { try await node.run() }
    }
}
