import Foundation
import Node
import Testing
import TestSupport

#if canImport(Glibc)
import Glibc
#endif

/// `HTTP_MAX_CONNECTIONS_PER_IP` against a real node: one client address holding idle TCP
/// connections cannot take the places of others. Two client addresses on one machine:
/// 127.0.0.1 and 127.0.0.2 (all of 127.0.0.0/8 is the loopback interface on Linux).
@Suite("TCP connections per client address")
struct ConnectionsPerAddressTests {
    private func startNode(_ environment: [String: String]) async throws -> (ChildProcess, Int) {
        var env = [
            "JWT_SECRET": TestNode.secret, "HTTP_HOST": "127.0.0.1", "HTTP_PORT": "0", "LOG_LEVEL": "info",
            "DATABASE_URL": "none", "HTTP_IDLE_TIMEOUT": "600000",
        ]
        env.merge(environment) { $1 }
        let log = try TestLogs.folder("chorus").appendingPathComponent("chorus.log")
        let process = try await ChildProcess.spawn(try Executable.chorus(), [], environment: env, log: log)
        return (process, try await NodeProcess.readyPort(of: process))
    }

    /// A TCP connection from `source` to the node, reads bounded to 20 s; nil when not made.
    private func connect(_ port: Int, from source: String) -> Int32? {
        let socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard socket >= 0 else { return nil }
        var timeout = timeval(tv_sec: 20, tv_usec: 0)
        setsockopt(socket, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(socket, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var local = sockaddr_in()
        local.sin_family = sa_family_t(AF_INET)
        local.sin_addr.s_addr = inet_addr(source)
        let bound = withUnsafePointer(to: &local) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(socket, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, LoopbackPort.withAddress(port, { Glibc.connect(socket, $0, $1) }) == 0 else {
            close(socket)
            return nil
        }
        return socket
    }

    /// Sends `GET /health` on `socket` and returns the status line ("" when the node closed the
    /// connection without an answer).
    private func health(on socket: Int32) -> String {
        let request = Array("GET /health HTTP/1.1\r\nHost: chorus\r\nConnection: close\r\n\r\n".utf8)
        _ = request.withUnsafeBytes { send(socket, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        var answer: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while !answer.contains(UInt8(ascii: "\n")) {
            let count = recv(socket, &buffer, buffer.count, 0)
            guard count > 0 else { break }  // closed (0), reset or the 20 s bound (-1)
            answer += buffer[0..<count]
        }
        return String(decoding: answer.prefix { $0 != UInt8(ascii: "\r") }, as: UTF8.self)
    }

    /// True when the node closed `socket` without sending anything (EOF or reset, not the
    /// 20 s read bound).
    private func closedByNode(_ socket: Int32) -> Bool {
        var byte: UInt8 = 0
        let count = recv(socket, &byte, 1, 0)
        return count == 0 || (count < 0 && errno == ECONNRESET)
    }

    @Test(
        "past HTTP_MAX_CONNECTIONS_PER_IP an address's further connections are closed at once; its first ones, and other addresses, are served",
        .timeLimit(.minutes(2)))
    func capPerAddress() async throws {
        let (process, port) = try await startNode(["HTTP_MAX_CONNECTIONS_PER_IP": "4"])
        defer { process.signal(SIGKILL) }
        // Four idle connections: all the first address may hold.
        var held = (0..<4).compactMap { _ in connect(port, from: "127.0.0.1") }
        defer { for socket in held { close(socket) } }
        #expect(held.count == 4)

        let fifth = try #require(connect(port, from: "127.0.0.1"))
        defer { close(fifth) }
        #expect(closedByNode(fifth), "the fifth connection from 127.0.0.1 is closed unanswered")
        #expect(await process.logged("HTTP_MAX_CONNECTIONS_PER_IP (4)"), "\(process.output().suffix(2000))")

        let other = try #require(connect(port, from: "127.0.0.2"))
        defer { close(other) }
        #expect(health(on: other) == "HTTP/1.1 200 OK", "another address is served")
        #expect(health(on: held[0]) == "HTTP/1.1 200 OK", "the address's own first connections are served")

        // Closed connections give their places back once the node has read their close, which
        // the client cannot observe: it tries again until served (bounded).
        for socket in held { close(socket) }
        held = []
        var served = false
        let deadline = ContinuousClock.now + .seconds(30)
        while !served, ContinuousClock.now < deadline {
            guard let again = connect(port, from: "127.0.0.1") else { break }
            served = health(on: again) == "HTTP/1.1 200 OK"
            close(again)
            if !served { try await Task.sleep(for: .milliseconds(100)) }
        }
        #expect(served, "a connection from 127.0.0.1 is served again once its others have closed")

        #expect(await process.stop(grace: .seconds(20)) == 0)
        #expect(TestLogs.crashLines(in: process.output()).isEmpty, "\(process.output().suffix(3000))")
    }

    @Test("HTTP_MAX_CONNECTIONS_PER_IP defaults to the WebSockets an address may hold and 64 more")
    func defaultFollowsWebSocketLimit() throws {
        let base = ["JWT_SECRET": "0123456789abcdef0123"]
        #expect(try NodeConfiguration(environment: base).tcpConnectionsPerIP == 164)
        let raised = try NodeConfiguration(environment: base.merging(["WEBSOCKET_MAX_CONNECTIONS_PER_IP": "1000"]) { $1 })
        #expect(raised.tcpConnectionsPerIP == 1064)
        let set = try NodeConfiguration(environment: base.merging(["HTTP_MAX_CONNECTIONS_PER_IP": "10"]) { $1 })
        #expect(set.tcpConnectionsPerIP == 10)
        #expect(throws: ConfigurationError.self) {
            try NodeConfiguration(environment: base.merging(["HTTP_MAX_CONNECTIONS_PER_IP": "0"]) { $1 })
        }
    }

    @Test("a peer in TRUSTED_PROXIES is not counted: a proxy carries many clients", .timeLimit(.minutes(2)))
    func trustedProxyNotCounted() async throws {
        let (process, port) = try await startNode(["HTTP_MAX_CONNECTIONS_PER_IP": "2", "TRUSTED_PROXIES": "127.0.0.1"])
        defer { process.signal(SIGKILL) }
        let held = (0..<4).compactMap { _ in connect(port, from: "127.0.0.1") }
        defer { for socket in held { close(socket) } }
        #expect(held.count == 4)
        let next = try #require(connect(port, from: "127.0.0.1"))
        defer { close(next) }
        #expect(health(on: next) == "HTTP/1.1 200 OK")
        #expect(health(on: held[3]) == "HTTP/1.1 200 OK")
        #expect(!process.output().contains("HTTP_MAX_CONNECTIONS_PER_IP"))
        #expect(await process.stop(grace: .seconds(20)) == 0)
        #expect(TestLogs.crashLines(in: process.output()).isEmpty, "\(process.output().suffix(3000))")
    }
}
