import ChorusClient
import Foundation
import Node
import Testing
import TestSupport

#if canImport(Glibc)
import Glibc
#endif

@Suite("The chorus executable")
struct ExecutableTests {
    private func log() throws -> URL {
        try TestLogs.folder("chorus").appendingPathComponent("chorus.log")
    }

    @Test(
        "a bad configuration stops the node at start with one line naming the variable (exit 78)",
        arguments: [
            ([:], "JWT_SECRET: not set"),
            (["JWT_SECRET": "0123456789abcdef", "HTTP_PORT": "x"], "HTTP_PORT: expected a whole number, got 'x'"),
            (["JWT_SECRET": "0123456789abcdef", "PUBSUB_REDIS_URL": "localhost"], "PUBSUB_REDIS_URL: expected redis://"),
        ])
    func badConfiguration(environment: [String: String], line: String) async throws {
        var env = environment
        env["JWT_SECRET"] = env["JWT_SECRET"] ?? ""
        let process = try await ChildProcess.spawn(try Executable.chorus(), [], environment: env, log: log())
        #expect(await process.wait(timeout: .seconds(20)) == 78)
        let output = process.output().split(separator: "\n")
        #expect(output.count == 1, "\(output)")
        #expect(output.first?.contains(line) == true, "\(output)")
    }

    @Test("SIGTERM closes WebSockets with 1001 and the process exits 0, with no crash or assertion logged")
    func sigterm() async throws {
        let process = try await ChildProcess.spawn(
            try Executable.chorus(), [],
            environment: [
                "JWT_SECRET": TestNode.secret, "HTTP_HOST": "127.0.0.1", "HTTP_PORT": "0", "LOG_LEVEL": "info",
                "DATABASE_URL": "sqlite::memory:",
            ],
            log: log())
        defer { process.signal(SIGKILL) }
        let connected = try await WebSocketClient.connect(port: try await NodeProcess.readyPort(of: process))
        process.signal(SIGTERM)
        #expect(try await connected.closeCode() == 1001)
        await connected.close(code: 1001)
        #expect(await process.wait(timeout: .seconds(15)) == 0)
        let output = process.output()
        #expect(TestLogs.crashLines(in: output).isEmpty, "\(output)")
        #expect(output.contains("draining"))
        // The node waited for the close handshake before it stopped.
        let disconnected = try #require(output.range(of: "WebSocket disconnected"), "\(output)")
        let stopped = try #require(output.range(of: "node stopped"), "\(output)")
        #expect(disconnected.lowerBound < stopped.lowerBound)
    }

    /// Starts `chorus` on port 0 with `environment` added to test defaults; the process and its port.
    private func startNode(_ environment: [String: String]) async throws -> (ChildProcess, Int) {
        var env = [
            "JWT_SECRET": TestNode.secret, "HTTP_HOST": "127.0.0.1", "HTTP_PORT": "0", "LOG_LEVEL": "info",
            "DATABASE_URL": "sqlite:\(try TestLogs.folder("db").appendingPathComponent("chorus.sqlite").path)",
        ]
        env.merge(environment) { $1 }
        let process = try await ChildProcess.spawn(try Executable.chorus(), [], environment: env, log: log())
        return (process, try await NodeProcess.readyPort(of: process))
    }

    @Test("a client that never answers the close does not hold the shutdown past DRAIN_TIMEOUT: the node exits 0, cleanly")
    func unansweredClose() async throws {
        let (process, port) = try await startNode(["DRAIN_TIMEOUT": "2000"])
        defer { process.signal(SIGKILL) }
        let silent = try await WebSocketClient.connect(port: port)
        #expect(try await silent.request(["type": "ping"])["type"] as? String == "pong")
        silent.pauseReading()  // the close frame is never read, so never answered
        process.signal(SIGTERM)
        // DRAIN_TIMEOUT is 2 s (the close handshake gets 1.5 s of it); far more is allowed for a
        // loaded machine. The wait bounds the stop: status 0 means it ended within it.
        let status = await process.wait(timeout: .seconds(20))
        #expect(status == 0, "\(process.output().suffix(3000))")
        #expect(TestLogs.crashLines(in: process.output()).isEmpty, "\(process.output().suffix(3000))")
        #expect(!process.output().contains("Waiting on child channel"), "the server's connections ended without an error")
        silent.resumeReading()
        #expect(try await silent.closeCode() == 1001)
    }

    @Test("a connection that never sends a request does not hold the shutdown: the node exits 0 at once, cleanly")
    func idleConnection() async throws {
        // A long DRAIN_TIMEOUT: before the fix the idle connection held the server until it ran out.
        let (process, port) = try await startNode(["DRAIN_TIMEOUT": "60000"])
        defer { process.signal(SIGKILL) }
        let idle = LoopbackPort.tcpSocket()
        defer { close(idle) }
        #expect(LoopbackPort.withAddress(port) { connect(idle, $0, $1) } == 0)
        #expect(try await HTTP.get("http://127.0.0.1:\(port)/ready").status == 200)
        process.signal(SIGTERM)
        #expect(await process.wait(timeout: .seconds(30)) == 0, "\(process.output().suffix(3000))")
        #expect(TestLogs.crashLines(in: process.output()).isEmpty, "\(process.output().suffix(3000))")
        #expect(!process.output().contains("Waiting on child channel"), "the server's connections ended without an error")
    }

    @Test("a request sent as the shutdown begins, on a connection that had sent nothing yet, is answered instead of reset")
    func requestAtQuiesce() async throws {
        let (process, port) = try await startNode([:])
        defer { process.signal(SIGKILL) }
        // As nginx does: a fresh connection per request, its bytes sent right after the connect.
        let early = LoopbackPort.tcpSocket()
        defer { close(early) }
        // Reads bounded to 20 s, so a request left unanswered fails instead of blocking.
        var timeout = timeval(tv_sec: 20, tv_usec: 0)
        setsockopt(early, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        #expect(LoopbackPort.withAddress(port) { connect(early, $0, $1) } == 0)
        #expect(try await HTTP.get("http://127.0.0.1:\(port)/ready").status == 200)
        // Sent with the signal, so it meets the shutdown's quiesce whichever comes first (the
        // node reading it, or quiescing a connection with nothing read, which then has
        // `UnstartedConnectionCloser.quiesceGrace` to send it; that grace is tested on its own,
        // with a clock the test moves). Waiting here for a log line would race the grace.
        process.signal(SIGTERM)
        let request = Array("GET /health HTTP/1.1\r\nHost: node\r\n\r\n".utf8)
        #expect(send(early, request, request.count, Int32(MSG_NOSIGNAL)) == request.count)
        var buffer = [UInt8](repeating: 0, count: 512)
        let count = recv(early, &buffer, buffer.count, 0)
        let answer = String(decoding: buffer.prefix(max(0, count)), as: UTF8.self)
        #expect(answer.hasPrefix("HTTP/1.1 200"), "answered, not reset (\(count) bytes, errno \(errno))")
        #expect(await process.wait(timeout: .seconds(30)) == 0, "\(process.output().suffix(3000))")
        #expect(TestLogs.crashLines(in: process.output()).isEmpty, "\(process.output().suffix(3000))")
    }

    @Test("under a low open-file limit, upgrades past what it allows get 503 and a log line, and the node keeps serving", .timeLimit(.minutes(2)))
    func descriptorLimit() async throws {
        // 200 descriptors, a quarter of them kept for other uses: room for 150 WebSockets.
        let process = try await ChildProcess.spawn(
            "/usr/bin/prlimit", ["--nofile=200:200", try Executable.chorus()],
            environment: [
                "JWT_SECRET": TestNode.secret, "HTTP_HOST": "127.0.0.1", "HTTP_PORT": "0", "LOG_LEVEL": "info",
                "DATABASE_URL": "none", "WEBSOCKET_MAX_CONNECTIONS_PER_IP": "1000",
            ],
            log: log())
        defer { process.signal(SIGKILL) }
        let port = try await NodeProcess.readyPort(of: process)
        let ready = "http://127.0.0.1:\(port)/ready"
        // Until it listens; failing here, not later with a misleading count, if it never does.
        let listening = await eventually(within: .seconds(20)) {
            guard process.isRunning else { return true }  // exited: reported below
            return (try? await HTTP.get(ready).status) == 200
        }
        try #require(listening && process.isRunning, "not ready within 20 s: \(process.output().suffix(3000))")
        var clients: [WebSocketClient] = []
        var refusal: (Int, String)?
        while refusal == nil, clients.count < 200 {
            do {
                clients.append(try await WebSocketClient.connect(port: port))
            } catch WebSocketClient.Failure.upgradeRefused(let status, let body) {
                refusal = (status, body)
            }
        }
        #expect(clients.count == 150)
        #expect(refusal?.0 == 503)
        #expect(refusal?.1.contains("connection limit (150)") == true)
        #expect(try await HTTP.get("http://127.0.0.1:\(port)/health").status == 200)
        #expect(try await clients[0].request(["type": "ping"])["type"] as? String == "pong")
        #expect(await process.logged("connections refused: the node holds 150 WebSockets"))
        for client in clients { await client.close() }
        #expect(await process.stop(grace: .seconds(20)) == 0)
        #expect(TestLogs.crashLines(in: process.output()).isEmpty, "\(process.output().suffix(3000))")
    }

    @Test("chorus --version prints the version")
    func version() async throws {
        let process = try await ChildProcess.spawn(try Executable.chorus(), ["--version"], environment: [:], log: log())
        #expect(await process.wait(timeout: .seconds(20)) == 0)
        #expect(process.output().trimmingCharacters(in: .whitespacesAndNewlines) == ChorusVersion.text)
    }

    @Test(
        "a port another process listens on stops the node with exit 78 and one line naming the port, and no false warning from the store",
        arguments: [false, true])
    func busyPort(withStore: Bool) async throws {
        // Holds a listening socket on a loopback port for the length of the test.
        let holder = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(holder) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
                bind(holder, pointer, length) == 0 && listen(holder, 1) == 0
                    && getsockname(holder, pointer, &length) == 0
            }
        }
        try #require(bound)
        let port = Int(UInt16(bigEndian: address.sin_port))
        let process = try await ChildProcess.spawn(
            try Executable.chorus(), [],
            environment: [
                "JWT_SECRET": TestNode.secret, "HTTP_HOST": "127.0.0.1", "HTTP_PORT": "\(port)",
                "DATABASE_URL": withStore ? "sqlite:" + (try log().deletingLastPathComponent().appendingPathComponent("busy.sqlite").path) : "none",
            ],
            log: log())
        #expect(await process.wait(timeout: .seconds(20)) == 78)
        let output = process.output()
        let last = output.split(separator: "\n").last.map(String.init) ?? ""
        #expect(
            last == "chorus: cannot listen on 127.0.0.1:\(port) (HTTP_PORT): address already in use: another process listens there; stop it or choose another port",
            "\(output)")
        #expect(!output.contains("draining"), "a node that never listened has nothing to drain: \(output)")
        #expect(!output.contains("still in flight"), "no request ever reached the store: \(output)")
    }

    @Test("chorus token refuses a secret the node would refuse")
    func tokenShortSecret() async throws {
        let process = try await ChildProcess.spawn(
            try Executable.chorus(), ["token", "--sub", "cli-user"], environment: ["JWT_SECRET": "short"], log: log())
        #expect(await process.wait(timeout: .seconds(20)) != 0)
        #expect(process.output().contains("JWT_SECRET must be at least 16 bytes long, got 5"), "\(process.output())")
    }

    @Test("chorus token refuses a subject the node would refuse as a user id")
    func tokenBadSubject() async throws {
        let process = try await ChildProcess.spawn(
            try Executable.chorus(), ["token", "--sub", "john.smith"], environment: ["JWT_SECRET": TestNode.secret], log: log())
        #expect(await process.wait(timeout: .seconds(20)) != 0)
        #expect(process.output().contains("--sub: the user id 'john.smith' may contain only"), "\(process.output())")
    }

    @Test("chorus token mints a token the node accepts")
    func token() async throws {
        let process = try await ChildProcess.spawn(
            try Executable.chorus(), ["token", "--sub", "cli-user", "--ttl", "5m"],
            environment: ["JWT_SECRET": TestNode.secret], log: log())
        #expect(await process.wait(timeout: .seconds(20)) == 0)
        let token = process.output().trimmingCharacters(in: .whitespacesAndNewlines)
        try await withNode { node in
            let client = try await node.connect()
            let reply = try await client.request(["type": "auth", "token": token])
            #expect(reply["userId"] as? String == "cli-user")
        }
    }

    @Test("with JWT_ISSUER and JWT_AUDIENCE, chorus token mints what a node with the same settings accepts")
    func tokenWithIssuerAndAudience() async throws {
        let rules = ["JWT_ISSUER": "https://auth.example", "JWT_AUDIENCE": "chorus"]
        let process = try await ChildProcess.spawn(
            try Executable.chorus(), ["token", "--sub", "cli-user"],
            environment: rules.merging(["JWT_SECRET": TestNode.secret]) { $1 }, log: log())
        #expect(await process.wait(timeout: .seconds(20)) == 0)
        let token = process.output().trimmingCharacters(in: .whitespacesAndNewlines)
        try await withNode(rules) { node in
            let client = try await node.connect()
            let reply = try await client.request(["type": "auth", "token": token])
            #expect(reply["userId"] as? String == "cli-user")
        }
    }
}

@Suite("A separate WebSocket port")
struct SeparatePortTests {
    @Test("with WEBSOCKET_PORT set, /ws is served there (a plain GET is 426, as on a shared port) and HTTP stays on HTTP_PORT, whose /ws is 404 naming the port")
    func splitPorts() async throws {
        let websocketPort = try LoopbackPort.reserve()
        try await withNode(["WEBSOCKET_PORT": "\(websocketPort)", "WEBSOCKET_HOST": "127.0.0.1"]) { node in
            #expect(try await node.node.websocketPort() == websocketPort)
            let client = try await WebSocketClient.connect(port: websocketPort)
            #expect(try await client.request(["type": "ping"])["type"] as? String == "pong")
            #expect(try await HTTP.get("\(node.baseURL)/health").status == 200)
            #expect(try await HTTP.get("http://127.0.0.1:\(websocketPort)/health").status == 404)
            #expect(try await HTTP.get("http://127.0.0.1:\(websocketPort)/ws").status == 426)
            let wrongPort = try await HTTP.get("\(node.baseURL)/ws")
            #expect(wrongPort.status == 404)
            #expect(wrongPort.text.contains("\(websocketPort)"), "\(wrongPort.text)")
            do {
                _ = try await node.connect()
                Issue.record("the HTTP port must not upgrade when WEBSOCKET_PORT differs")
            } catch WebSocketClient.Failure.upgradeRefused(let status, _) {
                #expect(status == 404)
            }
        }
    }

    @Test("with WEBSOCKET_ENABLED=false, /ws is 404 (not 426, which would ask for an upgrade the node never takes)")
    func webSocketOff() async throws {
        try await withNode(["WEBSOCKET_ENABLED": "false"]) { node in
            let answer = try await HTTP.get("\(node.baseURL)/ws")
            #expect(answer.status == 404)
            #expect(answer.text.contains("WEBSOCKET_ENABLED"), "\(answer.text)")
            #expect(try await HTTP.get("\(node.baseURL)/health").status == 200)
        }
    }
}
