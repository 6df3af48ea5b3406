import ChorusClient
import Testing
import TestSupport

extension ClusterTests {
    @Suite("Delivery across nodes")
    struct CrossNodeDeliveryTests {
        @Test("subscribers on node 1 and node 3 receive every message published on node 2 once, in order")
        func publisherOnAnotherNode() async throws {
            try await withCluster { cluster in
                let topic = "news.headlines"
                let subscribers = [try await cluster.node(1).connect(as: "alice"), try await cluster.node(3).connect(as: "carol")]
                for subscriber in subscribers { try await subscriber.subscribe(topic) }
                let publisher = try await cluster.node(2).connect(as: "bob")
                try await publisher.awaitRoute(to: subscribers, topic: topic)

                for seq in 0..<100 { try await publisher.publish(topic: topic, data: ["seq": seq]) }
                let marker = try await publisher.publishMarker(topic: topic)

                for (node, subscriber) in zip(["node-1", "node-3"], subscribers) {
                    let received = try await subscriber.deliveries(100)
                    #expect(received.map(\.seq) == Array(0..<100), "on \(node)")
                    #expect(received.allSatisfy { $0.topic == topic && $0.senderId == "bob" }, "on \(node)")
                    #expect(try await subscriber.messages(before: marker) == [], "no duplicate on \(node)")
                }
            }
        }

        @Test("messages published through nginx, by WebSocket and by POST /api/publish, reach subscribers on every node once")
        func publishersBehindNginx() async throws {
            try await withCluster { cluster in
                let topic = "news.sports"
                let subscribers = [try await cluster.node(1).connect(as: "alice"), try await cluster.node(3).connect(as: "carol")]
                for subscriber in subscribers { try await subscriber.subscribe(topic) }
                let publisher = try await cluster.connectThroughNginx(as: "dave")
                try await publisher.awaitRoute(to: subscribers, topic: topic)

                // 50 over the WebSocket, and every fifth step one POST through nginx (which
                // spreads them over the nodes).
                for seq in 0..<50 {
                    try await publisher.publish(topic: topic, data: ["via": "websocket", "seq": seq])
                    if seq % 5 == 0 {
                        let status = try await cluster.publishThroughNginx(topic: topic, data: ["via": "http", "seq": seq / 5])
                        #expect(status == 202)
                    }
                }

                var markers: [String] = []
                for (node, subscriber) in zip(["node-1", "node-3"], subscribers) {
                    let received = try await subscriber.deliveries(60)
                    let websocket = received.filter { $0.string("via") == "websocket" }.map(\.seq)
                    let http = received.filter { $0.string("via") == "http" }.map(\.seq)
                    #expect(websocket == Array(0..<50), "one WebSocket's messages in publish order on \(node)")
                    // POSTs land on different nodes: each is accepted (202) before it has
                    // reached Redis, so only the set is certain, not the order between nodes.
                    #expect(http.compactMap { $0 }.sorted() == Array(0..<10), "each POST once on \(node)")
                    #expect(received.filter { $0.string("via") == "http" }.allSatisfy { $0.senderId == "server" })
                }
                // Published once all 60 have arrived (the POSTs take other routes and could trail
                // an earlier marker), it follows the WebSocket's messages on their route; the POSTs
                // are each counted once among the 60 above.
                markers.append(try await publisher.publishMarker(topic: topic))
                for (node, subscriber) in zip(["node-1", "node-3"], subscribers) {
                    #expect(try await subscriber.messages(before: markers) == [], "no duplicate on \(node)")
                }
            }
        }

        @Test("wildcard subscribers on other nodes receive exactly the matching topics once, in publish order")
        func wildcards() async throws {
            try await withCluster { cluster in
                let oneLevel = try await cluster.node(1).connect(as: "alice")
                let anyDepth = try await cluster.node(3).connect(as: "carol")
                try await oneLevel.subscribe("chat.*")
                try await anyDepth.subscribe("chat.**")
                let publisher = try await cluster.node(2).connect(as: "bob")
                try await publisher.awaitRoute(to: [oneLevel, anyDepth], topic: "chat.lobby")

                // Redis `*` crosses dots: node 1 must drop chat.lobby.thread itself.
                for seq in 0..<30 {
                    for topic in ["chat.lobby", "chat.lobby.thread", "chats.lobby", "news.chat"] {
                        try await publisher.publish(topic: topic, data: ["seq": seq])
                    }
                }
                // chat.lobby matches both patterns: the marker follows everything on both routes.
                let marker = try await publisher.publishMarker(topic: "chat.lobby")

                let shallow = try await oneLevel.deliveries(30)
                #expect(shallow.map(\.topic) == Array(repeating: "chat.lobby", count: 30))
                #expect(shallow.map(\.seq) == Array(0..<30))
                #expect(try await oneLevel.messages(before: marker) == [], "chat.* gets nothing deeper, and nothing twice")

                let deep = try await anyDepth.deliveries(60)
                let expected = (0..<30).flatMap { seq in ["chat.lobby \(seq)", "chat.lobby.thread \(seq)"] }
                #expect(deep.map { "\($0.topic ?? "-") \($0.seq ?? -1)" } == expected)
                #expect(try await anyDepth.messages(before: marker) == [], "chat.** gets nothing else, and nothing twice")
            }
        }
    }
}

extension ClusterTests {
    @Suite("Delivery across nodes: edges")
    struct CrossNodeEdgeTests {
        @Test("a message just under WEBSOCKET_MAX_MESSAGE_SIZE crosses Redis intact; one byte over closes the publisher with 1009")
        func nearTheSizeLimit() async throws {
            try await withCluster(nodes: 2) { cluster in
                let topic = "big.file"
                let subscriber = try await cluster.node(1).connect(as: "alice")
                try await subscriber.subscribe(topic)
                let publisher = try await cluster.node(2).connect(as: "bob")
                try await publisher.awaitRoute(to: [subscriber], topic: topic)

                let limit = 1_048_576
                let frame = { (padding: Int) in
                    #"{"type":"message","topic":"\#(topic)","data":{"pad":"\#(String(repeating: "x", count: padding))"}}"#
                }
                let overhead = frame(0).utf8.count
                try await publisher.send(text: frame(limit - overhead))
                let received = try await subscriber.nextDelivery(timeout: .seconds(30))
                #expect((received.data["pad"] as? String)?.utf8.count == limit - overhead, "the whole payload, once")
                #expect((received.data["pad"] as? String)?.allSatisfy { $0 == "x" } == true)

                try await publisher.send(text: frame(limit - overhead + 1))
                #expect(try await publisher.closeCode(timeout: .seconds(30)) == 1009)
                let marker = try await cluster.node(2).connect(as: "carol").publishMarker(topic: topic)
                #expect(try await subscriber.messages(before: marker) == [], "the oversized message is not delivered")
            }
        }

        @Test("publishers on every node at once: each subscriber gets every message once, each publisher's in its order")
        func concurrentPublishers() async throws {
            try await withCluster { cluster in
                let topic = "busy.room"
                let subscribers = [try await cluster.node(1).connect(as: "s1"), try await cluster.node(3).connect(as: "s3")]
                for subscriber in subscribers { try await subscriber.subscribe(topic) }
                var publishers: [WebSocketClient] = []
                for number in 1...3 { publishers.append(try await cluster.node(number).connect(as: "p\(number)")) }
                for publisher in publishers { try await publisher.awaitRoute(to: subscribers, topic: topic) }

                let perPublisher = 200
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for (index, publisher) in publishers.enumerated() {
                        group.addTask {
                            for seq in 0..<perPublisher {
                                try await publisher.publish(topic: topic, data: ["via": "p\(index + 1)", "seq": seq])
                            }
                        }
                    }
                    try await group.waitForAll()
                }
                for (node, subscriber) in zip(["node-1", "node-3"], subscribers) {
                    let received = try await subscriber.deliveries(3 * perPublisher, within: .seconds(60))
                    for via in ["p1", "p2", "p3"] {
                        #expect(received.filter { $0.string("via") == via }.map(\.seq) == Array(0..<perPublisher), "\(via) on \(node)")
                    }
                }
                // Markers only now: each follows its publisher's messages on their route.
                var markers: [String] = []
                for publisher in publishers { markers.append(try await publisher.publishMarker(topic: topic)) }
                for (node, subscriber) in zip(["node-1", "node-3"], subscribers) {
                    #expect(try await subscriber.messages(before: markers) == [], "no duplicate on \(node)")
                }
            }
        }

        @Test("a pattern with a leading ** (**.alert) through real Redis matches at any depth and nothing else")
        func leadingAnyDepth() async throws {
            try await withCluster(nodes: 2) { cluster in
                // A leading ** also matches others' private topics: it takes a grant.
                let subscriber = try await cluster.node(1).connect(as: "alice", subscribeGrants: ["**"])
                try await subscriber.subscribe("**.alert")
                let publisher = try await cluster.node(2).connect(as: "bob")
                try await publisher.awaitRoute(to: [subscriber], topic: "probe.alert")

                let matching = ["a.alert", "a.b.alert", "x.y.z.alert"]
                let other = ["alert", "a.alert.b", "a.alerts", "a.xalert", "alert.a"]
                for topic in matching + other { try await publisher.publish(topic: topic, data: ["topic": topic]) }
                let marker = try await publisher.publishMarker(topic: "end.alert")
                let received = try await subscriber.deliveries(matching.count)
                #expect(received.map(\.topic) == matching.map(Optional.some))
                #expect(try await subscriber.messages(before: marker) == [], "nothing else, nothing twice")
            }
        }
    }
}
