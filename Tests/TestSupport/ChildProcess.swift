#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Synchronization

/// A program the tests start (redis-server, nginx, a chorus node) and always stop.
///
/// Started with `posix_spawn` and no pipes: output goes to a log file, every other descriptor of
/// the test process is closed in the child (`posix_spawn_file_actions_addclosefrom_np`: SwiftNIO's
/// sockets are not close-on-exec), so no connection of the tests and no file descriptor of one
/// child leaks into another, and nothing here ever blocks a thread of Swift's cooperative
/// pool (Foundation's `Process` waits on an exec-status pipe and reaps through its own machinery,
/// which stalled parallel tests here). Waiting polls `waitpid(WNOHANG)` with `Task.sleep`.
///
/// Every child dies with the test process: it is started through util-linux's `setpriv
/// --pdeathsig KILL`, which sets the parent-death signal in the child between fork and exec
/// (what `posix_spawn` itself cannot do) and then execs the program in place, so ``pid`` is the
/// program's. A test process that crashes or is killed leaves no redis, postgres, nginx or node
/// behind. Children are started from ``SpawnThread``, because Linux sends that signal when the
/// *thread* that forked the child ends.
public final class ChildProcess: Sendable {
    public let pid: pid_t
    public let log: URL
    /// The exit status, once reaped.
    private let status = Mutex<Int32?>(nil)

    /// `setpriv`, found once.
    private static let setpriv = Result {
        try Executable.find("setpriv", hint: "install util-linux (Debian: apt-get install -y util-linux)")
    }

    /// glibc's `posix_spawn_file_actions_addclosefrom_np` (2.34 and later), which Swift's Glibc
    /// module does not export: found by name.
    private static let addCloseFrom: (@convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32)? = {
        guard let process = dlopen(nil, RTLD_NOW), let symbol = dlsym(process, "posix_spawn_file_actions_addclosefrom_np") else { return nil }
        return unsafeBitCast(symbol, to: (@convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32).self)
    }()

    /// Starts `executable` with `arguments` from the spawning thread; `environment` is added to
    /// this process's environment. Output (stdout and stderr) is appended to `log`. Throws if
    /// the spawning thread has not started it within `timeout` (it starts children one at a
    /// time, and `posix_spawn` returns only once the child has exec'd).
    public static func spawn(
        _ executable: String, _ arguments: [String], environment: [String: String] = [:], log: URL,
        within timeout: Duration = .seconds(60)
    ) async throws -> ChildProcess {
        try await withDeadline(timeout, "starting \(executable) (log \(log.lastPathComponent))") {
            try await SpawnThread.run { try ChildProcess(executable, arguments, environment: environment, log: log) }
        }
    }

    /// Only on ``SpawnThread``: see the type's documentation.
    private init(_ program: String, _ programArguments: [String], environment: [String: String], log: URL) throws {
        self.log = log
        let executable = try Self.setpriv.get()
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        var env = ProcessInfo.processInfo.environment
        env.merge(environment) { $1 }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, log.path, O_WRONLY | O_APPEND, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        // Nothing else of this process goes along: SwiftNIO opens its sockets without
        // close-on-exec, so without this every child held a copy of every connection the tests
        // had open when it started (a node restarted under 600 WebSockets held all 600): a
        // connection a test closed stayed open at nginx and the node, which went on sending
        // into it.
        guard let closeFrom = Self.addCloseFrom, closeFrom(&actions, 3) == 0 else {
            throw TestFailure("cannot start \(program): posix_spawn_file_actions_addclosefrom_np (glibc 2.34 or later) is missing")
        }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // Children start with default signal handling (the test process may ignore SIGPIPE).
        var defaults = sigset_t()
        sigemptyset(&defaults)
        sigaddset(&defaults, SIGPIPE)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attributes, &empty)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))

        let arguments = ["--pdeathsig", "KILL", "--", program] + programArguments
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        let envp = env.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var pid: pid_t = 0
        let result = posix_spawn(&pid, executable, &actions, &attributes, argv, envp)
        guard result == 0 else {
            throw TestFailure("cannot start \(program): \(String(cString: strerror(result)))")
        }
        self.pid = pid
    }

    /// The exit status once the child has ended (a signal number is reported as 128 + signal).
    public var exitStatus: Int32? {
        status.withLock { status in
            if let status { return status }
            var raw: Int32 = 0
            guard waitpid(pid, &raw, WNOHANG) == pid else { return nil }
            let signal = raw & 0x7f
            status = signal == 0 ? (raw >> 8) & 0xff : 128 + signal
            return status
        }
    }

    public var isRunning: Bool { exitStatus == nil }

    public func signal(_ signal: Int32) {
        if isRunning { kill(pid, signal) }
    }

    /// Waits until the child ends; nil if it is still running after `timeout`, or at once when
    /// the waiting task is cancelled (a cancelled `Task.sleep` returns at once: polling on would
    /// spin until the deadline).
    @discardableResult
    public func wait(timeout: Duration = .seconds(10)) async -> Int32? {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline, !Task.isCancelled {
            if let exitStatus { return exitStatus }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return exitStatus
    }

    /// SIGTERM, then SIGKILL if the child has not ended within `grace` (at once in a cancelled
    /// task); the exit status, nil when even SIGKILL has not ended it within 5 s.
    @discardableResult
    public func stop(grace: Duration = .seconds(5)) async -> Int32? {
        signal(SIGTERM)
        if let status = await wait(timeout: grace) { return status }
        signal(SIGKILL)
        return await wait(timeout: .seconds(5))
    }

    /// What the child has written so far.
    public func output() -> String {
        (try? String(contentsOf: log, encoding: .utf8)) ?? ""
    }

    /// Whether the process has written `line` to its log, waiting up to `timeout` for it: what
    /// the test observed (a refusal, a flood's connections completed by the kernel) does not
    /// order the line before it, and on a loaded machine the line may come a moment later.
    public func logged(_ line: String, within timeout: Duration = .seconds(30)) async -> Bool {
        await eventually(within: timeout) { output().contains(line) }
    }

    deinit {
        if exitStatus == nil {
            kill(pid, SIGKILL)
            var raw: Int32 = 0
            waitpid(pid, &raw, 0)
        }
    }
}
