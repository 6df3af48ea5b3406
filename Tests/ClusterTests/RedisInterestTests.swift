import ChorusClient
import Testing
import TestSupport

extension ClusterTests {
    @Suite("What a node holds in Redis")
    struct RedisInterestTests {
        /// Waits (bounded) until `PUBSUB NUMSUB` on `server` reports `expected` for each channel;
        /// the last counts seen.
        static func counts(
            on server: RedisProcess, become expected: [String: Int], within timeout: Duration = .seconds(20)
        ) async -> [String: Int] {
            var last: [String: Int] = [:]
            _ = await eventually(within: timeout) {
                last = (try? await server.subscriberCounts(Array(expected.keys))) ?? [:]
                return last == expected
            }
            return last
        }

        @Test("a node releases a topic in Redis when its last local subscriber leaves, by unsubscribing or by disconnecting")
        func lastSubscriberLeaves() async throws {
            try await withCluster(nodes: 2) { cluster in
                let redis = cluster.redis[0]
                let channel = "pubsub:interest.room"
                let first = try await cluster.node(1).connect(as: "u1")
                let second = try await cluster.node(1).connect(as: "u2")
                try await first.subscribe("interest.room")
                try await second.subscribe("interest.room")
                #expect(await Self.counts(on: redis, become: [channel: 1]) == [channel: 1], "one subscription per node")

                #expect(try await first.request(["type": "unsubscribe", "topic": "interest.room"])["type"] as? String == "unsubscribed")
                // Still held for the second subscriber: a message from node 2 reaches it.
                let publisher = try await cluster.node(2).connect(as: "p")
                try await publisher.awaitRoute(to: [second], topic: "interest.room")
                #expect(try await redis.subscriberCounts([channel]) == [channel: 1])

                await second.close()
                #expect(await Self.counts(on: redis, become: [channel: 0]) == [channel: 0], "released with the last subscriber")
            }
        }

        @Test("subscribes, unsubscribes and reconnects during a Redis outage hold once it is back: PUBSUB NUMSUB and delivery across nodes agree")
        func changesDuringOutage() async throws {
            try await withCluster { cluster in
                let redis = cluster.redis[0]
                let kept = try await cluster.node(1).connect(as: "kept")
                let leaving = try await cluster.node(1).connect(as: "leaving")
                var reconnecting = try await cluster.node(3).connect(as: "reconnecting")
                try await kept.subscribe("outage.kept")
                try await leaving.subscribe("outage.dropped")
                try await leaving.subscribe("outage.marker")
                try await reconnecting.subscribe("outage.again")

                await redis.kill()
                try await cluster.waitUntilAdapters(are: "fallback")

                // While Redis is down: one unsubscribe, one new subscription, one client that
                // disconnects and comes back to subscribe again.
                #expect(try await leaving.request(["type": "unsubscribe", "topic": "outage.dropped"])["type"] as? String == "unsubscribed")
                let newcomer = try await cluster.node(3).connect(as: "newcomer")
                try await newcomer.subscribe("outage.new")
                await reconnecting.close()
                reconnecting = try await cluster.node(3).connect(as: "reconnecting")
                try await reconnecting.subscribe("outage.again")

                try await redis.start()
                try await cluster.waitUntilAdapters(are: "connected")
                let expected = [
                    "pubsub:outage.kept": 1, "pubsub:outage.dropped": 0, "pubsub:outage.marker": 1,
                    "pubsub:outage.new": 1, "pubsub:outage.again": 1,
                ]
                #expect(await Self.counts(on: redis, become: expected) == expected)

                // Confirmed by Redis, so the first message from node 2 crosses.
                let publisher = try await cluster.node(2).connect(as: "p")
                for topic in ["outage.kept", "outage.dropped", "outage.new", "outage.again"] {
                    try await publisher.publish(topic: topic, data: ["topic": topic])
                }
                let marker = try await publisher.publishMarker(topic: "outage.marker")
                for (client, topic) in [(kept, "outage.kept"), (newcomer, "outage.new"), (reconnecting, "outage.again")] {
                    let received = try await client.deliveries(1)
                    #expect(received.map(\.topic) == [topic])
                }
                // (Its user's `gap` notice aside: messages addressed to it may have been missed.)
                let after = try await leaving.messages(before: marker).filter { !$0.hasPrefix(#"{"type":"gap""#) }
                #expect(after == [], "nothing on the topic it left during the outage")
            }
        }
    }
}
