import ChorusClient
import Testing
import TestSupport

extension ClusterTests {
    /// `subscribed` is sent once the subscription is live in the whole cluster (Redis has
    /// confirmed it): nothing published after the reply is missed.
    @Suite("subscribed means live")
    struct SubscribedIsLiveTests {
        /// Sends one `subscribe` per topic at once and waits for every `subscribed` reply.
        static func subscribeAll(_ client: WebSocketClient, _ topics: [String]) async throws {
            for topic in topics {
                try await client.send(json: ["type": "subscribe", "topic": topic, "id": topic])
            }
            var answered: Set<String> = []
            while answered.count < topics.count {
                let reply = try await client.nextJSON(timeout: .seconds(30))
                guard reply["type"] as? String == "subscribed", let topic = reply["topic"] as? String else {
                    throw TestFailure("expected 'subscribed' for \(topics), got \(reply)")
                }
                answered.insert(topic)
            }
        }

        @Test("a client that subscribes to a pattern and a topic on node 1 gets all of 200 messages published the moment `subscribed` arrives, from node 2 and node 1, round after round")
        func publishedRightAfterSubscribed() async throws {
            try await withCluster(nodes: 2) { cluster in
                let subscriber = try await cluster.node(1).connect(as: "subscriber")
                let publishers = [
                    ("node-2", try await cluster.node(2).connect(as: "p2")),
                    ("node-1", try await cluster.node(1).connect(as: "p1")),
                ]
                let perPublisherAndTopic = 50
                for round in 0..<6 {
                    // Fresh interest every round: the node must subscribe in Redis each time.
                    let pattern = "live\(round).*"
                    let underPattern = "live\(round).room"
                    let topic = "live-topic\(round).room"
                    try await Self.subscribeAll(subscriber, [pattern, topic])

                    var expected: Set<String> = []
                    for seq in 0..<perPublisherAndTopic {
                        for (via, publisher) in publishers {
                            for target in [underPattern, topic] {
                                try await publisher.publish(topic: target, data: ["via": via, "seq": seq])
                                expected.insert("\(target) \(via) \(seq)")
                            }
                        }
                    }
                    let received = try await subscriber.deliveries(expected.count, within: .seconds(60))
                    let seen = Set(received.map { "\($0.topic ?? "-") \($0.string("via") ?? "-") \($0.seq ?? -1)" })
                    #expect(seen == expected, "round \(round): missing \(expected.subtracting(seen).sorted().prefix(10))")
                }
            }
        }

        @Test("with Redis down (fallback) a subscribe is answered at once, and local publishes reach it")
        func subscribeInFallback() async throws {
            try await withCluster(nodes: 1) { cluster in
                await cluster.redis[0].kill()
                try await cluster.waitUntilAdapters(are: "fallback")
                let subscriber = try await cluster.node(1).connect(as: "subscriber")
                try await Self.subscribeAll(subscriber, ["down.*", "down-topic.room"])
                let publisher = try await cluster.node(1).connect(as: "publisher")
                try await publisher.publish(topic: "down.room", data: ["seq": 1])
                try await publisher.publish(topic: "down-topic.room", data: ["seq": 2])
                let received = try await subscriber.deliveries(2)
                #expect(received.map(\.topic) == ["down.room", "down-topic.room"])
            }
        }

        @Test("a subscribe while Redis hangs (SIGSTOP) is answered once the node falls back, and local delivery is live then")
        func subscribeWhileRedisHangs() async throws {
            try await withCluster(nodes: 2) { cluster in
                let redis = cluster.redis[0]
                let subscriber = try await cluster.node(1).connect(as: "subscriber")
                let publisher = try await cluster.node(1).connect(as: "publisher")
                try await cluster.waitUntilAdapters(are: "connected")

                redis.pause()
                let state: String?
                do {
                    // Held until the marker PING after the PSUBSCRIBE is late: the link falls
                    // back (PUBSUB_REDIS_TIMEOUT) and releases it.
                    try await Self.subscribeAll(subscriber, ["hang.*"])
                    state = await cluster.node(1).adapterState()
                    try await publisher.publish(topic: "hang.room", data: ["seq": 1])
                    let received = try await subscriber.deliveries(1)
                    #expect(received.map(\.topic) == ["hang.room"])
                } catch {
                    redis.resume()
                    throw error
                }
                redis.resume()
                #expect(state == "fallback", "the reply came with the fall back, not before")
                try await cluster.waitUntilAdapters(are: "connected")
            }
        }
    }
}
