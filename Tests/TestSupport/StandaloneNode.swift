import ChorusClient
import Foundation
import Node
import Testing

/// Runs `body` against one `chorus` node running as a child process (the built binary, see
/// ``Executable/chorus()``) with the memory adapter and an in-memory database, on a port of its
/// own choosing; stops it afterwards, also when `body` throws, and records an issue unless it
/// exited cleanly (``NodeProcess/checkExit(sourceLocation:)``). Its log stays under
/// `.build/test-logs` (``TestLogs``). For tests that watch the node
/// process itself, such as its resident memory. `environment` is added to (and overrides) the
/// node's environment; tokens are signed with ``Cluster/secret``.
public func withNodeProcess<T>(
    _ environment: [String: String] = [:], sourceLocation: SourceLocation = #_sourceLocation,
    _ body: (NodeProcess) async throws -> T
) async throws -> T {
    let binary = try Executable.chorus()
    let directory = try TestLogs.folder("node")
    var env = [
        "JWT_SECRET": Cluster.secret, "API_KEY": Cluster.apiKey, "NODE_ID": "node-1",
        "HTTP_HOST": "127.0.0.1", "LOG_LEVEL": "info",
        "DATABASE_URL": "sqlite::memory:", "AUTH_BCRYPT_COST": "4", "DRAIN_TIMEOUT": "5000",
    ]
    env.merge(environment) { $1 }
    let node = try await NodeProcess.start(
        id: "node-1", binary: binary, environment: env, secret: Cluster.secret,
        log: directory.appendingPathComponent("node-1.log"))
    do {
        try await node.waitUntilReady()
        let result = try await body(node)
        if node.process.isRunning { await node.stop() }
        node.checkExit(sourceLocation: sourceLocation)
        return result
    } catch {
        print("node log kept in \(directory.path) after: \(error)\n\(node.logTail())")
        if node.process.isRunning { await node.stop() }
        node.checkExit(sourceLocation: sourceLocation)
        throw error
    }
}

extension NodeProcess {
    /// A token for `user`, signed with the node's secret (for clients that send it themselves).
    public func token(_ user: String) -> String {
        TokenMinter(secret: Array(Cluster.secret.utf8)).mint(subject: user)
    }

    /// The node's resident memory now (`VmRSS`), in bytes.
    public func residentBytes() throws -> Int {
        try Self.statusField("VmRSS", pid: process.pid)
    }

    /// The node's peak resident memory (`VmHWM`) since it started or since ``resetPeakResident()``.
    public func peakResidentBytes() throws -> Int {
        try Self.statusField("VmHWM", pid: process.pid)
    }

    /// Starts the peak (`VmHWM`) again from the current resident memory (Linux: `clear_refs` 5);
    /// false where that is not possible.
    @discardableResult
    public func resetPeakResident() -> Bool {
        guard let handle = FileHandle(forWritingAtPath: "/proc/\(process.pid)/clear_refs") else { return false }
        defer { try? handle.close() }
        return (try? handle.write(contentsOf: Data("5".utf8))) != nil
    }

    private static func statusField(_ name: String, pid: pid_t) throws -> Int {
        let status = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
        for line in status.split(separator: "\n") where line.hasPrefix(name + ":") {
            let kilobytes = line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first
            if let kilobytes, let value = Int(kilobytes) { return value * 1024 }
        }
        throw TestFailure("/proc/\(pid)/status has no \(name)")
    }
}
