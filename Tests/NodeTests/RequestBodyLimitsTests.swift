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
    /// Small bodies, connections kept, and logins that the per-address attempt budget (taken
    /// before the body is read) does not stop: these tests hold the body budget with them.
    static let slowLogins = [
        "WEBSOCKET_MAX_MESSAGE_SIZE": "4096", "HTTP_IDLE_TIMEOUT": "600000", "AUTH_LOGIN_ATTEMPTS_PER_MINUTE": "100000",
    ]

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

    @Test("a request answered before its body arrived: the answer says Connection: close, the reader is handed an empty part in place of the last one (which held a receive buffer), the rest of the body is dropped as it comes, and the connection closes once the body ends, or once none of it has come for 5 s")
    func answeredBeforeTheBody() throws {
        let head = HTTPRequest(method: .post, scheme: nil, authority: "node", path: "/api/auth/login")
        let refusal = HTTPResponse(status: .serviceUnavailable)
        /// A request whose answer's head went out while its body arrived.
        func answering() throws -> EmbeddedChannel {
            let channel = EmbeddedChannel(handler: RequestDeadline(limit: .seconds(60)))
            try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
            try channel.writeInbound(HTTPRequestPart.head(head))
            try channel.writeInbound(HTTPRequestPart.body(ByteBuffer(repeating: 0x20, count: 65_536)))
            #expect(try channel.readInbound(as: HTTPRequestPart.self) == .head(head))
            #expect(try channel.readInbound(as: HTTPRequestPart.self)?.bodyBytes == 65_536)
            try channel.writeOutbound(HTTPResponsePart.head(refusal))
            guard case .head(let written)? = try channel.readOutbound(as: HTTPResponsePart.self) else {
                throw TestFailure("no answer head")
            }
            #expect(written.headerFields[.connection] == "close")
            return channel
        }
        /// The same, its answer ended while the body had not.
        func answeredEarly() throws -> EmbeddedChannel {
            let channel = try answering()
            try channel.writeOutbound(HTTPResponsePart.end(nil))
            #expect(try channel.readInbound(as: HTTPRequestPart.self)?.bodyBytes == 0, "an empty part takes the place of the last one read")
            return channel
        }

        let ending = try answeredEarly()
        try ending.writeInbound(HTTPRequestPart.body(ByteBuffer(repeating: 0x20, count: 65_536)))
        #expect(try ending.readInbound(as: HTTPRequestPart.self) == nil, "the rest of the body is dropped")
        ending.embeddedEventLoop.advanceTime(by: .milliseconds(4_900))
        try ending.writeInbound(HTTPRequestPart.body(ByteBuffer(repeating: 0x20, count: 65_536)))
        ending.embeddedEventLoop.advanceTime(by: .milliseconds(4_900))
        #expect(ending.isActive, "a body still arriving is read to its end")
        try ending.writeInbound(HTTPRequestPart.end(nil))
        #expect(!ending.isActive, "closed once the body has ended")

        let pipelined = try answering()
        try pipelined.writeInbound(HTTPRequestPart.end(nil))
        #expect(try pipelined.readInbound(as: HTTPRequestPart.self) == .end(nil))
        try pipelined.writeInbound(HTTPRequestPart.head(head))
        try pipelined.writeInbound(HTTPRequestPart.body(ByteBuffer(repeating: 0x20, count: 100)))
        #expect(try pipelined.readInbound(as: HTTPRequestPart.self) == nil, "nothing after a request answered with Connection: close is read")
        try pipelined.writeOutbound(HTTPResponsePart.end(nil))
        #expect(!pipelined.isActive, "closed at the answer's end: the body had ended")

        let stalled = try answeredEarly()
        stalled.embeddedEventLoop.advanceTime(by: .milliseconds(4_900))
        #expect(stalled.isActive, "within the 5 s")
        stalled.embeddedEventLoop.advanceTime(by: .milliseconds(100))
        #expect(!stalled.isActive, "none of the body for 5 s: closed")
    }

    @Test("pipelined requests: the answer to the first, written while the second's body arrives, leaves that body alone")
    func pipelinedBodyIsKept() throws {
        let channel = EmbeddedChannel(handler: RequestDeadline(limit: .seconds(60)))
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        let head = HTTPRequest(method: .post, scheme: nil, authority: "node", path: "/api/publish")
        try channel.writeInbound(HTTPRequestPart.head(head))
        try channel.writeInbound(HTTPRequestPart.end(nil))
        try channel.writeInbound(HTTPRequestPart.head(head))
        try channel.writeInbound(HTTPRequestPart.body(ByteBuffer(repeating: 0x20, count: 100)))
        try channel.writeOutbound(HTTPResponsePart.head(HTTPResponse(status: .accepted)))
        try channel.writeOutbound(HTTPResponsePart.end(nil))
        guard case .head(let written)? = try channel.readOutbound(as: HTTPResponsePart.self) else {
            throw TestFailure("no answer head")
        }
        #expect(written.headerFields[.connection] == nil, "the first request was whole when answered")
        try channel.writeInbound(HTTPRequestPart.body(ByteBuffer(repeating: 0x20, count: 100)))
        var bodyBytes = 0
        while let part = try channel.readInbound(as: HTTPRequestPart.self) { bodyBytes += part.bodyBytes ?? 0 }
        #expect(bodyBytes == 200, "the second request's body reaches its route whole")
        channel.embeddedEventLoop.advanceTime(by: .seconds(30))
        #expect(channel.isActive)
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
        try await withNodeProcess(Self.slowLogins) { node in
            let login = "http://127.0.0.1:\(node.port)/api/auth/login"
            let wrong: [String: Any] = ["username": "nobody", "password": "wrong password"]
            var idle: [SlowRequest] = []
            defer { for socket in idle { socket.close() } }
            for _ in 0..<64 { idle.append(try SlowRequest(port: node.port, contentLength: 4_096)) }
            #expect(try await HTTP.post(login, json: wrong).status == 401, "64 requests that sent a byte each hold a byte each, not a body each")
            for socket in idle { socket.close() }
            idle = []

            var slow = try SlowRequest.share(port: node.port)
            defer { for socket in slow { socket.close() } }
            let refused = try await eventually { try await HTTP.post(login, json: wrong).status == 503 }
            #expect(refused, "the address holds its share: its next body finds no room")
            let response = try await HTTP.post(login, json: wrong)
            #expect(response.status == 503 && response.headers["retry-after"] == "1", "\(response.status) \(response.headers)")
            slow.removeFirst().close()
            let admitted = try await eventually { try await HTTP.post(login, json: wrong).status != 503 }
            #expect(admitted, "the closed request's bytes are given back")
        }
    }

    @Test("a login answered 503 before its body arrived (the budget taken) gets its answer, and its connection is closed once the body has not ended 5 s later: it held a receive buffer for HTTP_IDLE_TIMEOUT")
    func refusedBodyIsNotKept() async throws {
        try await withNodeProcess(Self.slowLogins) { node in
            let slow = try SlowRequest.share(port: node.port)
            defer { for socket in slow { socket.close() } }
            let login = "http://127.0.0.1:\(node.port)/api/auth/login"
            let full = try await eventually { try await HTTP.post(login, json: ["username": "nobody", "password": "wrong password"]).status == 503 }
            try #require(full, "the address holds its share")

            let refused = try SlowRequest(port: node.port, contentLength: 4_096)
            defer { refused.close() }
            #expect(refused.send(String(repeating: " ", count: 2_000)), "half the body, then nothing more")
            let (answer, closed) = refused.readUntilClosed(within: .seconds(60))
            #expect(answer.hasPrefix("HTTP/1.1 503"), "the answer arrives: \(answer.prefix(40))")
            #expect(closed, "closed without waiting for HTTP_IDLE_TIMEOUT (10 minutes)")
        }
    }

    @Test("a request with a token counts against its client network's share too: eight accounts of one network holding a body each leave a ninth account of that network 503, and a user of another network is served")
    func networkShareAcrossAccounts() async throws {
        let environment = ["WEBSOCKET_MAX_MESSAGE_SIZE": "4096", "HTTP_IDLE_TIMEOUT": "600000", "TRUSTED_PROXIES": "127.0.0.1/32"]
        try await withNodeProcess(environment) { node in
            let publish = "http://127.0.0.1:\(node.port)/api/publish"
            func from(_ network: String, _ user: String) -> [String: String] {
                ["X-Forwarded-For": network, "Authorization": "Bearer \(node.token(user))"]
            }
            let slow = try SlowRequest.share(port: node.port, path: "/api/publish") { from("203.0.113.7", "account-\($0)") }
            defer { for socket in slow { socket.close() } }
            let message: [String: Any] = ["topic": "news", "data": ["n": 1]]
            let refused = try await eventually {
                try await HTTP.post(publish, json: message, headers: from("203.0.113.7", "account-8")).status == 503
            }
            #expect(refused, "the network holds its share whichever of its accounts sends")
            let elsewhere = try await HTTP.post(publish, json: message, headers: from("198.51.100.9", "someone-else"))
            #expect(elsewhere.status == 202, "another network's user is served: \(elsewhere.status)")
        }
    }
}

/// A raw TCP connection that sends a `POST` head (`/api/auth/login` unless told) and the first
/// byte of its body.
final class SlowRequest: @unchecked Sendable {
    private let descriptor: Int32

    init(port: Int, contentLength: Int, path: String = "/api/auth/login", headers: [String: String] = [:]) throws {
        descriptor = LoopbackPort.tcpSocket()
        guard descriptor >= 0, LoopbackPort.withAddress(port, { connect(descriptor, $0, $1) }) == 0 else {
            throw TestFailure("cannot connect to \(port)")
        }
        let extra = headers.map { "\($0.key): \($0.value)\r\n" }.joined()
        let head = "POST \(path) HTTP/1.1\r\nHost: node\r\n\(extra)Content-Type: application/json\r\nContent-Length: \(contentLength)\r\n\r\n{"
        guard send(head) else { throw TestFailure("cannot send the head") }
    }

    /// Eight requests whose bodies of 4,096 bytes (a node's `WEBSOCKET_MAX_MESSAGE_SIZE` in these
    /// tests) have all but their last byte sent: together an eighth of the node's body budget,
    /// one share. `headers` gives each request's headers by its index.
    static func share(port: Int, path: String = "/api/auth/login", headers: (Int) -> [String: String] = { _ in [:] }) throws -> [SlowRequest] {
        try (0..<8).map { index in
            let request = try SlowRequest(port: port, contentLength: 4_096, path: path, headers: headers(index))
            #expect(request.send(String(repeating: " ", count: 4_094)), "all but the last byte")
            return request
        }
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

    /// Reads what the node sends until it closes the connection or `timeout` passes: the text,
    /// and whether the connection was closed.
    func readUntilClosed(within timeout: Duration) -> (text: String, closed: Bool) {
        let end = ContinuousClock.now + timeout
        var received: [UInt8] = []
        while ContinuousClock.now < end {
            var poller = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
            guard poll(&poller, 1, 100) > 0 else { continue }
            var chunk = [UInt8](repeating: 0, count: 4_096)
            let count = recv(descriptor, &chunk, chunk.count, 0)
            guard count > 0 else { return (String(decoding: received, as: UTF8.self), true) }
            received += chunk.prefix(count)
        }
        return (String(decoding: received, as: UTF8.self), false)
    }

    func close() {
        _ = Foundation.close(descriptor)
    }
}

extension HTTPRequestPart {
    /// The bytes of a body part; nil for a head or an end.
    fileprivate var bodyBytes: Int? {
        if case .body(let bytes) = self { return bytes.readableBytes }
        return nil
    }
}
