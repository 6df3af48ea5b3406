import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A real PostgreSQL server, a child process on a reserved loopback port, in a data directory
/// of its own that is removed when the server stops (its log is kept: ``logFile``).
///
/// ``start(within:)`` makes the data directory (a copy of one `initdb` run per test process,
/// which takes seconds), starts `postgres` on 127.0.0.1 only, with its socket in the data
/// directory and fsync off, and waits until `pg_isready` says it accepts connections.
/// ``createDatabase(_:)`` runs `createdb`; ``stop()`` shuts it down (SIGINT, PostgreSQL's fast
/// shutdown, then SIGKILL). The login is user `chorus` with trust authentication, no password.
///
/// `initdb` and `postgres` refuse to run as root: as root, they run as the `postgres` user
/// (Debian's package makes it) through `setpriv`, which execs in place, so the child's pid is the
/// server's. Every wait polls with `Task.sleep`; nothing here blocks a thread of the cooperative pool.
public final class PostgresProcess: Sendable {
    public let port: Int
    /// The data directory, removed when the server stops.
    public let directory: URL
    /// The server's log, kept under `.build/test-logs` (see ``TestLogs``).
    public let logFile: URL
    public static let user = "chorus"
    private let installation: Installation
    private let process = Mutex<ChildProcess?>(nil)

    /// Where the binaries are and whom to run the server as.
    private struct Installation: Sendable {
        /// `/usr/lib/postgresql/15/bin`, say.
        let binaries: String
        /// `setpriv`, and the uid and gid of `postgres`, when this process runs as root.
        let runAs: (setpriv: String, uid: uid_t, gid: gid_t)?

        static func find() throws -> Installation {
            let roots = (try? FileManager.default.contentsOfDirectory(atPath: "/usr/lib/postgresql")) ?? []
            let versions = roots.compactMap(Int.init).sorted(by: >)
            let override = ProcessInfo.processInfo.environment["POSTGRES_BIN"].map { [$0] } ?? []
            let candidates = override + versions.map { "/usr/lib/postgresql/\($0)/bin" }
            guard let binaries = candidates.first(where: {
                FileManager.default.isExecutableFile(atPath: "\($0)/initdb")
                    && FileManager.default.isExecutableFile(atPath: "\($0)/postgres")
            }) else {
                throw TestFailure(
                    "PostgreSQL server binaries not found in /usr/lib/postgresql/*/bin (or POSTGRES_BIN): "
                        + "install them (Debian: apt-get install -y postgresql)")
            }
            guard geteuid() == 0 else { return Installation(binaries: binaries, runAs: nil) }
            guard let (uid, gid) = account("postgres") else {
                throw TestFailure("running as root, and PostgreSQL refuses root: there is no 'postgres' user to run it as "
                    + "(Debian's postgresql package makes one)")
            }
            let setpriv = try Executable.find("setpriv", hint: "install util-linux (Debian: apt-get install -y util-linux)")
            return Installation(binaries: binaries, runAs: (setpriv, uid, gid))
        }

        /// The uid and gid of `name`. `getpwnam_r`, not `getpwnam`: the latter returns a static
        /// buffer that a lookup on another thread (Foundation asks for root's home) overwrites.
        private static func account(_ name: String) -> (uid_t, gid_t)? {
            var entry = passwd()
            var found: UnsafeMutablePointer<passwd>?
            var buffer = [CChar](repeating: 0, count: 16_384)
            guard getpwnam_r(name, &entry, &buffer, buffer.count, &found) == 0, found != nil else { return nil }
            return (entry.pw_uid, entry.pw_gid)
        }

        /// The executable and arguments that run `program` as the server's user.
        func command(_ program: String, _ arguments: [String]) -> (String, [String]) {
            let path = "\(binaries)/\(program)"
            guard let runAs else { return (path, arguments) }
            // The uid change clears the parent-death signal ``ChildProcess`` set: set it again.
            return (
                runAs.setpriv,
                ["--reuid=\(runAs.uid)", "--regid=\(runAs.gid)", "--clear-groups", "--pdeathsig", "KILL", "--", path]
                    + arguments
            )
        }

        /// Makes the directory `url` (not its contents) the server's user's, so that `initdb`
        /// may create the data directory in it.
        func handOver(_ url: URL) throws {
            guard let runAs else { return }
            guard chown(url.path, runAs.uid, runAs.gid) == 0 else {
                throw TestFailure("chown \(url.path): \(String(cString: strerror(errno)))")
            }
        }
    }

    private init(installation: Installation) throws {
        self.installation = installation
        self.port = try LoopbackPort.reserve()
        self.directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("chorus-pg-\(UUID().uuidString.prefix(8).lowercased())")
        self.logFile = try TestLogs.folder("postgres").appendingPathComponent("postgres.log")
    }

    /// A started server; stop it with ``stop()`` (or use ``withServer(within:_:)``).
    public static func start(within timeout: Duration = .seconds(60)) async throws -> PostgresProcess {
        let server = try PostgresProcess(installation: try Installation.find())
        do {
            try await server.start(within: timeout)
        } catch {
            await server.stop()
            throw error
        }
        return server
    }

    /// Runs `body` with a started server and stops it afterwards, whatever happens.
    public static func withServer<Result>(
        within timeout: Duration = .seconds(60), _ body: (PostgresProcess) async throws -> Result
    ) async throws -> Result {
        let server = try await start(within: timeout)
        do {
            let result = try await body(server)
            await server.stop()
            return result
        } catch {
            await server.stop()
            throw error
        }
    }

    /// `postgres://chorus@127.0.0.1:<port>/<database>`, a `DATABASE_URL`.
    public func url(database: String) -> String { "postgres://\(Self.user)@127.0.0.1:\(port)/\(database)" }

    public var isRunning: Bool { process.withLock { $0?.isRunning ?? false } }

    /// Creates a database (`createdb`); throws with its output when that fails.
    public func createDatabase(_ name: String, timeout: Duration = .seconds(30)) async throws {
        let output = try await runClient("createdb", ["-h", "127.0.0.1", "-p", "\(port)", "-U", Self.user, name], timeout: timeout)
        guard output.status == 0 else { throw TestFailure("createdb \(name) on port \(port): \(output.text)") }
    }

    /// Stops the server (SIGINT: fast shutdown, clients are disconnected; SIGKILL if it is still
    /// running 10 s later) and removes its directory.
    public func stop() async {
        await interrupt()
        let directory = self.directory
        _ = try? await onOwnThread { try? FileManager.default.removeItem(at: directory) }
    }

    /// Freezes the server (SIGSTOP: its sockets stay open and nothing answers, as in a hung VM or
    /// a network partition) until ``thaw()``; ``stop()`` thaws it first.
    public func freeze() {
        signalAll(SIGSTOP)
    }

    public func thaw() {
        signalAll(SIGCONT)
    }

    /// The postmaster and its children: each connection is served by a backend process of its own.
    private func signalAll(_ signal: Int32) {
        guard let postmaster = process.withLock({ $0 })?.pid else { return }
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        for entry in entries {
            guard let pid = pid_t(entry),
                  let stat = try? String(contentsOfFile: "/proc/\(entry)/stat", encoding: .utf8),
                  let afterName = stat.range(of: ") ", options: .backwards)
            else { continue }
            // Fields after the command name: state, then the parent's pid.
            let fields = stat[afterName.upperBound...].split(separator: " ")
            if fields.count > 1, pid_t(fields[1]) == postmaster { kill(pid, signal) }
        }
        kill(postmaster, signal)
    }

    /// Stops the server like ``stop()`` but keeps its data, for ``restart(within:)`` (an outage).
    public func interrupt() async {
        guard let running = process.withLock({ $0 }) else { return }
        running.signal(SIGCONT)
        running.signal(SIGINT)
        if await running.wait(timeout: .seconds(10)) == nil {
            running.signal(SIGKILL)
            await running.wait(timeout: .seconds(10))
        }
    }

    /// Starts the server again on the same port and data after ``interrupt()``, and waits until
    /// it accepts connections.
    public func restart(within timeout: Duration = .seconds(60)) async throws {
        guard !isRunning else { throw TestFailure("postgres on port \(port) is running") }
        try await launch(within: timeout)
    }

    /// What the server has logged so far.
    public func log() -> String { process.withLock { $0?.output() } ?? "" }

    // MARK: - Starting

    private func start(within timeout: Duration) async throws {
        let template = try await Self.template(installation)
        let data = directory.appendingPathComponent("data")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let copy = try await ChildProcess.spawn(
            try Executable.find("cp", hint: "coreutils"), ["-a", template.path, data.path],
            log: directory.appendingPathComponent("cp.log"))
        // `cp -a` (as root) keeps the template's owner: the server's user.
        guard await copy.wait(timeout: .seconds(60)) == 0 else {
            throw TestFailure("copying the PostgreSQL template \(template.path) failed: \(copy.output())")
        }
        try await launch(within: timeout)
    }

    /// Starts `postgres` on the data directory and waits until `pg_isready` says it accepts connections.
    private func launch(within timeout: Duration) async throws {
        let data = directory.appendingPathComponent("data")
        let (executable, arguments) = installation.command(
            "postgres", ["-D", data.path, "-p", "\(port)", "-h", "127.0.0.1", "-k", data.path, "-F"])
        let started = try await ChildProcess.spawn(executable, arguments, log: logFile)
        process.withLock { $0 = started }

        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            guard started.isRunning else {
                throw TestFailure("postgres on port \(port) exited at start: \(started.output())")
            }
            let probe = try await runClient(
                "pg_isready", ["-h", "127.0.0.1", "-p", "\(port)", "-U", Self.user, "-d", "postgres", "-t", "2"],
                timeout: .seconds(10))
            if probe.status == 0 { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw TestFailure("postgres on port \(port) did not accept connections within \(timeout): \(started.output())")
    }

    /// Runs a client program of the installation (as this process's user: clients may be root).
    private func runClient(_ program: String, _ arguments: [String], timeout: Duration) async throws -> (status: Int32, text: String) {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let log = directory.appendingPathComponent("\(program)-\(UUID().uuidString.prefix(8)).log")
        defer { try? FileManager.default.removeItem(at: log) }
        let child = try await ChildProcess.spawn("\(installation.binaries)/\(program)", arguments, log: log)
        guard let status = await child.wait(timeout: timeout) else {
            await child.stop(grace: .milliseconds(100))
            throw TestFailure("\(program) \(arguments.joined(separator: " ")) did not finish within \(timeout)")
        }
        return (status, child.output())
    }

    // MARK: - The template

    /// One `initdb` per test process, copied for each server.
    private static let templateRun = Mutex<Task<URL, any Error>?>(nil)

    private static func template(_ installation: Installation) async throws -> URL {
        let task = templateRun.withLock { existing in
            if let existing { return existing }
            let made = Task { try await makeTemplate(installation) }
            existing = made
            return made
        }
        return try await task.value
    }

    private static func makeTemplate(_ installation: Installation) async throws -> URL {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("chorus-pg-template-\(getpid())")
        try? FileManager.default.removeItem(at: root)
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        try installation.handOver(root)
        // Removed when the test process exits (a C callback: it may capture nothing, so it
        // recomputes the path from the pid).
        atexit {
            let root = FileManager.default.temporaryDirectory.appendingPathComponent("chorus-pg-template-\(getpid())")
            try? FileManager.default.removeItem(at: root)
        }
        let data = root.appendingPathComponent("data")
        let (executable, arguments) = installation.command(
            "initdb",
            ["-D", data.path, "-A", "trust", "-U", user, "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions"])
        let initdb = try await ChildProcess.spawn(executable, arguments, log: root.appendingPathComponent("initdb.log"))
        guard let status = await initdb.wait(timeout: .seconds(120)) else {
            await initdb.stop()
            throw TestFailure("initdb did not finish within 120 s: \(initdb.output())")
        }
        guard status == 0 else { throw TestFailure("initdb failed (exit \(status)): \(initdb.output())") }
        return data
    }
}
