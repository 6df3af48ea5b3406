import ChorusClient
import Foundation
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

        @Test("a subscribe followed at once by its unsubscribe is answered, in order: subscribed, then unsubscribed, for a pattern (whose PSUBSCRIBE is still on its way) and for a topic with history (whose read the unsubscribe cancels)")
        func unsubscribeRightAfterSubscribe() async throws {
            try await withCluster(nodes: 1) { cluster in
                let client = try await cluster.node(1).connect(as: "quick")
                for round in 0..<20 {
                    for (topic, history) in [("quick\(round).*", false), ("quick\(round).room", true)] {
                        var subscribe: [String: Any] = ["type": "subscribe", "topic": topic, "id": "s\(round)"]
                        if history { subscribe["replay"] = 5 }
                        try await client.send(json: subscribe)
                        try await client.send(json: ["type": "unsubscribe", "topic": topic, "id": "u\(round)"])
                        let first = try await client.nextJSON(timeout: .seconds(20))
                        let second = try await client.nextJSON(timeout: .seconds(20))
                        #expect(first["type"] as? String == "subscribed" && first["id"] as? String == "s\(round)", "\(topic): \(first)")
                        #expect(second["type"] as? String == "unsubscribed" && second["id"] as? String == "u\(round)", "\(topic): \(second)")
                    }
                }
            }
        }

        @Test("a client that subscribes to a pattern and a topic on node 1 gets every message published the moment `subscribed` arrives, by itself and others on node 1 and node 2, round after round", arguments: [
            "own connection first", "node 2 first",
        ])
        func publishedRightAfterSubscribed(order: String) async throws {
            try await withCluster(nodes: 2) { cluster in
                let subscriber = try await cluster.node(1).connect(as: "subscriber")
                var publishers = [
                    ("node-2", try await cluster.node(2).connect(as: "p2")),
                    ("node-1", try await cluster.node(1).connect(as: "p1")),
                ]
                // The subscriber's own connection is the shortest way to a publish right after the reply.
                let own = ("own", subscriber)
                publishers.insert(own, at: order == "own connection first" ? 0 : 1)
                let perPublisherAndTopic = 34  // 3 publishers x 2 topics x 34: 204 messages a round
                var incomplete: [String] = []
                for round in 0..<50 {
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
                    // A marker from each publisher after its messages (Redis keeps one connection's
                    // order): what has not arrived before them is lost.
                    var markers: [String] = []
                    for (_, publisher) in publishers { markers.append(try await publisher.publishMarker(topic: topic)) }
                    let received = try await subscriber.messages(before: markers)
                    let seen = Set(received.map { text in
                        let json = (try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any]) ?? [:]
                        let data = json["data"] as? [String: Any] ?? [:]
                        return "\(json["topic"] as? String ?? "-") \(data["via"] as? String ?? "-") \((data["seq"] as? Int) ?? -1)"
                    })
                    if seen != expected {
                        incomplete.append("round \(round): \(expected.count - expected.intersection(seen).count) of \(expected.count) missing, e.g. \(expected.subtracting(seen).sorted().prefix(3))")
                    }
                }
                #expect(incomplete == [])
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
