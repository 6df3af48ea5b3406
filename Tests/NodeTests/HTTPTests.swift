#if canImport(Glibc)
import Glibc
#endif
import ChorusClient
import Foundation
import Testing
import TestSupport

@Suite("HTTP endpoints")
struct HTTPTests {
    @Test("a request the node cannot parse (garbage, two Content-Lengths, a header past the limit) is answered 400 and closed at once, not held until HTTP_IDLE_TIMEOUT", arguments: [
        "GARBAGE\r\n\r\n", "GET /health HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
        "GET /health HTTP/1.1\r\nHost: x\r\nX: " + String(repeating: "a", count: 100_000) + "\r\n\r\n",
    ])
    func unparsableRequest(request: String) async throws {
        try await withNode(["HTTP_IDLE_TIMEOUT": "600000"]) { node in
            let port = node.port
            let answer = try await onOwnThread { try Self.exchange(request, port: port) }
            #expect(answer.hasPrefix("HTTP/1.1 400"), "\(answer.prefix(80))")
        }
    }

    @Test("an upgrade that is not a GET, or whose Sec-WebSocket-Key is not base64 of 16 bytes, is refused with 400 (RFC 6455 4.2.1)", arguments: [
        ("POST", "dGhlIHNhbXBsZSBub25jZQ=="), ("GET", "not-base64!!"), ("GET", "c2hvcnQ="),
    ])
    func badHandshake(method: String, key: String) async throws {
        try await withNode { node in
            let port = node.port
            let request = "\(method) /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                + "Sec-WebSocket-Key: \(key)\r\nSec-WebSocket-Version: 13\r\nContent-Length: 0\r\n\r\n"
            let answer = try await onOwnThread { try Self.exchange(request, port: port) }
            #expect(answer.hasPrefix("HTTP/1.1 400"), "\(answer.prefix(200))")
        }
    }

    @Test("a handshake of another WebSocket version is refused with 426 and the version the node speaks (RFC 6455 4.4)")
    func otherVersion() async throws {
        try await withNode { node in
            let port = node.port
            let request = "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\nContent-Length: 0\r\n\r\n"
            let answer = try await onOwnThread { try Self.exchange(request, port: port) }
            #expect(answer.hasPrefix("HTTP/1.1 426"), "\(answer.prefix(200))")
            #expect(answer.lowercased().contains("\r\nsec-websocket-version: 13\r\n"), "\(answer.prefix(300))")
        }
    }

    /// Sends `request` on a fresh connection and reads until the node closes it (a read that
    /// waits 10 s throws): what the node answered.
    private static func exchange(_ request: String, port: Int) throws -> String {
        let socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard socket >= 0 else { throw TestFailure("socket: \(errno)") }
        defer { close(socket) }
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(socket, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        guard LoopbackPort.withAddress(port, { Glibc.connect(socket, $0, $1) }) == 0 else { throw TestFailure("connect: \(errno)") }
        let bytes = Array(request.utf8)
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { Glibc.send(socket, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { break }  // the node may close before reading a long request whole
            sent += n
        }
        var answer: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(socket, $0.baseAddress, $0.count, 0) }
            if n == 0 { return String(decoding: answer, as: UTF8.self) }
            guard n > 0 else {
                if errno == ECONNRESET { return String(decoding: answer, as: UTF8.self) }
                throw TestFailure("no close within 10 s (errno \(errno)); read so far: \(String(decoding: answer.prefix(80), as: UTF8.self))")
            }
            answer += buffer[..<n]
        }
    }

    @Test("health, ready, stats and metrics answer with what an operator needs")
    func operations() async throws {
        try await withNode(["NODE_ID": "node-7"]) { node in
            let client = try await node.connect(as: "u")
            _ = try await client.request(["type": "subscribe", "topic": "a.b"])
            _ = try await client.request(["type": "subscribe", "topic": "a.*"])
            try await client.send(json: ["type": "message", "topic": "a.b", "data": 1])
            _ = try await client.next(type: "message")

            #expect(try await HTTP.get("\(node.baseURL)/health").json()["status"] as? String == "ok")
            let ready = try await HTTP.get("\(node.baseURL)/ready")
            #expect(ready.status == 200)
            let stats = try await HTTP.get("\(node.baseURL)/stats").json()
            #expect(stats["nodeId"] as? String == "node-7")
            #expect(stats["uptimeSeconds"] as? Double != nil)
            let connections = try #require(stats["connections"] as? [String: Any])
            #expect(connections["total"] as? Int == 1)
            #expect(connections["authenticated"] as? Int == 1)
            #expect(connections["users"] as? Int == 1)
            let subscriptions = try #require(stats["subscriptions"] as? [String: Any])
            #expect(subscriptions["total"] as? Int == 2)
            #expect(subscriptions["topics"] as? Int == 1)
            #expect(subscriptions["patterns"] as? Int == 1)
            let messages = try #require(stats["messages"] as? [String: Any])
            #expect(messages["published"] as? Int == 1)
            #expect(messages["delivered"] as? Int == 1)
            #expect((stats["adapter"] as? [String: Any])?["adapter"] as? String == "memory")
            #expect(((stats["memory"] as? [String: Any])?["residentBytes"] as? Int ?? 0) > 0)

            let metrics = try await HTTP.get("\(node.baseURL)/metrics").text
            #expect(metrics.contains("chorus_messages_published_total 1"))
            #expect(metrics.contains("chorus_websocket_connections 1"))
        }
    }

    @Test("POST /api/publish with the API key or a token reaches WebSocket subscribers")
    func publishReachesSubscribers() async throws {
        try await withNode(["API_KEY": "server-key"]) { node in
            let client = try await node.connect(as: "alice")
            _ = try await client.request(["type": "subscribe", "topic": "news.*"])
            let response = try await HTTP.post(
                "\(node.baseURL)/api/publish",
                json: ["topic": "news.world", "data": ["content": "from HTTP"], "eventType": "message.created",
                       "metadata": ["priority": "high"]],
                headers: ["X-API-Key": "server-key"])
            #expect(response.status == 202)
            #expect(try response.json()["id"] as? String != nil)
            let message = try await client.next(type: "message")
            #expect(message["topic"] as? String == "news.world")
            #expect(message["eventType"] as? String == "message.created")
            #expect((message["metadata"] as? [String: Any])?["senderId"] as? String == "server")
            #expect((message["metadata"] as? [String: Any])?["priority"] as? String == "high")

            let withToken = try await HTTP.post(
                "\(node.baseURL)/api/publish", json: ["topic": "news.sport", "data": 2],
                headers: ["Authorization": "Bearer \(node.token("bob"))"])
            #expect(withToken.status == 202)
            #expect((try await client.next(type: "message")["metadata"] as? [String: Any])?["senderId"] as? String == "bob")
        }
    }

    @Test("POST /api/publish with userId reaches every connection of that user, subscribed or not")
    func publishToUser() async throws {
        try await withNode(["API_KEY": "k"]) { node in
            let phone = try await node.connect(as: "carol")
            let laptop = try await node.connect(as: "carol")
            let other = try await node.connect(as: "dave")
            let response = try await HTTP.post(
                "\(node.baseURL)/api/publish", json: ["userId": "carol", "data": "ding"], headers: ["X-API-Key": "k"])
            #expect(response.status == 202)
            #expect(try await phone.next(type: "message")["data"] as? String == "ding")
            #expect(try await laptop.next(type: "message")["data"] as? String == "ding")
            let marker = UUID().uuidString
            let markerPost = try await HTTP.post(
                "\(node.baseURL)/api/publish",
                json: ["userId": "dave", "data": ["marker": marker], "eventType": Marker.eventType], headers: ["X-API-Key": "k"])
            #expect(markerPost.status == 202)
            #expect(try await other.messages(before: marker) == [], "carol's message does not reach dave")
        }
    }

    @Test(
        "POST /api/publish refuses bad requests with the seed's error shape",
        arguments: [
            (["X-API-Key": "wrong"], #"{"topic":"a","data":1}"#, 401),
            ([:], #"{"topic":"a","data":1}"#, 401),
            (["X-API-Key": "k"], "{oops", 400),
            (["X-API-Key": "k"], #"{"topic":"a"}"#, 400),
            (["X-API-Key": "k"], #"{"data":1}"#, 400),
            (["X-API-Key": "k"], #"{"topic":"a.*","data":1}"#, 400),
            (["X-API-Key": "k"], #"{"topic":"a","data":1,"metadata":[1]}"#, 400),
        ])
    func publishErrors(headers: [String: String], body: String, status: Int) async throws {
        try await withNode(["API_KEY": "k"]) { node in
            var headers = headers
            headers["Content-Type"] = "application/json"
            let response = try await HTTP.post("\(node.baseURL)/api/publish", body: Data(body.utf8), headers: headers)
            #expect(response.status == status)
            let error = try response.json()
            #expect(error["type"] as? String == "error")
            #expect(error["code"] as? Int == status)
            #expect((error["message"] as? String)?.isEmpty == false)
        }
    }

    @Test("GET /ws without an upgrade says so")
    func plainGetOnWebSocketPath() async throws {
        try await withNode { (node: TestNode) async throws in
            #expect(try await HTTP.get("\(node.baseURL)/ws").status == 426)
            #expect(try await HTTP.get("\(node.baseURL)/nope").status == 404)
        }
    }
}
