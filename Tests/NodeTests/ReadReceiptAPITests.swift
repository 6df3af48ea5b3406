import ChorusClient
import Foundation
import Testing
import TestSupport

@Suite("Read receipts and conversations over HTTP and WebSocket")
struct ReadReceiptAPITests {
    private func headers(_ session: [String: Any]) -> [String: String] {
        ["Authorization": "Bearer \(session.token)"]
    }

    /// The next delivered message with this `eventType`, skipping others.
    static func next(_ eventType: String, on socket: WebSocketClient) async throws -> [String: Any] {
        while true {
            let message = try await socket.next(type: "message")
            if message["eventType"] as? String == eventType { return message }
        }
    }

    private func post(_ node: TestNode, _ body: [String: Any], as session: [String: Any]) async throws -> String {
        let response = try await HTTP.post("\(node.baseURL)/api/messages", json: body, headers: headers(session))
        guard response.status == 201, let id = try response.json()["id"] as? String else {
            throw TestFailure("post: \(response.status) \(response.text)")
        }
        return id
    }

    @Test("POST /api/messages/{id}/read publishes message.read to the topic; an older read is acknowledged and moves nothing")
    func topicRead() async throws {
        try await withNode { node in
            let alice = try await register(node, "alice")
            let bob = try await register(node, "bob")
            let listener = try await node.connect()
            _ = try await listener.request(["type": "auth", "token": alice.token])
            _ = try await listener.request(["type": "subscribe", "topic": "rooms.lobby"])
            let first = try await post(node, ["topic": "rooms.lobby", "content": "one"], as: alice)
            let second = try await post(node, ["topic": "rooms.lobby", "content": "two"], as: alice)

            let read = try await HTTP.post("\(node.baseURL)/api/messages/\(second)/read", json: [:], headers: headers(bob))
            #expect(read.status == 200)
            let body = try read.json()
            #expect(body["messageId"] as? String == second)
            #expect(body["userId"] as? String == bob.userId)
            #expect(body["advanced"] as? Bool == true)
            let readAt = try #require(body["readAt"] as? String)

            let event = try await Self.next("message.read", on: listener)
            let data = try #require(event["data"] as? [String: Any])
            #expect(event["topic"] as? String == "rooms.lobby")
            #expect(event["eventType"] as? String == "message.read")
            #expect(data["messageId"] as? String == second)
            #expect(data["userId"] as? String == bob.userId)
            #expect(data["readAt"] as? String == readAt)
            #expect((event["metadata"] as? [String: Any])?["senderId"] as? String == bob.userId)

            // Reading the older message is acknowledged; the position and the others see nothing new.
            let older = try await HTTP.post("\(node.baseURL)/api/messages/\(first)/read", json: [:], headers: headers(bob))
            #expect(older.status == 200)
            #expect(try older.json()["advanced"] as? Bool == false)
            #expect((try older.json()["lastRead"] as? [String: Any])?["messageId"] as? String == second)
            let marker = try await node.connect(as: alice.userId).publishMarker(topic: "rooms.lobby")
            #expect(try await listener.messages(before: marker) == [], "no message.read for a read that moved nothing")
        }
    }

    @Test("the WebSocket read request answers read_recorded; a direct message's read reaches both users' private topics")
    func directReadOverWebSocket() async throws {
        try await withNode { node in
            let alice = try await register(node, "alice")
            let bob = try await register(node, "bob")
            let aliceSocket = try await node.connect()
            _ = try await aliceSocket.request(["type": "auth", "token": alice.token])
            _ = try await aliceSocket.request(["type": "subscribe", "topic": "messages.user.\(alice.userId)"])
            let bobSocket = try await node.connect()
            _ = try await bobSocket.request(["type": "auth", "token": bob.token])
            _ = try await bobSocket.request(["type": "subscribe", "topic": "messages.user.\(bob.userId)"])
            let id = try await post(node, ["recipientId": bob.userId, "content": "psst"], as: alice)
            _ = try await aliceSocket.next(type: "message")  // message.sent, to both
            _ = try await bobSocket.next(type: "message")

            try await bobSocket.send(json: ["type": "read", "messageId": id, "id": 9])
            var reply = try await bobSocket.nextJSON()
            var own: [String: Any]?
            if reply["type"] as? String == "message" {  // the event may overtake the reply
                own = reply
                reply = try await bobSocket.next(type: "read_recorded")
            }
            #expect(reply["type"] as? String == "read_recorded")
            #expect(reply["id"] as? Int == 9)
            #expect(reply["messageId"] as? String == id)
            #expect(reply["advanced"] as? Bool == true)
            let readAt = try #require(reply["readAt"] as? String)
            if own == nil { own = try await bobSocket.next(type: "message") }

            for event in [try await aliceSocket.next(type: "message"), try #require(own)] {
                #expect(event["eventType"] as? String == "message.read")
                #expect((event["data"] as? [String: Any])?["messageId"] as? String == id)
                #expect((event["data"] as? [String: Any])?["userId"] as? String == bob.userId)
                #expect((event["data"] as? [String: Any])?["readAt"] as? String == readAt)
            }
        }
    }

    @Test("WebSocket read errors come in the error shape with the request id")
    func webSocketErrors() async throws {
        try await withNode { node in
            let alice = try await register(node, "alice")
            let bob = try await register(node, "bob")
            let carol = try await register(node, "carol")
            let secret = try await post(node, ["recipientId": bob.userId, "content": "for bob"], as: alice)

            let anonymous = try await node.connect()
            let unauthenticated = try await anonymous.request(["type": "read", "messageId": secret, "id": 1])
            #expect(unauthenticated["code"] as? Int == 401)
            #expect(unauthenticated["id"] as? Int == 1)

            let socket = try await node.connect()
            _ = try await socket.request(["type": "auth", "token": carol.token])
            let missing = try await socket.request(["type": "read", "messageId": "no-such-message", "id": "a"])
            #expect(missing["type"] as? String == "error")
            #expect(missing["code"] as? Int == 404)
            #expect(missing["id"] as? String == "a")
            // An error repeats at most 64 characters of what the client sent (docs/security.md).
            let long = try await socket.request(["type": "read", "messageId": String(repeating: "x", count: 100_000), "id": "b"])
            #expect(long["code"] as? Int == 404)
            #expect(((long["message"] as? String) ?? "").count < 200, "\(String(describing: long["message"]).prefix(300))")
            let hidden = try await socket.request(["type": "read", "messageId": secret, "id": 2])
            #expect(hidden["code"] as? Int == 403, "carol may not see alice's message to bob")
            #expect(hidden["id"] as? Int == 2)
            let malformed = try await socket.request(["type": "read", "id": 3])
            #expect(malformed["code"] as? Int == 400)
            #expect(malformed["id"] as? Int == 3)
            #expect(try await socket.request(["type": "ping", "id": 4])["type"] as? String == "pong", "the connection stays open")
        }
    }

    @Test("a burst of reads on one connection: each answered once, read_recorded or 429 past the reads in flight")
    func burst() async throws {
        try await withNode { node in
            let alice = try await register(node, "alice")
            var ids: [String] = []
            for index in 0..<5 {
                ids.append(try await post(node, ["topic": "rooms.burst", "content": "\(index)"], as: alice))
            }
            let socket = try await node.connect()
            _ = try await socket.request(["type": "auth", "token": alice.token])
            for request in 0..<40 {
                try await socket.send(json: ["type": "read", "messageId": ids[request % ids.count], "id": request])
            }
            var answered: [Int: String] = [:]
            while answered.count < 40 {
                let reply = try await socket.nextJSON()
                let id = try #require(reply["id"] as? Int, "\(reply)")
                #expect(answered[id] == nil, "request \(id) answered twice")
                let type = reply["type"] as? String ?? ""
                answered[id] = type == "error" ? "\(reply["code"] ?? "")" : type
            }
            #expect(Set(answered.values).isSubset(of: ["read_recorded", "429"]), "\(answered)")
            #expect(answered.values.contains("read_recorded"))
        }
    }

    @Test("a node without a store answers read with 501")
    func noStore() async throws {
        try await withNode(["DATABASE_URL": "none"]) { node in
            let socket = try await node.connect(as: "alice")
            let reply = try await socket.request(["type": "read", "messageId": "m", "id": 1])
            #expect(reply["code"] as? Int == 501)
        }
    }

    @Test("GET /api/conversations: newest activity first, the caller's unread count, the others' read positions, paged")
    func conversations() async throws {
        try await withNode { node in
            let alice = try await register(node, "alice")
            let bob = try await register(node, "bob")
            var lobby: [String] = []
            for index in 0..<3 {
                lobby.append(try await post(node, ["topic": "rooms.lobby", "content": "l\(index)"], as: alice))
            }
            #expect(try await HTTP.post("\(node.baseURL)/api/messages/\(lobby[0])/read", json: [:], headers: headers(bob)).status == 200)
            let direct = try await post(node, ["recipientId": bob.userId, "content": "dm"], as: alice)

            let listed = try await HTTP.get("\(node.baseURL)/api/conversations", headers: headers(bob))
            #expect(listed.status == 200)
            let body = try listed.json()
            let conversations = try #require(body["conversations"] as? [[String: Any]])
            try #require(conversations.count == 2)
            #expect(body["nextCursor"] is NSNull)

            let dm = conversations[0]
            #expect(dm["type"] as? String == "direct")
            #expect(dm["with"] as? String == alice.userId)
            #expect((dm["lastMessage"] as? [String: Any])?["id"] as? String == direct)
            #expect(dm["unreadCount"] as? Int == 1)
            #expect(dm["lastRead"] is NSNull)
            #expect((dm["readers"] as? [[String: Any]])?.map { $0["userId"] as? String } == [alice.userId])

            let room = conversations[1]
            #expect(room["type"] as? String == "topic")
            #expect(room["topic"] as? String == "rooms.lobby")
            #expect((room["lastMessage"] as? [String: Any])?["content"] as? String == "l2")
            #expect(room["unreadCount"] as? Int == 2)
            #expect((room["lastRead"] as? [String: Any])?["messageId"] as? String == lobby[0])
            let readers = try #require(room["readers"] as? [[String: Any]])
            #expect(readers.map { $0["userId"] as? String } == [alice.userId])
            #expect(readers.first?["messageId"] as? String == lobby[2], "posting counts as reading")

            // Alice sees bob's position in the lobby.
            let aliceView = try await HTTP.get("\(node.baseURL)/api/conversations?limit=1", headers: headers(alice)).json()
            let first = try #require((aliceView["conversations"] as? [[String: Any]])?.first)
            #expect(first["type"] as? String == "direct")
            let cursor = try #require(aliceView["nextCursor"] as? String)
            let second = try await HTTP.get(
                "\(node.baseURL)/api/conversations?limit=1&before=\(cursor.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!)",
                headers: headers(alice)
            ).json()
            let rest = try #require(second["conversations"] as? [[String: Any]])
            #expect(rest.map { $0["topic"] as? String } == ["rooms.lobby"])
            #expect((rest.first?["readers"] as? [[String: Any]])?.first?["messageId"] as? String == lobby[0])
            #expect(second["nextCursor"] is NSNull)

            // A token whose grants do not cover the lobby does not see it listed.
            let limited = node.token(bob.userId, grants: .init(subscribe: [try .init("messages.user.\(bob.userId)")], publish: []))
            let narrow = try await HTTP.get("\(node.baseURL)/api/conversations", headers: ["Authorization": "Bearer \(limited)"]).json()
            #expect((narrow["conversations"] as? [[String: Any]])?.map { $0["type"] as? String } == ["direct"])
        }
    }

    @Test(
        "bad read and conversation requests get the error shape with the right status",
        arguments: [
            ("POST", "/api/messages/does-not-exist/read", 404),
            ("GET", "/api/conversations?limit=0", 400),
            ("GET", "/api/conversations?limit=101", 400),
            ("GET", "/api/conversations?before=garbage", 400),
        ])
    func badRequests(method: String, path: String, status: Int) async throws {
        try await withNode { node in
            let alice = try await register(node, "alice")
            let response = try await HTTP.request(method, "\(node.baseURL)\(path)", headers: headers(alice))
            #expect(response.status == status, "\(response.text)")
            #expect(try response.json()["code"] as? Int == status)
            #expect(try await HTTP.request(method, "\(node.baseURL)\(path)").status == 401)
        }
    }

    @Test("a read of a message the caller cannot see is 403 over HTTP")
    func forbidden() async throws {
        try await withNode { node in
            let alice = try await register(node, "alice")
            let bob = try await register(node, "bob")
            let carol = try await register(node, "carol")
            let id = try await post(node, ["recipientId": bob.userId, "content": "x"], as: alice)
            let response = try await HTTP.post("\(node.baseURL)/api/messages/\(id)/read", json: [:], headers: headers(carol))
            #expect(response.status == 403)
            #expect(try response.json()["type"] as? String == "error")
        }
    }
}
