import ChorusClient
import Foundation
import Testing
import TestSupport

extension ClusterTests {
    @Suite("Accounts and messages across nodes (PostgreSQL)")
    struct MessagesAcrossNodesTests {
        @Test("register on node 1, log in on node 2, subscribe on node 1, and receive what another user posts over HTTP on node 3")
        func endToEnd() async throws {
            try await PostgresProcess.withServer { postgres in
                try await postgres.createDatabase("chorus")
                try await withCluster(environment: ["DATABASE_URL": postgres.url(database: "chorus")]) { cluster in
                    let credentials = { (name: String) in ["username": name, "password": "correct horse \(name)"] }
                    for name in ["alice", "bob"] {
                        let registered = try await HTTP.post("\(cluster.node(1).baseURL)/api/auth/register", json: credentials(name))
                        #expect(registered.status == 201, "\(registered.text)")
                    }
                    // One store behind every node: the account made on node 1 logs in on node 2.
                    let bob = try await HTTP.post("\(cluster.node(2).baseURL)/api/auth/login", json: credentials("bob")).json()
                    let alice = try await HTTP.post("\(cluster.node(3).baseURL)/api/auth/login", json: credentials("alice")).json()
                    let bobToken = try #require(bob["token"] as? String)
                    let bobId = try #require((bob["user"] as? [String: Any])?["id"] as? String)
                    let aliceToken = try #require(alice["token"] as? String)
                    let aliceId = try #require((alice["user"] as? [String: Any])?["id"] as? String)

                    let socket = try await WebSocketClient.connect(port: cluster.node(1).port, path: "/ws?token=\(bobToken)")
                    #expect(try await socket.nextJSON()["type"] as? String == "auth_success")
                    let inbox = "messages.user.\(bobId)"
                    for topic in ["rooms.lobby", inbox] {
                        #expect(try await socket.request(["type": "subscribe", "topic": topic])["type"] as? String == "subscribed")
                    }
                    // Bob's own connection on node 2 proves node 1's Redis subscriptions are live.
                    let prober = try await cluster.node(2).connect(as: bobId)
                    try await prober.awaitRoute(to: [socket], topic: "rooms.lobby")
                    try await prober.awaitRoute(to: [socket], topic: inbox)

                    let bearer = ["Authorization": "Bearer \(aliceToken)"]
                    let posted = try await HTTP.post(
                        "\(cluster.node(3).baseURL)/api/messages", json: ["topic": "rooms.lobby", "content": "hello from node 3"],
                        headers: bearer)
                    #expect(posted.status == 201)
                    let direct = try await HTTP.post(
                        "\(cluster.node(3).baseURL)/api/messages", json: ["recipientId": bobId, "content": "psst"], headers: bearer)
                    #expect(direct.status == 201)

                    let first = try await socket.next(type: "message")
                    #expect(first["topic"] as? String == "rooms.lobby")
                    #expect(first["eventType"] as? String == "message.sent")
                    #expect((first["data"] as? [String: Any])?["content"] as? String == "hello from node 3")
                    #expect((first["metadata"] as? [String: Any])?["senderId"] as? String == aliceId)
                    let second = try await socket.next(type: "message")
                    #expect(second["topic"] as? String == inbox)
                    #expect((second["data"] as? [String: Any])?["content"] as? String == "psst")
                    // Markers from node 3, once both events are in, on both of their topics (bob
                    // may publish on his own inbox): they follow the events' routes.
                    let nodeThree = try await cluster.node(3).connect(as: bobId)
                    let markers = [
                        try await nodeThree.publishMarker(topic: "rooms.lobby"), try await nodeThree.publishMarker(topic: inbox),
                    ]
                    #expect(try await socket.messages(before: markers) == [], "each event once")

                    // The conversation is stored once, readable from any node.
                    let listed = try await HTTP.get(
                        "\(cluster.node(1).baseURL)/api/messages?with=\(aliceId)", headers: ["Authorization": "Bearer \(bobToken)"])
                    #expect((try listed.json()["messages"] as? [[String: Any]])?.compactMap { $0["content"] as? String } == ["psst"])
                }
            }
        }
    }
}
