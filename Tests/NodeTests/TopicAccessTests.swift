import Broker
@testable import Node
import Testing
import TestSupport

@Suite("Private topics: messages.user.<id> belongs to user <id>")
struct TopicAccessTests {
    @Test(
        "which subscriptions could reach another user's private topics (alice asking)",
        arguments: [
            ("messages.user.alice", false), ("messages.user.alice.**", false), ("messages.user.alice.typing", false),
            ("*.user.alice", false), ("messages.*.alice.**", false), ("messages.user", false), ("messages.group.*", false),
            ("chat.**", false), ("messages.user.bob", true), ("messages.user.*", true), ("messages.user.**", true),
            ("messages.**", true), ("**", true), ("*.*.*", true), ("**.typing", true), ("messages.user.*.typing", true),
            ("*.user.bob.**", true),
        ])
    func reaches(pattern: String, expected: Bool) throws {
        #expect(TopicAccess.reachesPrivateTopic(of: try TopicPattern(pattern), notOwnedBy: "alice") == expected)
    }

    /// The walk agrees with brute force: every pattern of up to three segments over a small
    /// alphabet, against every topic of up to six segments (long enough for a witness).
    @Test("the private-topic check agrees with a brute-force search")
    func bruteForce() async throws {
        let mismatches = try await onOwnThread {
            let words = ["messages", "user", "alice", "bob"]
            func sequences(_ alphabet: [String], upTo depth: Int) -> [String] {
                var all: [[String]] = [[]]
                var result: [String] = []
                for _ in 1...depth {
                    all = all.flatMap { prefix in alphabet.map { prefix + [$0] } }
                    result += all.map { $0.joined(separator: ".") }
                }
                return result
            }
            let topics = try sequences(words, upTo: 6).map { try Topic($0) }
            let othersPrivate = topics.filter {
                let parts = $0.name.split(separator: ".")
                return parts.count >= 3 && parts[0] == "messages" && parts[1] == "user" && parts[2] != "alice"
            }
            var mismatches: [String] = []
            for text in sequences(words + ["*", "**"], upTo: 3) {
                let pattern = try TopicPattern(text)
                let expected = othersPrivate.contains { pattern.matches($0) }
                if TopicAccess.reachesPrivateTopic(of: pattern, notOwnedBy: "alice") != expected { mismatches.append(text) }
            }
            return mismatches
        }
        #expect(mismatches.isEmpty)
    }

    @Test("over the WebSocket, a token without grants gets 403 for other users' private topics and may use its own")
    func websocket() async throws {
        try await withNode { node in
            let alice = try await node.connect(as: "alice")
            for allowed in ["messages.user.alice", "messages.user.alice.**", "chat.*"] {
                #expect(try await alice.request(["type": "subscribe", "topic": allowed])["type"] as? String == "subscribed")
            }
            for refused in ["messages.user.bob", "messages.user.*", "**"] {
                let reply = try await alice.request(["type": "subscribe", "topic": refused])
                #expect(reply["code"] as? Int == 403, "\(refused): \(reply)")
            }
            let publish = try await alice.request(["type": "message", "topic": "messages.user.bob", "data": "psst"])
            #expect(publish["code"] as? Int == 403)

            // A grant opens others' private topics explicitly (a support agent).
            let agent = try await node.connect()
            let token = node.token("agent", grants: .init(subscribe: [try .init("messages.user.**")], publish: []))
            _ = try await agent.request(["type": "auth", "token": token])
            #expect(try await agent.request(["type": "subscribe", "topic": "messages.user.*"])["type"] as? String == "subscribed")

            // What alice's own topic carries reaches her and the agent, and nobody else.
            let bob = try await node.connect(as: "bob")
            #expect(try await bob.request(["type": "subscribe", "topic": "messages.user.bob"])["type"] as? String == "subscribed")
            #expect(try await bob.request(["type": "subscribe", "topic": "markers.bob"])["type"] as? String == "subscribed")
            let server = try await node.connect(as: "alice")
            try await server.send(json: ["type": "message", "topic": "messages.user.alice", "data": "note to self"])
            let marker = try await server.publishMarker(topic: "markers.bob")
            #expect(try await alice.next(type: "message")["data"] as? String == "note to self")
            #expect(try await agent.next(type: "message")["topic"] as? String == "messages.user.alice")
            #expect(try await bob.messages(before: marker) == [], "alice's topic does not reach bob")
        }
    }

    @Test("authenticating again with narrower grants ends the subscriptions they no longer allow")
    func narrowerToken() async throws {
        try await withNode { node in
            let client = try await node.connect(as: "agent")
            for topic in ["chat.lobby", "news.world"] {
                #expect(try await client.request(["type": "subscribe", "topic": topic])["type"] as? String == "subscribed")
            }
            let narrower = node.token("agent", grants: .init(subscribe: [try .init("chat.*")], publish: []))
            #expect(try await client.request(["type": "auth", "token": narrower])["type"] as? String == "auth_success")
            let ended = try await client.next(type: "error")
            #expect(ended["code"] as? Int == 403)
            #expect((ended["details"] as? [String: Any])?["topic"] as? String == "news.world")
            #expect((ended["details"] as? [String: Any])?["subscriptionEnded"] as? Bool == true)

            let publisher = try await node.connect(as: "publisher")
            try await publisher.send(json: ["type": "message", "topic": "news.world", "data": "dropped"])
            try await publisher.send(json: ["type": "message", "topic": "chat.lobby", "data": "kept"])
            #expect(try await client.next(type: "message")["data"] as? String == "kept")
        }
    }

    @Test("POST /api/publish with a user token follows the same rules; only the API key may address a userId")
    func httpPublish() async throws {
        try await withNode(["API_KEY": "k"]) { node in
            let bearer = ["Authorization": "Bearer \(node.token("alice"))"]
            let own = try await HTTP.post("\(node.baseURL)/api/publish", json: ["topic": "messages.user.alice", "data": 1], headers: bearer)
            #expect(own.status == 202)
            let other = try await HTTP.post("\(node.baseURL)/api/publish", json: ["topic": "messages.user.bob", "data": 1], headers: bearer)
            #expect(other.status == 403)
            #expect(try other.json()["code"] as? Int == 403)
            let direct = try await HTTP.post("\(node.baseURL)/api/publish", json: ["userId": "bob", "data": 1], headers: bearer)
            #expect(direct.status == 403)
            let server = try await HTTP.post("\(node.baseURL)/api/publish", json: ["topic": "messages.user.bob", "data": 1], headers: ["X-API-Key": "k"])
            #expect(server.status == 202)
        }
    }
}
