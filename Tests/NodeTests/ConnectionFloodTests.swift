import ChorusClient
import Foundation
import Node
import Testing
import TestSupport

#if canImport(Glibc)
import Glibc
#endif

/// A client that opens TCP connections until the node takes no more, and holds them idle,
/// against a real node with a low open-file limit.
@Suite("A flood of idle TCP connections")
struct ConnectionFloodTests {
    private func log() throws -> URL {
        try TestLogs.folder("chorus").appendingPathComponent("chorus.log")
    }

    /// A node with 200 descriptors: room for about 170 TCP connections (HTTP_MAX_CONNECTIONS
    /// by default leaves what is open at start and a sixteenth of a small limit), 150 of them
    /// WebSockets.
    private func startNode(_ environment: [String: String]) async throws -> (ChildProcess, Int) {
        var env = [
            "JWT_SECRET": TestNode.secret, "HTTP_HOST": "127.0.0.1", "HTTP_PORT": "0", "LOG_LEVEL": "info",
            "DATABASE_URL": "none", "WEBSOCKET_MAX_CONNECTIONS_PER_IP": "1000",
        ]
        env.merge(environment) { $1 }
        let process = try await ChildProcess.spawn(
            "/usr/bin/prlimit", ["--nofile=200:200", try Executable.chorus()], environment: env, log: log())
        return (process, try await NodeProcess.readyPort(of: process))
    }

    /// Opens connections to `port` until one is not established within a second (the node and
    /// the kernel's listen backlog take no more), at most `limit`; returns the open sockets.
    private func flood(_ port: Int, limit: Int = 3000) -> [Int32] {
        var sockets: [Int32] = []
        while sockets.count < limit {
            // Close-on-exec: processes other tests spawn meanwhile (postgres counts its inherited
            // descriptors against its own limit) must not inherit hundreds of these.
            let socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            guard socket >= 0 else { break }
            var timeout = timeval(tv_sec: 1, tv_usec: 0)  // bounds connect(2) on Linux
            setsockopt(socket, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            guard LoopbackPort.withAddress(port, { Glibc.connect(socket, $0, $1) }) == 0 else {
                close(socket)
                break
            }
            sockets.append(socket)
        }
        return sockets
    }

    /// A WebSocket authenticated as `user` (it has read `auth_success`).
    private func connect(_ port: Int, as user: String) async throws -> WebSocketClient {
        let client = try await WebSocketClient.connect(port: port)
        let token = TokenMinter(secret: Array(TestNode.secret.utf8)).mint(subject: user)
        try await client.send(json: ["type": "auth", "token": token])
        let reply = try await client.nextJSON()
        guard reply["type"] as? String == "auth_success" else { throw TestFailure("expected auth_success, got \(reply)") }
        return client
    }

    /// `maxTCPConnections` from the node's "node ready" line.
    static func maxTCPConnections(in log: String) -> Int? {
        guard let range = log.range(of: "maxTCPConnections=") else { return nil }
        return Int(log[range.upperBound...].prefix { $0.isNumber })
    }

    /// CPU time (user and system) the process has used, from /proc/PID/stat.
    private func cpuTime(_ pid: pid_t) throws -> Duration {
        let stat = try String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)
        // Fields after the command name, which is in parentheses and may hold spaces.
        let fields = stat[stat.index(after: stat.lastIndex(of: ")")!)...].split(separator: " ")
        let ticks = Int(fields[11])! + Int(fields[12])!  // utime, stime (fields 14 and 15)
        return .milliseconds(ticks * 1000 / sysconf(Int32(_SC_CLK_TCK)))
    }

    /// GET /health from a new connection, until it answers 200 or `within` has passed.
    private func healthAnswers(_ port: Int, within: Duration) async -> Bool {
        let deadline = ContinuousClock.now + within
        while ContinuousClock.now < deadline {
            if (try? await HTTP.get("http://127.0.0.1:\(port)/health").status) == 200 { return true }
            try? await Task.sleep(for: .milliseconds(200))  // the connection waited in the backlog or was closed
        }
        return false
    }

    @Test(
        "at the node's connection cap, accepting waits instead of spinning: little CPU, subscribers keep receiving, new clients are served once the flood closes",
        .timeLimit(.minutes(3)))
    func floodAtTheCap() async throws {
        let (process, port) = try await startNode(["HTTP_IDLE_TIMEOUT": "600000"])
        defer { process.signal(SIGKILL) }
        try await withFlood(process, port) { sockets in
            let cap = try #require(Self.maxTCPConnections(in: process.output()))
            #expect(cap > 150, "room for the WebSockets and more: \(cap)")
            #expect(sockets > cap, "the node's and the listen backlog's")
            let warning = "connections wait in the listen backlog: the node holds \(cap) connections"
            #expect(await process.logged(warning), "\(process.output().suffix(3000))")
            #expect(!process.output().contains("accept failed"), "the cap comes before the descriptors run out")
        }
    }

    @Test(
        "out of descriptors below the cap (the limit lowered under the running node), accepting pauses instead of spinning on EMFILE, and recovers",
        .timeLimit(.minutes(3)))
    func floodOutOfDescriptors() async throws {
        let (process, port) = try await startNode(["HTTP_IDLE_TIMEOUT": "600000"])
        defer { process.signal(SIGKILL) }
        // The node computed its cap from 200; 120 leaves it short of descriptors well below it.
        let lower = try await ChildProcess.spawn(
            "/usr/bin/prlimit", ["--pid", "\(process.pid)", "--nofile=120:200"], log: log())
        #expect(await lower.wait(timeout: .seconds(20)) == 0, "\(lower.output())")
        // Known, not fixed: in 2 of about 7 full runs (2026-12-07) the node trapped (SIGILL, in a
        // shared library) about a second after the first EMFILE, with no stack (the backtracer
        // needs descriptors too); every run of this test alone passed. Recorded as a known issue
        // when it happens, so that the rest of the suite still reports; see docs/security.md.
        // Only that: the client's connections closed under it. Every expectation still counts.
        try await withKnownIssue("the node can trap when it runs out of descriptors", isIntermittent: true) {
            try await withFlood(process, port) { _ in
                #expect(await process.logged("accept failed"), "\(process.output().suffix(3000))")
                #expect(await process.logged("Too many open files"))
                #expect(await process.logged("pausing accepts"))
            }
        } matching: { issue in
            issue.error.map { "\($0)".contains("I/O on closed channel") } ?? false
        }
    }

    /// With a subscriber and a publisher connected first, floods `port` and holds the flood
    /// while `check` looks at it (given the number of connections made) and the node's CPU is
    /// measured; then closes the flood and expects `/health` to answer a new client.
    private func withFlood(
        _ process: ChildProcess, _ port: Int, _ check: (Int) async throws -> Void
    ) async throws {
        let subscriber = try await connect(port, as: "subscriber")
        let publisher = try await connect(port, as: "publisher")
        try await subscriber.subscribe("flood.room")

        var sockets = flood(port)
        defer { for socket in sockets { close(socket) } }
        try await check(sockets.count)

        // A node spinning on accept uses a whole core (measured before the fix: 4 s of CPU in 8 s
        // with half this flood); an idle one next to nothing. A generous bound for a busy machine.
        let window = Duration.seconds(4)
        let before = try cpuTime(process.pid)
        try await Task.sleep(for: window)  // the measurement window
        let used = try cpuTime(process.pid) - before
        #expect(used < window * 0.3, "the node used \(used) of CPU in \(window) while flooded")

        try await publisher.publish(topic: "flood.room", data: ["text": "still here"])
        #expect(try await subscriber.nextDelivery(timeout: .seconds(20)).data["text"] as? String == "still here")

        for socket in sockets { close(socket) }
        sockets = []
        #expect(await healthAnswers(port, within: .seconds(60)), "a new client is served once the flood has closed")
        await subscriber.close()
        await publisher.close()
        #expect(await process.stop(grace: .seconds(20)) == 0)
        #expect(TestLogs.crashLines(in: process.output()).isEmpty, "\(process.output().suffix(3000))")
    }

    @Test(
        "idle connections held open cannot lock new clients out: HTTP_IDLE_TIMEOUT closes them and frees their places",
        .timeLimit(.minutes(3)))
    func idleFloodTimesOut() async throws {
        let (process, port) = try await startNode(["HTTP_IDLE_TIMEOUT": "1000"])
        defer { process.signal(SIGKILL) }
        let sockets = flood(port)
        defer { for socket in sockets { close(socket) } }
        #expect(sockets.count > (Self.maxTCPConnections(in: process.output()) ?? 0))
        // The flood stays open: its connections are closed by the node, not by the client.
        #expect(await healthAnswers(port, within: .seconds(90)), "\(process.output().suffix(3000))")
        var byte: UInt8 = 0
        // Reads bounded to 20 s, so a connection the node left open fails instead of blocking.
        var timeout = timeval(tv_sec: 20, tv_usec: 0)
        setsockopt(sockets[0], SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        #expect(recv(sockets[0], &byte, 1, 0) == 0, "the node closed an idle connection (EOF)")
        #expect(await process.stop(grace: .seconds(20)) == 0)
        #expect(TestLogs.crashLines(in: process.output()).isEmpty, "\(process.output().suffix(3000))")
    }
}
