import Foundation
import Testing
import TestSupport

extension ClusterTests {
    /// One node loses Redis while the others keep it (a partition, an expired password): what it
    /// publishes meanwhile reaches its own subscribers only. Redis ACLs cut it off for real: its
    /// user is disabled and its connections killed, so every reconnect is refused until the
    /// user is enabled again.
    @Suite("One node cut off from Redis")
    struct RedisPartitionTests {
        @Test("a node cut off from Redis alone delivers its publishes locally and, with READY_REQUIRES_REDIS, answers /ready with 503; once back, the other nodes' subscribers of those topics, of patterns matching them and of those users are told of the gap, though their own node never lost Redis")
        func partitionedNode() async throws {
            try await withCluster(nodes: 1) { cluster in
                let redis = cluster.redis[0]
                // The least a node needs, as docs/cluster.md gives it: its prefix's keys and channels.
                _ = try await redis.command([
                    "ACL", "SETUSER", "island", "on", ">island-pass", "~pubsub:*", "allchannels", "+@all", "-@dangerous", "+role",
                ])
                let island = try await cluster.startNode(
                    2,
                    environment: [
                        "PUBSUB_REDIS_URL": "redis://island:island-pass@127.0.0.1:\(redis.port)", "READY_REQUIRES_REDIS": "true",
                    ])
                do {
                    try await Self.partition(cluster, island: island)
                } catch {
                    _ = try? await redis.command(["ACL", "SETUSER", "island", "on"])
                    await island.stop()
                    island.checkExit()
                    throw error
                }
                await island.stop()
                island.checkExit()
            }
        }

        private static func partition(_ cluster: Cluster, island: NodeProcess) async throws {
            let redis = cluster.redis[0]
            let topic = "isle.t"
            let mainland = try await cluster.node(1).connect(as: "m")
            try await mainland.subscribe(topic)
            try await mainland.subscribe("isle.*")
            let bob = try await cluster.node(1).connect(as: "bob")  // bob's own messages
            let local = try await island.connect(as: "l")
            try await local.subscribe(topic)
            let localPattern = try await island.connect(as: "lp")  // a PSUBSCRIBE under the node's ACL user
            try await localPattern.subscribe("isle.*")
            let publisher = try await island.connect(as: "p")
            try await publisher.awaitRoute(to: [mainland, local, localPattern], topic: topic)
            #expect(try await HTTP.get("\(island.baseURL)/ready").status == 200)

            _ = try await redis.command(["ACL", "SETUSER", "island", "off"])
            _ = try await redis.command(["CLIENT", "KILL", "USER", "island"])
            try await cluster.waitUntilAdapters(are: "fallback", on: [island])
            // A load balancer is told to send new clients elsewhere (they would miss the other nodes' messages).
            let unready = try await HTTP.get("\(island.baseURL)/ready")
            let status = try unready.json()["status"] as? String
            #expect(unready.status == 503 && status == "redis unreachable", "\(unready.text)")
            #expect(try await HTTP.get("\(island.baseURL)/metrics").text.contains("\nchorus_ready 0"))
            // Why its reconnects fail is logged (once), not only that the connection was lost.
            let named = await eventually { island.logTail(200).contains("Redis still unreachable, retrying with backoff") }
            #expect(named && island.logTail(200).contains("WRONGPASS"), "\(island.logTail(10))")
            // The publisher is told its message stayed on this node.
            let published = try await publisher.request(["type": "message", "topic": topic, "data": ["n": 1], "id": "cut-off"])
            #expect(published["type"] as? String == "published" && published["scope"] as? String == "node", "\(published)")
            #expect(published["uncertain"] == nil, "published once cut off: it never went to Redis")
            #expect(try await local.nextDelivery().data["n"] as? Int == 1, "delivered on its own node")
            let direct = try await HTTP.post(
                "\(island.baseURL)/api/publish", json: ["userId": "bob", "data": ["n": 1]], headers: ["X-API-Key": Cluster.apiKey])
            let scope = try direct.json()["scope"] as? String
            #expect(direct.status == 202 && scope == "node", "\(direct.text)")

            _ = try await redis.command(["ACL", "SETUSER", "island", "on"])
            try await cluster.waitUntilAdapters(are: "connected", on: [island])
            #expect(try await HTTP.get("\(island.baseURL)/ready").status == 200, "ready again")
            var gaps: Set<String> = []
            let deadline = ContinuousClock.now + .seconds(20)
            while gaps.count < 2, ContinuousClock.now < deadline {
                let frame = try await mainland.nextJSON(timeout: deadline - ContinuousClock.now)
                if frame["type"] as? String == "gap" {
                    gaps.insert(frame["topic"] as? String ?? "(user)")
                } else if frame["type"] as? String != "message" || (frame["data"] as? [String: Any])?["n"] != nil {
                    Issue.record("unexpected before the gap notices: \(frame)")
                }
            }
            #expect(gaps == [topic, "isle.*"], "the topic and the pattern, not the user (another user's messages)")
            let userGap = try await bob.next(type: "gap", timeout: .seconds(20))
            #expect(userGap["topic"] == nil, "the user's own messages: \(userGap)")

            // What the island publishes now reaches the mainland; what it published before never does.
            try await publisher.send(json: ["type": "message", "topic": topic, "data": ["n": 2], "id": "back"])
            let through = try await publisher.next(type: "published")  // (after its own node's gap notice)
            #expect(through["type"] as? String == "published" && through["scope"] == nil, "\(through)")
            #expect(try await mainland.nextDelivery().data["n"] as? Int == 2, "the first message after the notices")
            // Node 1's notices came from the island's announcement: its own link never fell back.
            #expect(try await cluster.node(1).adapter()["transitions"] as? Int == 1, "node 1 only connected, once")
            #expect(!island.logTail(500).contains("NOPERM"), "the documented ACL user allows everything the node sends")
        }
    }
}
