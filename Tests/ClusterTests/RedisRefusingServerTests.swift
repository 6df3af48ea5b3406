import Foundation
import Testing
import TestSupport

extension ClusterTests {
    /// A Redis server that answers but will not serve a node as it needs: one demoted to a
    /// replica under a fixed `PUBSUB_REDIS_URL` (`REPLICAOF`, a manual `FAILOVER`: it refuses the
    /// history script but still takes `PUBLISH`, which then reaches only its own subscribers),
    /// and one at `maxclients`.
    @Suite("A Redis server that answers but will not serve the node")
    struct RedisRefusingServerTests {
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

        @Test("a Redis at maxclients: a node that cannot connect names Redis's reason (ERR max number of clients reached) in lastError, not only that the connection was closed")
        func maxClientsNamed() async throws {
            try await withCluster(nodes: 1) { cluster in
                let redis = cluster.redis[0]
                // Node 1's connections and this command's: one slot is left once it closes.
                let clients = try await redis.command(["CLIENT", "LIST"]).text?.split(separator: "\n").count ?? 0
                _ = try await redis.command(["CONFIG", "SET", "maxclients", "\(clients)"])
                let refused = try await cluster.startNode(2)
                // Redis answers the first command of a connection past the limit with the error and
                // closes it; that first command, CLIENT SETNAME, may be refused without failing
                // the handshake (a restricted ACL), so the error was dropped and only the close seen.
                let named = await eventually(within: .seconds(20)) {
                    let backends = (try? await refused.adapter()["backends"] as? [[String: Any]]) ?? []
                    return (backends.first?["lastError"] as? String ?? "").contains("max number of clients")
                }
                let adapter = (try? await refused.adapter()) ?? [:]
                #expect(named, "\(adapter)")
                await refused.stop()
                refused.checkExit()
                _ = try await redis.command(["CONFIG", "SET", "maxclients", "10000"])
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
