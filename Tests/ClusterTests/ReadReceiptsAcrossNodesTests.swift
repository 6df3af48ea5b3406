import ChorusClient
import Foundation
import Testing
import TestSupport

extension ClusterTests {
    @Suite("Read receipts across nodes")
    struct ReadReceiptsAcrossNodesTests {
        /// Where the two nodes keep their one store.
        enum Database: String, CaseIterable, CustomTestStringConvertible, Sendable {
            case sqlite = "one SQLite file"
            case postgres = "PostgreSQL"
            var testDescription: String { rawValue }
        }

        @Test("a read on node 1 reaches the other user on node 2 as message.read; both nodes list the same positions", arguments: Database.allCases)
        func readAcrossNodes(_ database: Database) async throws {
            try await Self.withDatabaseURL(database) { url in
                try await withCluster(nodes: 2, environment: ["DATABASE_URL": url]) { cluster in
                    try await Self.readAcross(cluster)
                }
            }
        }

        private static func readAcross(_ cluster: Cluster) async throws {
            let credentials = { (name: String) in ["username": name, "password": "correct horse \(name)"] }
            var sessions: [String: [String: Any]] = [:]
            for name in ["alice", "bob"] {
                let registered = try await HTTP.post("\(cluster.node(1).baseURL)/api/auth/register", json: credentials(name))
                #expect(registered.status == 201, "\(registered.text)")
                sessions[name] = try registered.json()
            }
            let token = { (name: String) in sessions[name]?["token"] as? String ?? "" }
            let id = { (name: String) in (sessions[name]?["user"] as? [String: Any])?["id"] as? String ?? "" }
            let (aliceId, bobId) = (id("alice"), id("bob"))
            let aliceBearer = ["Authorization": "Bearer \(token("alice"))"]

            // Alice listens on node 2: the lobby and her private topic.
            let alice = try await WebSocketClient.connect(port: cluster.node(2).port, path: "/ws?token=\(token("alice"))")
            #expect(try await alice.nextJSON()["type"] as? String == "auth_success")
            let inbox = "messages.user.\(aliceId)"
            for topic in ["rooms.lobby", inbox] {
                #expect(try await alice.request(["type": "subscribe", "topic": topic])["type"] as? String == "subscribed")
            }
            let prober = try await cluster.node(1).connect(as: aliceId)
            try await prober.awaitRoute(to: [alice], topic: "rooms.lobby")
            try await prober.awaitRoute(to: [alice], topic: inbox)

            // Alice posts on node 2; the events reach her too (skipped below).
            let posted = try await HTTP.post(
                "\(cluster.node(2).baseURL)/api/messages", json: ["topic": "rooms.lobby", "content": "hello"], headers: aliceBearer)
            let direct = try await HTTP.post(
                "\(cluster.node(2).baseURL)/api/messages", json: ["recipientId": bobId, "content": "psst"], headers: aliceBearer)
            let topicMessage = try #require(try posted.json()["id"] as? String)
            let directMessage = try #require(try direct.json()["id"] as? String)

            // Bob, on node 1, reads the direct message over the WebSocket, the lobby over HTTP.
            let bob = try await WebSocketClient.connect(port: cluster.node(1).port, path: "/ws?token=\(token("bob"))")
            #expect(try await bob.nextJSON()["type"] as? String == "auth_success")
            let recorded = try await bob.request(["type": "read", "messageId": directMessage, "id": 9])
            #expect(recorded["type"] as? String == "read_recorded", "\(recorded)")
            #expect(recorded["id"] as? Int == 9)
            #expect(recorded["advanced"] as? Bool == true)
            let readOverHTTP = try await HTTP.post(
                "\(cluster.node(1).baseURL)/api/messages/\(topicMessage)/read", json: [:],
                headers: ["Authorization": "Bearer \(token("bob"))"])
            #expect(readOverHTTP.status == 200)

            var reads: [String: [String: Any]] = [:]
            while reads.count < 2 {
                let event = try await alice.next(type: "message", timeout: .seconds(20))
                guard event["eventType"] as? String == "message.read" else { continue }
                reads[event["topic"] as? String ?? ""] = event["data"] as? [String: Any]
            }
            #expect(reads[inbox]?["messageId"] as? String == directMessage)
            #expect(reads[inbox]?["userId"] as? String == bobId)
            #expect(reads[inbox]?["readAt"] as? String == recorded["readAt"] as? String)
            #expect(reads["rooms.lobby"]?["messageId"] as? String == topicMessage)
            #expect(reads["rooms.lobby"]?["userId"] as? String == bobId)

            // One store: node 2 lists for alice where bob has read to.
            let listed = try await HTTP.get("\(cluster.node(2).baseURL)/api/conversations", headers: aliceBearer).json()
            let conversations = try #require(listed["conversations"] as? [[String: Any]])
            #expect(conversations.map { $0["type"] as? String } == ["direct", "topic"])
            for (conversation, message) in zip(conversations, [directMessage, topicMessage]) {
                let readers = conversation["readers"] as? [[String: Any]]
                #expect(readers?.map { $0["userId"] as? String } == [bobId])
                #expect(readers?.first?["messageId"] as? String == message)
                #expect(conversation["unreadCount"] as? Int == 0)
            }
        }

        /// Runs `body` with a `DATABASE_URL` both nodes share, removed afterwards.
        private static func withDatabaseURL(_ database: Database, _ body: (String) async throws -> Void) async throws {
            switch database {
            case .sqlite:
                let directory = FileManager.default.temporaryDirectory
                    .appendingPathComponent("chorus-receipts-\(UUID().uuidString.prefix(8).lowercased())")
                try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
                defer { try? FileManager.default.removeItem(at: directory) }
                try await body("sqlite:\(directory.appendingPathComponent("shared.sqlite").path)")
            case .postgres:
                try await PostgresProcess.withServer { postgres in
                    try await postgres.createDatabase("chorus")
                    try await body(postgres.url(database: "chorus"))
                }
            }
        }
    }
}
