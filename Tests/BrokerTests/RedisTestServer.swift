import Foundation
import Synchronization
import Testing
import TestSupport

@testable import Broker

#if canImport(Glibc)
import Glibc
#endif

/// A real `redis-server` on a free loopback port, for one test.
///
/// Created stopped (so a test can start a node while Redis is down), started with ``start()``
/// and waited for with `PING`; ``kill()`` stops it abruptly (SIGKILL), ``start()`` brings it
/// back on the same port. It is always stopped: by the test, by ``RedisTest/withServers(_:started:_:)``
/// when the test throws, and at the latest when the object is released.
///
/// Waiting never blocks a thread of Swift's cooperative pool (polls use `Task.sleep`, the
/// process is a ``ChildProcess`` started on its spawning thread, and Redis commands, which
/// block, run on a thread of their own): a blocked pool starves everything else the tests run,
/// the nodes' `shutdown()` included. The log is kept under `.build/test-logs` (``TestLogs``).
final class RedisTestServer {
    let port: Int
    /// Extra `redis-server` arguments (`--requirepass`, `--user ...`).
    let arguments: [String]
    /// The credentials the readiness check and ``command(_:)`` use.
    let user: String?
    let password: String?
    private var process: ChildProcess?

    init(arguments: [String] = [], user: String? = nil, password: String? = nil) throws {
        port = try LoopbackPort.reserve()  // shared with the cluster fixture: never handed out twice
        self.arguments = arguments
        self.user = user
        self.password = password
    }

    deinit {
        killNow()
    }

    /// The server's URL, with the credentials given at init.
    var url: RedisURL { RedisURL(host: "127.0.0.1", port: port, user: user, password: password) }

    var isRunning: Bool { process?.isRunning ?? false }

    /// Starts `redis-server` (found on `PATH`; no persistence, loopback only) and waits until
    /// it answers PING. The process is started, and every PING sent, off Swift's cooperative pool.
    func start() async throws {
        precondition(process == nil, "already started")
        let binary = try Executable.find("redis-server", hint: "install Redis (Debian: apt-get install -y redis-server)")
        let log = try TestLogs.folder("redis").appendingPathComponent("redis-\(port).log")
        let process = try await ChildProcess.spawn(
            binary,
            [
                "--port", "\(port)", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                "--daemonize", "no", "--loglevel", "warning",
            ] + arguments,
            log: log)
        self.process = process

        let deadline = ContinuousClock.now + .seconds(10)
        let url = self.url
        while ContinuousClock.now < deadline {
            guard process.isRunning else {
                self.process = nil
                throw RedisTestServerError("redis-server on port \(port) exited at start: \(process.output())")
            }
            let answered = (try? await onOwnThread {
                try RedisConnection(connectingTo: url, timeout: .milliseconds(200)).command(["PING"]) == .status("PONG")
            }) ?? false
            if answered { return }
            try await Task.sleep(for: .milliseconds(20))  // polling for readiness, bounded by the deadline
        }
        await kill()
        throw RedisTestServerError("redis-server on port \(port) did not answer PING within 10 s")
    }

    /// Stops the server at once, like a crash (SIGKILL), and waits (up to 5 s) until it is gone.
    func kill() async {
        guard let process else { return }
        killNow()
        await process.wait(timeout: .seconds(5))
    }

    /// Sends SIGKILL without waiting (for cleanup paths that cannot await). The kernel releases
    /// the port as the process dies; Foundation reaps it.
    func killNow() {
        guard let process else { return }
        self.process = nil
        process.signal(SIGKILL)
    }

    /// Freezes the server (SIGSTOP): connections stay open but nothing is answered.
    func pause() {
        process?.signal(SIGSTOP)
    }

    /// Thaws a paused server (SIGCONT).
    func resume() {
        process?.signal(SIGCONT)
    }

    /// Sends one command on a fresh connection (for `PUBLISH` of garbage, `PUBSUB CHANNELS`, ...),
    /// from a thread of its own: the connection blocks.
    func command(_ arguments: [String]) async throws -> RedisReply {
        let url = self.url
        return try await onOwnThread { try RedisConnection(connectingTo: url, timeout: .seconds(2)).command(arguments) }
    }

    /// The channels with at least one subscriber that match `glob`.
    func activeChannels(matching glob: String = "*") async throws -> Set<String> {
        guard case .array(let items) = try await command(["PUBSUB", "CHANNELS", glob]) else { return [] }
        return Set(items.compactMap(\.string))
    }
}

struct RedisTestServerError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
