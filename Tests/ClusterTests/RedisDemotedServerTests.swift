import Foundation
import Testing
import TestSupport

extension ClusterTests {
    /// A fixed `PUBSUB_REDIS_URL` whose server stops being a master without Sentinel
    /// (`REPLICAOF`, a manual `FAILOVER`): a replica refuses the history script but still takes
    /// `PUBLISH`, which then reaches only its own subscribers.
    @Suite("A Redis server demoted to a replica under a fixed URL")
    struct RedisDemotedServerTests {
        @Test("the node asks ROLE and falls back within seconds, naming why, so its publishes are answered scope:node instead of acknowledged and lost for the other nodes; once the server is a master again it is connected")
        func demotedServerFallsBack() async throws {
            try await withCluster(nodes: 1) { cluster in
                let master = try RedisProcess(directory: try TestLogs.folder("redis-new-master"))
                try await master.start()
                do {
                    try await Self.demote(cluster, master: master)
                } catch {
                    _ = try? await cluster.redis[0].command(["REPLICAOF", "NO", "ONE"])
                    await master.stop()
                    throw error
                }
                await master.stop()
            }
        }

        private static func demote(_ cluster: Cluster, master: RedisProcess) async throws {
            let demoted = cluster.redis[0]
            let node = cluster.node(1)
            let publisher = try await node.connect(as: "p")
            _ = try await demoted.command(["REPLICAOF", "127.0.0.1", "\(master.port)"])
            // Before, node 1 stayed connected and acknowledged every PUBLISH, none of which
            // reached a node on the new master (0 of 150 in an operator's drill).
            try await cluster.waitUntilAdapters(are: "fallback", on: [node], within: .seconds(20))
            let backends = try await node.adapter()["backends"] as? [[String: Any]] ?? []
            #expect((backends.first?["lastError"] as? String ?? "").contains("is not a master"), "\(backends)")
            let published = try await publisher.request(["type": "message", "topic": "plain.t", "data": ["n": 1], "id": "p1"])
            #expect(published["type"] as? String == "published" && published["scope"] as? String == "node", "\(published)")

            _ = try await demoted.command(["REPLICAOF", "NO", "ONE"])
            try await cluster.waitUntilAdapters(are: "connected", on: [node], within: .seconds(20))
            // A master again: its messages go through Redis again (no scope).
            try await publisher.send(json: ["type": "message", "topic": "plain.t", "data": ["n": 2], "id": "p2"])
            let again = try await publisher.next(type: "published", timeout: .seconds(20))  // after its gap notice
            #expect(again["type"] as? String == "published" && again["scope"] == nil, "\(again)")
        }
    }
}
