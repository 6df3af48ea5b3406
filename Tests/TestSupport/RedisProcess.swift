import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A real `redis-server` child process on a reserved loopback port.
///
/// Created stopped; ``start(within:)`` starts it and waits until it answers `PING`; ``kill()``
/// stops it like a crash (SIGKILL); ``start(within:)`` brings it back on the same port.
/// Queries (``command(_:)``, ``subscriberCounts(_:)``, ...) speak RESP on a thread of their own
/// (``RedisWire``); ``cli(_:timeout:)`` runs the real `redis-cli`, as an operator would. Whoever
/// starts the server stops it (``Cluster`` does); a server still running when this object is
/// released is killed by its ``ChildProcess``.
public final class RedisProcess: Sendable {
    /// The server's port: reserved at init, replaced by another if that one turns out to be
    /// taken at the first start (another process may bind a free port before Redis does), and
    /// kept from then on (a restart comes back on the same port).
    public var port: Int { portBox.withLock { $0 } }
    private let portBox: Mutex<Int>
    /// Where the server's and `redis-cli`'s output go.
    public let directory: URL
    private let server: String
    private let client: String
    private let process = Mutex<ChildProcess?>(nil)
    private let runs = Atomic<Int>(0)
    /// Arguments added after the defaults at the next start (later ones win), e.g. AOF on.
    private let extraArguments = Mutex<[String]>([])
    /// Set once the server has answered PING: its port is fixed from then on.
    private let hasRun = Atomic<Bool>(false)

    /// `requirepass` (and `masterauth`, for a replica of a server with the same password);
    /// ``command(_:timeout:)`` and ``cli(_:timeout:)`` authenticate with it.
    public let password: String?

    /// A TLS port beside the plain one (which the test's own queries keep using), with these
    /// certificates; clients need a certificate of their own only with `clientCertificates`
    /// (`tls-auth-clients yes`).
    public let tls: (port: Int, certificates: TestCertificates)?
    private let clientCertificates: Bool

    public init(
        directory: URL, password: String? = nil, tls certificates: TestCertificates? = nil, clientCertificates: Bool = false
    ) throws {
        self.password = password
        self.clientCertificates = clientCertificates
        self.tls = try certificates.map { (try LoopbackPort.reserve(), $0) }
        self.portBox = Mutex(try LoopbackPort.reserve())
        self.directory = directory
        self.server = try Executable.find("redis-server", hint: "install Redis (Debian: apt-get install -y redis-server)")
        self.client = try Executable.find("redis-cli", hint: "install Redis (Debian: apt-get install -y redis-tools)")
    }

    /// `redis://127.0.0.1:<port>`, as a node's `PUBSUB_REDIS_URL` lists it.
    public var url: String { "redis://127.0.0.1:\(port)" }

    /// `rediss://127.0.0.1:<TLS port>` when the server has one.
    public var tlsURL: String? { tls.map { "rediss://127.0.0.1:\($0.port)" } }

    public var isRunning: Bool { process.withLock { $0?.isRunning ?? false } }

    /// Starts the server (no persistence, loopback only) and waits until it answers `PING`.
    public func start(within timeout: Duration = .seconds(20)) async throws {
        var attempts = 0
        while true {
            do {
                try await startOnce(within: timeout)
                hasRun.store(true, ordering: .relaxed)
                return
            } catch is PortTaken where attempts < 5 && !hasRun.load(ordering: .relaxed) {
                // Only before the server has ever run: a restart must keep its port.
                attempts += 1
                let port = try LoopbackPort.reserve()
                portBox.withLock { $0 = port }
            } catch is PortTaken {
                throw TestFailure("redis-server: port \(port) is taken")
            }
        }
    }

    /// Turns the append-only file on in the running server (`CONFIG SET appendonly yes`, which
    /// writes the current data set to it first) and for every later start, and returns once
    /// that first rewrite is done: from then on a restart keeps the data.
    public func enableAppendOnly(within timeout: Duration = .seconds(20)) async throws {
        extraArguments.withLock { $0 = ["--appendonly", "yes", "--appendfsync", "always"] }
        _ = try await command(["CONFIG", "SET", "appendfsync", "always"])
        _ = try await command(["CONFIG", "SET", "appendonly", "yes"])
        let done = await eventually(within: timeout) {
            let info = (try? await self.cli(["INFO", "persistence"])) ?? ""
            return info.contains("aof_enabled:1") && info.contains("aof_rewrite_in_progress:0")
                && !info.contains("aof_rewrite_scheduled:1")
        }
        guard done else { throw TestFailure("redis-server on port \(port): the AOF rewrite did not finish within \(timeout)") }
    }

    /// A first start that found its port taken.
    private struct PortTaken: Error {}

    private func startOnce(within timeout: Duration) async throws {
        guard !isRunning else { throw TestFailure("redis-server on port \(port) is already running") }
        let run = runs.add(1, ordering: .relaxed).newValue
        var serverArguments: [String] = []
        if let password {
            serverArguments = ["--requirepass", password, "--masterauth", password]
            RedisWire.passwords.withLock { $0[port] = password }
        }
        if let (port, certificates) = tls {
            serverArguments += [
                "--tls-port", "\(port)", "--tls-cert-file", certificates.serverCertificate, "--tls-key-file",
                certificates.serverKey, "--tls-ca-cert-file", certificates.authority, "--tls-auth-clients",
                clientCertificates ? "yes" : "no",
                // A replica connects to its master's TLS port over TLS (and announces its own).
                "--tls-replication", "yes",
            ]
        }
        let started = try await ChildProcess.spawn(
            server,
            [
                "--port", "\(port)", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                "--daemonize", "no", "--loglevel", "notice", "--dir", directory.path,
            ] + serverArguments + extraArguments.withLock { $0 },
            log: directory.appendingPathComponent("redis-\(port)-run\(run).log"))
        process.withLock { $0 = started }

        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            guard started.isRunning else {
                if started.output().contains("Address already in use") { throw PortTaken() }
                throw TestFailure("redis-server on port \(port) exited at start: \(started.output())")
            }
            if (try? await command(["PING"], timeout: .seconds(2))) == .simple("PONG") { return }
            try await Task.sleep(for: .milliseconds(20))
        }
        await kill()
        throw TestFailure("redis-server on port \(port) did not answer PING within \(timeout)")
    }

    /// Stops the server at once, like a crash (SIGKILL), and waits until it is gone.
    public func kill() async {
        guard let running = process.withLock({ $0 }) else { return }
        running.signal(SIGKILL)
        await running.wait(timeout: .seconds(10))
    }

    /// Freezes the server (SIGSTOP): its sockets stay open and nothing answers, as in a network
    /// partition, a long fork or a paused VM. ``resume()`` thaws it; a test that pauses must resume.
    public func pause() {
        process.withLock { $0 }?.signal(SIGSTOP)
    }

    /// Thaws a paused server (SIGCONT).
    public func resume() {
        process.withLock { $0 }?.signal(SIGCONT)
    }

    /// Stops the server politely (SIGTERM, then SIGKILL) and waits until it is gone.
    public func stop() async {
        guard let running = process.withLock({ $0 }) else { return }
        await running.stop()
    }

    /// Sends one command on a fresh connection; an error reply throws.
    public func command(_ arguments: [String], timeout: Duration = .seconds(5)) async throws -> RedisValue {
        let reply = try await RedisWire.command(arguments, port: port, timeout: timeout)
        if case .error(let message) = reply {
            throw TestFailure("\(arguments.joined(separator: " ")) on port \(port): \(message)")
        }
        return reply
    }

    /// Runs `redis-cli --raw -p <port> arguments...` and returns its output without the final
    /// newline. Throws when `redis-cli` fails (server down) or Redis answers with an error.
    public func cli(_ arguments: [String], timeout: Duration = .seconds(20)) async throws -> String {
        let run = runs.add(1, ordering: .relaxed).newValue
        let log = directory.appendingPathComponent("redis-cli-\(port)-\(run).out")
        defer { try? FileManager.default.removeItem(at: log) }
        let command = try await ChildProcess.spawn(client, ["-h", "127.0.0.1", "-p", "\(port)", "--raw"]
                + (password.map { ["-a", $0, "--no-auth-warning"] } ?? []) + arguments, log: log)
        guard let status = await command.wait(timeout: timeout) else {
            await command.stop(grace: .milliseconds(100))
            throw TestFailure("redis-cli \(arguments.joined(separator: " ")) did not finish within \(timeout)")
        }
        var output = command.output()
        if output.hasSuffix("\n") { output.removeLast() }
        guard status == 0, !output.hasPrefix("ERR"), !output.hasPrefix("Could not connect") else {
            throw TestFailure("redis-cli -p \(port) \(arguments.joined(separator: " ")): exit \(status): \(output)")
        }
        return output
    }

    /// The channels matching `glob` with at least one subscriber (`PUBSUB CHANNELS`).
    public func activeChannels(matching glob: String = "*") async throws -> Set<String> {
        guard case .array(let items?) = try await command(["PUBSUB", "CHANNELS", glob]) else {
            throw TestFailure("PUBSUB CHANNELS: not an array")
        }
        return Set(items.compactMap(\.text))
    }

    /// How many connections subscribe to each of `channels` (`PUBSUB NUMSUB`, one round trip).
    public func subscriberCounts(_ channels: [String]) async throws -> [String: Int] {
        let reply = try await command(["PUBSUB", "NUMSUB"] + channels)
        guard case .array(let items?) = reply, items.count == 2 * channels.count else {
            throw TestFailure("PUBSUB NUMSUB: unexpected reply \(reply)")
        }
        var counts: [String: Int] = [:]
        for pair in stride(from: 0, to: items.count, by: 2) {
            guard let channel = items[pair].text, case .integer(let count) = items[pair + 1] else {
                throw TestFailure("PUBSUB NUMSUB: unexpected reply \(reply)")
            }
            counts[channel] = count
        }
        return counts
    }

    /// How many pattern subscriptions the server holds over all connections (`PUBSUB NUMPAT`).
    public func patternCount() async throws -> Int {
        guard case .integer(let count) = try await command(["PUBSUB", "NUMPAT"]) else {
            throw TestFailure("PUBSUB NUMPAT: not an integer")
        }
        return count
    }

    /// Publishes `payload` as is onto `channel` with `redis-cli PUBLISH`; the number of
    /// connections that received it.
    @discardableResult
    public func publish(_ payload: String, to channel: String) async throws -> Int {
        let output = try await cli(["PUBLISH", channel, payload])
        guard let receivers = Int(output) else { throw TestFailure("PUBLISH \(channel): unexpected reply \(output)") }
        return receivers
    }
}

extension RedisProcess {
    /// The statuses of `urls` (each a `GET` with `headers`), sent at once while the server is
    /// paused, in the order they were answered: those refused without waiting for Redis come
    /// first, since the server is resumed only once `refusedAtOnce` of them were answered (and
    /// again at the end, so that a failure does not leave it frozen).
    public func statusesWhilePaused(_ urls: [String], headers: [String: String], refusedAtOnce: Int) async throws -> [Int] {
        pause()
        defer { resume() }
        return try await withThrowingTaskGroup(of: Int.self) { group in
            for url in urls { group.addTask { try await HTTP.get(url, headers: headers).status } }
            var statuses: [Int] = []
            for try await status in group {
                statuses.append(status)
                if statuses.count == refusedAtOnce { resume() }
            }
            return statuses
        }
    }
}
