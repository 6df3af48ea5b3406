import ChorusClient
import Foundation
import Testing
import TestSupport

extension ClusterTests {
    @Suite("Data across nodes, byte for byte")
    struct FaithfulDataAcrossNodesTests {
        /// The next frame whose `type` is `type`, as text.
        private func nextText(_ client: WebSocketClient, type: String) async throws -> String {
            while true {
                let text = try await client.nextText()
                if text.hasPrefix(#"{"type":"\#(type)""#) { return text }
            }
        }

        @Test("data published on node 2 reaches node 1 through Redis as sent; metadata stored in PostgreSQL reads back as posted")
        func acrossRedisAndPostgres() async throws {
            try await PostgresProcess.withServer { postgres in
                try await postgres.createDatabase("chorus")
                try await withCluster(environment: ["DATABASE_URL": postgres.url(database: "chorus")]) { cluster in
                    let subscriber = try await cluster.node(1).connect(as: "alice")
                    try await subscriber.subscribe("exact.t")
                    let publisher = try await cluster.node(2).connect(as: "bob")
                    try await publisher.awaitRoute(to: [subscriber], topic: "exact.t")

                    try await publisher.send(
                        text: #"{"type":"message","topic":"exact.t","data":"# + JSONFixtures.faithfulData
                            + #","metadata":{"z":12345678901234567890,"senderId":"forged","a":1e400}}"#)
                    let frame = try await nextText(subscriber, type: "message")
                    #expect(frame.contains(
                        #","data":"# + JSONFixtures.faithfulData
                            + #","metadata":{"z":12345678901234567890,"senderId":"bob","a":1e400},"#), "\(frame)")

                    let registered = try await HTTP.post(
                        "\(cluster.node(3).baseURL)/api/auth/register", json: ["username": "carol", "password": "correct horse"])
                    let token = try #require(try registered.json()["token"] as? String)
                    let metadata = #"{"ts":1796133956872868123,"neg":-9007199254740993,"e":1e400,"s":"\u00e9"}"#
                    let posted = try await HTTP.post(
                        "\(cluster.node(3).baseURL)/api/messages",
                        body: Data(#"{"topic":"exact.t","content":"hi","metadata":\#(metadata)}"#.utf8),
                        headers: ["Authorization": "Bearer \(token)", "Content-Type": "application/json"])
                    #expect(posted.status == 201, "\(posted.text)")
                    let event = try await nextText(subscriber, type: "message")
                    #expect(event.contains(#""metadata":\#(metadata)"#), "\(event)")
                    let listed = try await HTTP.get(
                        "\(cluster.node(1).baseURL)/api/messages?topic=exact.t", headers: ["Authorization": "Bearer \(token)"])
                    #expect(listed.text.contains(#""metadata":\#(metadata),"#), "\(listed.text)")
                }
            }
        }
    }
}
