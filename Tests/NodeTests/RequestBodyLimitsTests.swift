import Foundation
import HTTPTypes
import NIOCore
import NIOEmbedded
import NIOHTTPTypes
import Testing
import TestSupport

@testable import Node

/// Request bodies sent slowly: each one holds memory while it arrives.
@Suite("HTTP request bodies sent slowly", .timeLimit(.minutes(2)))
struct RequestBodyLimitsTests {
    @Test("a request not whole (body included) HTTP_IDLE_TIMEOUT after its head is closed, however often a byte of it arrives; one that ends in time is not")
    func deadlineFromTheHead() throws {
        let channel = EmbeddedChannel(handler: RequestDeadline(limit: .seconds(60)))
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        let head = HTTPRequest(method: .post, scheme: nil, authority: "node", path: "/api/auth/login")
        try channel.writeInbound(HTTPRequestPart.head(head))
        for _ in 0..<59 {
            channel.embeddedEventLoop.advanceTime(by: .seconds(1))
            try channel.writeInbound(HTTPRequestPart.body(ByteBuffer(string: "x")))
        }
        #expect(channel.isActive, "within the deadline")
        channel.embeddedEventLoop.advanceTime(by: .seconds(1))
        #expect(!channel.isActive, "closed at the deadline, bytes arriving or not")

        let served = EmbeddedChannel(handler: RequestDeadline(limit: .seconds(60)))
        try served.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        try served.writeInbound(HTTPRequestPart.head(head))
        try served.writeInbound(HTTPRequestPart.end(nil))
        served.embeddedEventLoop.advanceTime(by: .seconds(120))
        #expect(served.isActive, "a whole request is answered in its own time, and the connection kept")
        _ = try? served.finish()
    }

    @Test("a node closes a login whose body trickles in past HTTP_IDLE_TIMEOUT (it stayed open while a byte came every few hundred milliseconds)")
    func tricklingBodyIsClosed() async throws {
        try await withNodeProcess(["HTTP_IDLE_TIMEOUT": "1000"]) { node in
            let socket = try SlowRequest(port: node.port, contentLength: 1_000)
            defer { socket.close() }
            // A byte every 200 ms: never idle for the timeout. The body would take 200 s.
            var closed = false
            for _ in 0..<150 where !closed {
                closed = !socket.send("x") || socket.closedByPeer(within: .milliseconds(200))
            }
            #expect(closed, "the node closed the connection")
        }
    }

    @Test("bodies are charged as they arrive: requests that sent a byte each hold a byte each, and one client network holding an eighth of the node's budget (8 bodies of WEBSOCKET_MAX_MESSAGE_SIZE) is answered 503 with Retry-After; a body that ends gives its bytes back")
    func bodyBudget() async throws {
        try await withNodeProcess(["WEBSOCKET_MAX_MESSAGE_SIZE": "4096", "HTTP_IDLE_TIMEOUT": "600000"]) { node in
            let login = "http://127.0.0.1:\(node.port)/api/auth/login"
            let wrong: [String: Any] = ["username": "nobody", "password": "wrong password"]
            var idle: [SlowRequest] = []
            defer { for socket in idle { socket.close() } }
            for _ in 0..<64 { idle.append(try SlowRequest(port: node.port, contentLength: 4_096)) }
            #expect(try await HTTP.post(login, json: wrong).status == 401, "64 requests that sent a byte each hold a byte each, not a body each")
            for socket in idle { socket.close() }
            idle = []

            var slow: [SlowRequest] = []
            defer { for socket in slow { socket.close() } }
            for _ in 0..<8 {
                let request = try SlowRequest(port: node.port, contentLength: 4_096)
                #expect(request.send(String(repeating: " ", count: 4_094)), "all but the last byte")
                slow.append(request)
            }
            let refused = try await eventually { try await HTTP.post(login, json: wrong).status == 503 }
            #expect(refused, "the address holds its share: its next body finds no room")
            let response = try await HTTP.post(login, json: wrong)
            #expect(response.status == 503 && response.headers["retry-after"] == "1", "\(response.status) \(response.headers)")
            slow.removeFirst().close()
            let admitted = try await eventually { try await HTTP.post(login, json: wrong).status != 503 }
            #expect(admitted, "the closed request's bytes are given back")
        }
    }
}

/// A raw TCP connection that sends a `POST /api/auth/login` head and the first byte of its body.
final class SlowRequest: @unchecked Sendable {
    private let descriptor: Int32

    init(port: Int, contentLength: Int) throws {
        descriptor = LoopbackPort.tcpSocket()
        guard descriptor >= 0, LoopbackPort.withAddress(port, { connect(descriptor, $0, $1) }) == 0 else {
            throw TestFailure("cannot connect to \(port)")
        }
        let head = "POST /api/auth/login HTTP/1.1\r\nHost: node\r\nContent-Type: application/json\r\nContent-Length: \(contentLength)\r\n\r\n{"
        guard send(head) else { throw TestFailure("cannot send the head") }
    }

    /// False once the connection is gone.
    func send(_ text: String) -> Bool {
        let bytes = Array(text.utf8)
        return bytes.withUnsafeBytes { Foundation.send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) } == bytes.count
    }

    /// Waits up to `timeout` for the node to close the connection (EOF or reset).
    func closedByPeer(within timeout: Duration) -> Bool {
        var poller = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
        let milliseconds = Int32(timeout.components.seconds * 1000 + timeout.components.attoseconds / 1_000_000_000_000_000)
        guard poll(&poller, 1, milliseconds) > 0 else { return false }
        var byte: UInt8 = 0
        return recv(descriptor, &byte, 1, Int32(MSG_DONTWAIT)) <= 0
    }

    func close() {
        _ = Foundation.close(descriptor)
    }
}
