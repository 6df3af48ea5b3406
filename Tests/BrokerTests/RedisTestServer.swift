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
    /// TLS only (`--port 0 --tls-port <port>`) with these certificates; with
    /// `clientCertificates`, clients must present one (`tls-auth-clients yes`).
    let tls: (certificates: TestCertificates, clientCertificates: Bool)?
    private var process: ChildProcess?

    /// The host of ``url``: `127.0.0.1`, or `localhost` for a certificate that names only that.
    let host: String

    init(
        arguments: [String] = [], user: String? = nil, password: String? = nil,
        tls: (certificates: TestCertificates, clientCertificates: Bool)? = nil, host: String = "127.0.0.1"
    ) throws {
        port = try LoopbackPort.reserve()  // shared with the cluster fixture: never handed out twice
        self.host = host
        self.arguments = arguments
        self.user = user
        self.password = password
        self.tls = tls
    }

    deinit {
        killNow()
    }

    /// The server's URL, with the credentials given at init; for a TLS server `rediss://`,
    /// trusting the test's authority and presenting its client certificate when required.
    var url: RedisURL {
        RedisURL(
            host: host, port: port, user: user, password: password,
            tls: tls.map { tls in
                RedisTLS(
                    caFile: tls.certificates.authority,
                    certificateFile: tls.clientCertificates ? tls.certificates.clientCertificate : nil,
                    keyFile: tls.clientCertificates ? tls.certificates.clientKey : nil)
            })
    }

    /// The listening arguments: a plain port, or a TLS port alone.
    private var listening: [String] {
        guard let (certificates, clientCertificates) = tls else { return ["--port", "\(port)"] }
        return [
            "--port", "0", "--tls-port", "\(port)", "--tls-cert-file", certificates.serverCertificate,
            "--tls-key-file", certificates.serverKey, "--tls-ca-cert-file", certificates.authority,
            "--tls-auth-clients", clientCertificates ? "yes" : "no",
        ]
    }

    /// One command on a fresh connection, blocking (hiredis, or a NIO channel for TLS).
    private static func blockingCommand(_ url: RedisURL, _ arguments: [String], timeout: Duration) throws -> RedisReply {
        try RedisRequestConnections.open(url, timeout: timeout, clientName: nil).command(arguments.map { Array($0.utf8) })
    }

    /// Starts `redis-server` (found on `PATH`; no persistence, loopback only) and waits until
    /// it answers PING. The process is started, and every PING sent, off Swift's cooperative pool.
    func start() async throws {
        precondition(process == nil, "already started")
        let binary = try Executable.find("redis-server", hint: "install Redis (Debian: apt-get install -y redis-server)")
        let log = try TestLogs.folder("redis").appendingPathComponent("redis-\(port).log")
        let process = try await ChildProcess.spawn(
            binary,
            listening + [
                "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--daemonize", "no", "--loglevel", "warning",
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
                try Self.blockingCommand(url, ["PING"], timeout: .milliseconds(200)) == .status("PONG")
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

    /// Closes the connection of the client named `name` (`CLIENT KILL ID`), as a network
    /// failure would.
    func killClient(named name: String) async throws {
        let clients = try #require(try await command(["CLIENT", "LIST"]).string)
        let id = try #require(
            clients.split(separator: "\n").first { $0.contains("name=\(name) ") }?
                .split(separator: " ").first { $0.hasPrefix("id=") }?.dropFirst(3))
        _ = try await command(["CLIENT", "KILL", "ID", String(id)])
    }

    /// Sends one command on a fresh connection (for `PUBLISH` of garbage, `PUBSUB CHANNELS`, ...),
    /// from a thread of its own: the connection blocks.
    func command(_ arguments: [String]) async throws -> RedisReply {
        let url = self.url
        return try await onOwnThread { try Self.blockingCommand(url, arguments, timeout: .seconds(2)) }
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
