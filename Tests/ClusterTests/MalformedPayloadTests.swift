import ChorusClient
import Testing
import TestSupport

extension ClusterTests {
    @Suite("Foreign payloads on Redis")
    struct MalformedPayloadTests {
        @Test("garbage published straight onto a pubsub: channel is skipped and counted; the next message arrives")
        func garbageOnChannel() async throws {
            try await withCluster { cluster in
                let topic = "feed.main"
                let subscriber = try await cluster.node(1).connect(as: "alice")
                try await subscriber.subscribe(topic)
                let publisher = try await cluster.node(2).connect(as: "bob")
                try await publisher.awaitRoute(to: [subscriber], topic: topic)

                let garbage = ["notjson", "{\"v\":1}", "[1,2,3]", "{\"v\":99,\"id\":\"x\",\"origin\":\"y\"}", ""]
                for payload in garbage {
                    // Like `redis-cli PUBLISH pubsub:feed.main notjson`: node 1 is the one receiver.
                    #expect(try await cluster.redis[0].publish(payload, to: "pubsub:\(topic)") == 1)
                }
                try await publisher.publish(topic: topic, data: ["seq": 1])
                let marker = try await publisher.publishMarker(topic: topic)

                let next = try await subscriber.nextDelivery()
                #expect(next.seq == 1, "the first thing the subscriber sees after the garbage is the real message")
                #expect(try await subscriber.messages(before: marker) == [])
                let malformed = try await cluster.node(1).adapter()["malformed"] as? Int
                #expect(malformed == garbage.count)
            }
        }
    }
}
