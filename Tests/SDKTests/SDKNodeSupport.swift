import ChorusSDK
import Foundation
import Testing
import TestSupport

/// What the SDK suites share: the node's URL, the SDK configurations they use, the scripted node,
/// and readings of a node's `/stats`.
enum SDKNode {
    static func url(_ node: NodeProcess) -> String { "ws://127.0.0.1:\(node.port)/ws" }

    /// The SDK's default configuration (publish acknowledgements on).
    static func configuration() -> ChorusClient.Configuration {
        ChorusClient.Configuration()
    }

    /// Renews only when the node says the token expired (tests of that path).
    static func renewingOnExpiry() -> ChorusClient.Configuration {
        var configuration = configuration()
        configuration.renewBefore = nil
        return configuration
    }

    /// `scripts/lib/scripted_node.py` playing `scenario`, and the port it listens on.
    static func scriptedNode(_ scenario: String) async throws -> (process: ChildProcess, port: Int) {
        let python = try Executable.find("python3", hint: "install Python 3 and `pip install websockets`")
        let script = Executable.packageRoot.appendingPathComponent("scripts/lib/scripted_node.py").path
        let log = try TestLogs.folder("scripted-node-\(scenario)").appendingPathComponent("node.log")
        let process = try await ChildProcess.spawn(python, [script, scenario], log: log)
        try #require(await eventually { announcedPort(process.output()) != nil || !process.isRunning }, "\(process.output())")
        let port = try #require(announcedPort(process.output()), "\(process.output())")
        return (process, port)
    }

    /// The port of a finished `port N` line: the output may end in the middle of that line
    /// (it came as "port " once, and the test read no number).
    static func announcedPort(_ output: String) -> Int? {
        output.split(separator: "\n", omittingEmptySubsequences: false).dropLast()
            .first { $0.hasPrefix("port ") }.flatMap { Int($0.dropFirst(5)) }
    }

    /// Returns once `watcher` (a task iterating a sequence) has ended: when its sequence
    /// finished, or when the test's time limit cancels it, so a sequence that never finishes
    /// fails the test instead of hanging the run.
    static func ended(_ watcher: Task<Void, Never>) async {
        await withTaskCancellationHandler { await watcher.value } onCancel: { watcher.cancel() }
    }

    /// `subscriptions.total` of the node's `/stats`.
    static func subscriptions(on node: NodeProcess) async throws -> Int? {
        (try await node.stats()["subscriptions"] as? [String: Any])?["total"] as? Int
    }

    /// `connections.total` of the node's `/stats`.
    static func connections(on node: NodeProcess) async throws -> Int? {
        (try await node.stats()["connections"] as? [String: Any])?["total"] as? Int
    }
}
