import ChorusClient
import Testing
import TestSupport

extension ClusterTests {
    @Suite("Redis outage")
    struct RedisOutageTests {
        @Test("while Redis is down each node serves its own subscribers and reports fallback; when it is back delivery crosses nodes again, with no duplicates")
        func killAndRestart() async throws {
            try await withCluster { cluster in
                let topic = "alerts.ops"
                // One topic and one pattern subscription: both must be resubscribed.
                let subscriber1 = try await cluster.node(1).connect(as: "alice")
                let subscriber3 = try await cluster.node(3).connect(as: "carol")
                try await subscriber1.subscribe(topic)
                try await subscriber3.subscribe("alerts.*")
                let publisher1 = try await cluster.node(1).connect(as: "p1")
                let publisher2 = try await cluster.node(2).connect(as: "p2")
                let publisher3 = try await cluster.node(3).connect(as: "p3")
                try await publisher2.awaitRoute(to: [subscriber1, subscriber3], topic: topic)

                await cluster.redis[0].kill()
                try await cluster.waitUntilAdapters(are: "fallback")

                // Each node delivers to its own subscribers at once, and only to them.
                for seq in 0..<10 {
                    try await publisher1.publish(topic: topic, data: ["phase": "outage", "via": "node-1", "seq": seq])
                    try await publisher3.publish(topic: topic, data: ["phase": "outage", "via": "node-3", "seq": seq])
                }
                let local1 = try await subscriber1.deliveries(10)
                let local3 = try await subscriber3.deliveries(10)
                #expect(local1.map { "\($0.string("via") ?? "-") \($0.seq ?? -1)" } == (0..<10).map { "node-1 \($0)" })
                #expect(local3.map { "\($0.string("via") ?? "-") \($0.seq ?? -1)" } == (0..<10).map { "node-3 \($0)" })
                for node in cluster.nodes {
                    let adapter = try await node.adapter()
                    #expect(adapter["state"] as? String == "fallback", "\(node.id)")
                }

                try await cluster.redis[0].start()
                try await cluster.waitUntilAdapters(are: "connected")

                // Nobody resubscribes: the nodes did, and the first message already crosses.
                for seq in 0..<10 {
                    try await publisher2.publish(topic: topic, data: ["phase": "after", "via": "node-2", "seq": seq])
                }
                let marker = try await publisher2.publishMarker(topic: topic)
                for (node, subscriber) in [("node-1", subscriber1), ("node-3", subscriber3)] {
                    let after = try await subscriber.deliveries(10)
                    #expect(after.map { "\($0.string("via") ?? "-") \($0.seq ?? -1)" } == (0..<10).map { "node-2 \($0)" }, "on \(node)")
                    #expect(try await subscriber.messages(before: marker) == [], "no duplicate on \(node)")
                }
            }
        }
    }
}
