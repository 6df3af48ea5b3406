import ChorusClient
import Foundation
import Testing
import TestSupport

extension ClusterTests {
    @Suite("Two Redis servers")
    struct ShardingTests {
        @Test("topics spread over two Redis servers; every message arrives once; stopping one server affects only its topics")
        func twoServers() async throws {
            try await withCluster(redisServers: 2) { cluster in
                let topics = (0..<20).map { "orders.region-\($0)" }
                let home = Dictionary(uniqueKeysWithValues: topics.map { ($0, RedisPlacement.server(forKey: $0, among: 2)) })
                try #require(Set(home.values) == [0, 1], "the 20 topics use both servers")

                // Node 1 holds the 20 topics, node 3 one pattern covering them all.
                let subscribers = [try await cluster.node(1).connect(as: "alice"), try await cluster.node(3).connect(as: "carol")]
                for topic in topics { try await subscribers[0].subscribe(topic) }
                try await subscribers[1].subscribe("orders.*")
                // Each topic's channel is subscribed on the server its hash names and on no
                // other; the pattern on every server.
                let placed = await eventually(within: .seconds(20)) {
                    for (index, server) in cluster.redis.enumerated() {
                        guard let counts = try? await server.subscriberCounts(topics.map { "pubsub:\($0)" }),
                            (try? await server.patternCount()) == 1
                        else { return false }
                        for topic in topics where counts["pubsub:\(topic)"] != (home[topic] == index ? 1 : 0) { return false }
                    }
                    return true
                }
                try #require(placed, "every topic on the server its hash names and on no other, the pattern on both")

                let publisher = try await cluster.node(2).connect(as: "bob")
                for round in 0..<3 {
                    for topic in topics { try await publisher.publish(topic: topic, data: ["seq": round]) }
                }
                for (node, subscriber) in zip(["node-1", "node-3"], subscribers) {
                    let received = try await subscriber.deliveries(60)
                    for topic in topics {
                        #expect(received.filter { $0.topic == topic }.map(\.seq) == [0, 1, 2], "\(topic) on \(node)")
                    }
                }
                // Then one marker per topic: each follows its topic's messages through that
                // topic's server (published earlier, they could overtake another server's messages).
                var markers: [String] = []
                for topic in topics { markers.append(try await publisher.publishMarker(topic: topic)) }
                for (node, subscriber) in zip(["node-1", "node-3"], subscribers) {
                    #expect(try await subscriber.messages(before: markers) == [], "no duplicate on \(node)")
                }

                // Stop the second server.
                let (alive, dead) = (cluster.redis[0], cluster.redis[1])
                await dead.kill()
                let split = await eventually(within: .seconds(20)) {
                    for node in cluster.nodes {
                        let states = try? await node.backendStates()
                        if states?[cluster.backendAddress(alive)] != "connected" || states?[cluster.backendAddress(dead)] != "fallback" {
                            return false
                        }
                    }
                    return true
                }
                try #require(split, "every node reports the stopped server fallback and the other connected")

                let surviving = topics.filter { home[$0] == 0 }
                let stranded = topics.filter { home[$0] == 1 }
                for topic in topics { try await publisher.publish(topic: topic, data: ["seq": 3]) }
                for (node, subscriber) in zip(["node-1", "node-3"], subscribers) {
                    let received = try await subscriber.deliveries(surviving.count)
                    #expect(received.map(\.topic) == surviving.map(Optional.some), "topics of the live server cross to \(node)")
                }
                // The stopped server's topics have no route to another node; markers on the live
                // server's topics follow everything that crosses.
                var liveMarkers: [String] = []
                for topic in surviving { liveMarkers.append(try await publisher.publishMarker(topic: topic)) }
                for (node, subscriber) in zip(["node-1", "node-3"], subscribers) {
                    #expect(try await subscriber.messages(before: liveMarkers) == [], "topics of the stopped server do not reach \(node)")
                }

                // The stopped server's topics still work within one node.
                let neighbour = try await cluster.node(1).connect(as: "dora")
                try await neighbour.publish(topic: stranded[0], data: ["seq": 4])
                let local = try await subscribers[0].deliveries(1)
                #expect(local.map(\.topic) == [stranded[0]])
                #expect(local.map(\.seq) == [4])
                let crossing = try await neighbour.publishMarker(topic: surviving[0])
                #expect(try await subscribers[1].messages(before: crossing) == [], "but not across nodes")

                // The server back: each node tells the subscriptions whose messages travel through
                // it (its topics, every pattern, the users it holds) that some may be missing, and
                // no others. The nodes that published to its topics meanwhile (node-1 and node-2)
                // announce them too, which may repeat a notice.
                try await dead.start()
                func onStopped(_ key: String) -> Bool { RedisPlacement.server(forKey: key, among: 2) == 1 }
                let expected: [Set<String>] = [
                    Set(stranded + (onStopped("@user:alice") ? ["(user)"] : [])),
                    Set(["orders.*"] + (onStopped("@user:carol") ? ["(user)"] : [])),
                ]
                for (index, subscriber) in subscribers.enumerated() {
                    var gaps: Set<String> = []
                    func note(_ frame: [String: Any]?) {
                        if frame?["type"] as? String == "gap" { gaps.insert(frame?["topic"] as? String ?? "(user)") }
                    }
                    // (Alice has dora's marker above still unread: only the gap notices count here.)
                    let deadline = ContinuousClock.now + .seconds(20)
                    while !gaps.isSuperset(of: expected[index]), ContinuousClock.now < deadline {
                        note(try await subscriber.nextJSON(timeout: deadline - ContinuousClock.now))
                    }
                    // Whatever else arrives before a marker sent now: no notice for any other subscription.
                    let after = try await publisher.publishMarker(topic: surviving[0])
                    for text in try await subscriber.messages(before: after) {
                        note(try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
                    }
                    #expect(gaps == expected[index], "subscriber \(index + 1)")
                }
                let counts = [
                    ((try await cluster.node(1).stats())["messages"] as? [String: Any])?["gapNotices"] as? Int ?? 0,
                    ((try await cluster.node(3).stats())["messages"] as? [String: Any])?["gapNotices"] as? Int ?? 0,
                ]
                #expect(counts[0] >= expected[0].count && counts[1] >= expected[1].count, "gap notices counted: \(counts)")
            }
        }
    }
}
