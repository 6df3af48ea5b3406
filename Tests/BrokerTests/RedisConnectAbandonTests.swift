import Foundation
import Testing
import TestSupport

@testable import Broker

#if canImport(Glibc)
import Glibc
#endif

/// A link stopped while its connects are still under way closes them before `shutdown()`
/// returns, instead of leaving sockets opening behind it until their timeout.
@Suite("Redis adapter: a connect under way at shutdown")
struct RedisConnectAbandonTests {
    @Test("a shutdown while the connects get no answer (the server's accept queue is full) leaves no socket connecting")
    func shutdownWhileConnecting() async throws {
        // A listener with a full accept queue: the kernel drops further SYNs, so a connect to it
        // stays in SYN_SENT until the connect's own timeout.
        let listener = LoopbackPort.tcpSocket()
        try #require(listener >= 0)
        defer { close(listener) }
        let port = try LoopbackPort.reserve()
        try #require(LoopbackPort.withAddress(port) { bind(listener, $0, $1) } == 0 && listen(listener, 0) == 0)
        var fillers: [Int32] = []
        defer { for filler in fillers { close(filler) } }
        for _ in 0..<3 {
            let filler = LoopbackPort.tcpSocket()
            _ = fcntl(filler, F_SETFL, fcntl(filler, F_GETFL) | O_NONBLOCK)
            _ = LoopbackPort.withAddress(port) { connect(filler, $0, $1) }
            fillers.append(filler)
        }
        #expect(await RedisTest.eventually { Self.connecting(to: port) >= 1 }, "the accept queue is full: a connect waits")
        let before = Self.connecting(to: port)

        let node = RedisTestNode("a", urls: [try RedisURL(parsing: "redis://127.0.0.1:\(port)")], timeout: .seconds(60))
        node.subscribe(RedisTest.topic("abandon.t"))
        #expect(await RedisTest.eventually { Self.connecting(to: port) > before }, "the node's subscriber connects")
        await node.adapter.shutdown()
        // The node closes its sockets before `shutdown()` returns, but a process another test
        // spawns at that moment holds copies of them until its `exec`, so the kernel may list
        // them a moment longer. A connect left under way would stay for the node's 60-s timeout.
        let closed = await RedisTest.eventually(within: .seconds(5)) { Self.connecting(to: port) == before }
        #expect(closed, "no connect of the node's is left under way: \(Self.sockets(to: port)) \(node.status)")
    }

    /// Sockets of this machine in SYN_SENT to `127.0.0.1:port`.
    static func connecting(to port: Int) -> Int {
        sockets(to: port).filter { $0.state == "02" }.count
    }

    /// Sockets of this machine to `127.0.0.1:port` with their state, from `/proc/net/tcp`
    /// (read to its end: the kernel hands it out a page at a time, and a busy machine's table
    /// is many pages).
    static func sockets(to port: Int) -> [(local: String, state: String)] {
        guard let file = FileHandle(forReadingAtPath: "/proc/net/tcp"), let data = try? file.readToEnd() else { return [] }
        try? file.close()
        let remote = String(format: "0100007F:%04X", port)
        return String(decoding: data, as: UTF8.self).split(separator: "\n").dropFirst().compactMap { line in
            let fields = line.split(separator: " ")
            guard fields.count > 3, fields[2] == remote else { return nil }
            return (String(fields[1]), String(fields[3]))
        }
    }
}
