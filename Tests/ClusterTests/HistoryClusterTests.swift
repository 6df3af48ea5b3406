import ChorusClient
import Foundation
import Testing
import TestSupport

extension ClusterTests {
    /// History on Redis streams across nodes: the replay race, idempotent publishes, and what a
    /// Redis restart does to recovery with and without persistence.
    @Suite("History and recovery across nodes (Redis)")
    struct HistoryClusterTests {
        @Test("replay race across two nodes: recovering from random offsets while publishing, every subscriber gets the exact sequence")
        func replayRace() async throws {
            try await withCluster(nodes: 2, environment: ["HISTORY_SIZE": "1000"]) { cluster in
                let publisher = try await cluster.node(1).connect(as: "pub")
                let report = try await ReplayRace.run(
                    topic: "race.redis", count: 400, recoverers: 12, publisher: publisher,
                    connect: { n in try await cluster.node(n % 2 == 0 ? 2 : 1).connect(as: "sub-\(n)") })
                #expect(report.recoveries.count == 12)
            }
        }

        @Test("while Redis does not answer, one user has at most 4 GET /api/history reads in flight: more get 429 at once, and the 4 are answered once it does")
        func historyReadsInFlightBounded() async throws {
            try await withCluster(nodes: 1, environment: ["PUBSUB_REDIS_TIMEOUT": "20000"]) { cluster in
                let node = cluster.node(1)
                let url = "\(node.baseURL)/api/history/rooms.hung"
                let headers = ["Authorization": "Bearer \(node.token("bob"))"]
                #expect(try await HTTP.get(url, headers: headers).status == 200)
                // Each read waits on the paused Redis; four are refused at once.
                let statuses = try await cluster.redis[0].statusesWhilePaused(
                    Array(repeating: url, count: 8), headers: headers, refusedAtOnce: 4)
                #expect(statuses.prefix(4).allSatisfy { $0 == 429 }, "\(statuses)")
                #expect(statuses.suffix(4).allSatisfy { $0 == 200 }, "\(statuses)")
                #expect(try await HTTP.get(url, headers: headers).status == 200, "places free again")
            }
        }

        @Test("a messageId repeated on another node is a duplicate: acknowledged, delivered and stored once")
        func idempotentAcrossNodes() async throws {
            try await withCluster(nodes: 2) { cluster in
                let subscriber = try await cluster.node(2).connect(as: "alice")
                _ = try await subscriber.subscribeWithHistory("chat.idem")
                let first = try await cluster.node(1).connect(as: "bob")
                let second = try await cluster.node(2).connect(as: "bob")
                let sent = try await first.publishAcknowledged(topic: "chat.idem", data: ["n": 1], messageId: "retry-me")
                let retried = try await second.publishAcknowledged(topic: "chat.idem", data: ["n": 1], messageId: "retry-me")
                #expect(sent["duplicate"] as? Bool == false)
                #expect(retried["duplicate"] as? Bool == true)
                #expect(HistoryMark(retried) == HistoryMark(sent))
                let next = try await second.publishAcknowledged(topic: "chat.idem", data: ["n": 2], messageId: "other")
                let received = try await subscriber.messages(of: "chat.idem", through: try #require(next["offset"] as? Int))
                #expect(received.map { $0["messageId"] as? String } == ["retry-me", "other"])
                let history = try await HTTP.get(
                    "\(cluster.node(1).baseURL)/api/history/chat.idem", headers: ["X-API-Key": Cluster.apiKey]
                ).json()
                #expect((history["messages"] as? [[String: Any]])?.count == 2)
            }
        }

        @Test("Redis refusing the history script (out of memory) answers the publisher with an error, never silence")
        func refusedScriptIsAnswered() async throws {
            try await withCluster(nodes: 1) { cluster in
                let publisher = try await cluster.node(1).connect(as: "bob")
                _ = try await publisher.publishAcknowledged(topic: "chat.oom", data: ["n": 1])
                try await Self.fill(cluster.redis[0])
                try await Self.expectRefused(publisher, topic: "chat.oom")
                _ = try await cluster.redis[0].command(["CONFIG", "SET", "maxmemory", "0"])
                let after = try await publisher.publishAcknowledged(topic: "chat.oom", data: ["n": 3])
                #expect(after["offset"] as? Int == 2, "the refused message took no offset")
            }
        }

        @Test("out of memory (noeviction), a publish to a new topic is refused like any other and stores nothing; a subscribe with history to a new topic is answered and stores nothing either")
        func refusedNewTopicStoresNothing() async throws {
            try await withCluster(nodes: 1) { cluster in
                let publisher = try await cluster.node(1).connect(as: "bob")
                let reader = try await cluster.node(1).connect(as: "alice")
                try await Self.fill(cluster.redis[0])
                try await Self.expectRefused(publisher, topic: "chat.new")
                let subscribed = try await reader.subscribeWithHistory("chat.unseen", replay: 10)
                #expect(subscribed["offset"] as? Int == 0)
                // Before, the script's first write for a new topic was a DEL, which Redis allows
                // under maxmemory, and after which it let the script write on.
                let keys = try await cluster.redis[0].command(["KEYS", "pubsub:@history*"])
                #expect(keys == .array([]), "nothing stored under maxmemory: \(keys)")
                // Counted and exported, so an alert can fire (ChorusRedisRefusingPublishes).
                #expect(try await cluster.node(1).adapter()["refused"] as? Int == 1)
                #expect(try await HTTP.get("\(cluster.node(1).baseURL)/metrics").text.contains("\nchorus_messages_refused_total 1"))
                // The node's heartbeat is refused too: the cluster list says it may be missing nodes.
                let incomplete = await eventually(within: .seconds(20)) {
                    let cluster = try? await HTTP.get("\(cluster.node(1).baseURL)/stats?scope=cluster").json()
                    return cluster?["complete"] as? Bool == false && (cluster?["error"] as? String ?? "").contains("OOM")
                }
                #expect(incomplete)
                _ = try await cluster.redis[0].command(["CONFIG", "SET", "maxmemory", "0"])
                let after = try await publisher.publishAcknowledged(topic: "chat.new", data: ["n": 2])
                #expect(after["offset"] as? Int == 1, "the refused message took no offset")
            }
        }

        /// Redis full, refusing writes: `noeviction` at a limit it is over.
        private static func fill(_ redis: RedisProcess) async throws {
            _ = try await redis.command(["CONFIG", "SET", "maxmemory-policy", "noeviction"])
            _ = try await redis.command(["CONFIG", "SET", "maxmemory", "1"])
        }

        /// A publish to `topic` is answered with error 503.
        private static func expectRefused(_ publisher: WebSocketClient, topic: String) async throws {
            try await publisher.send(json: ["type": "message", "topic": topic, "data": ["n": 0], "id": "refused"])
            let reply = try await publisher.next(type: "error", timeout: .seconds(20))
            #expect(reply["id"] as? String == "refused")
            #expect(reply["code"] as? Int == 503)
        }

        @Test("Redis restarted without persistence: a subscriber coming back is told recovered:false and the new epoch")
        func restartWithoutPersistence() async throws {
            try await withCluster(nodes: 2) { cluster in
                let seen = try await publishAndSee(cluster, topic: "chat.lost")
                await cluster.redis[0].kill()
                try await cluster.redis[0].start()
                try await cluster.waitUntilAdapters(are: "connected")
                let publisher = try await cluster.node(1).connect(as: "pub2")
                let after = try #require(HistoryMark(try await publisher.publishAcknowledged(topic: "chat.lost", data: ["n": 4])))
                #expect(after.epoch != seen.epoch, "the stream was lost: a new epoch")
                let back = try await cluster.node(2).connect(as: "alice")
                let reply = try await back.subscribeWithHistory("chat.lost", since: seen)
                #expect(reply["recovered"] as? Bool == false)
                #expect(HistoryMark(reply) == after)
            }
        }

        @Test("Redis restarted with AOF: a subscriber coming back recovers what was published since")
        func restartWithPersistence() async throws {
            try await withCluster(nodes: 2) { cluster in
                try await cluster.redis[0].enableAppendOnly()
                let seen = try await publishAndSee(cluster, topic: "chat.kept")
                await cluster.redis[0].stop()
                try await cluster.redis[0].start()
                try await cluster.waitUntilAdapters(are: "connected")
                let publisher = try await cluster.node(1).connect(as: "pub2")
                let after = try #require(HistoryMark(try await publisher.publishAcknowledged(topic: "chat.kept", data: ["n": 4])))
                #expect(after == HistoryMark(offset: seen.offset + 1, epoch: seen.epoch), "the stream goes on")
                let back = try await cluster.node(2).connect(as: "alice")
                let reply = try await back.subscribeWithHistory("chat.kept", since: HistoryMark(offset: seen.offset - 2, epoch: seen.epoch))
                #expect(reply["recovered"] as? Bool == true)
                let messages = try await back.messages(of: "chat.kept", through: after.offset)
                #expect(messages.map { $0["offset"] as? Int } == [seen.offset - 1, seen.offset, after.offset])
            }
        }

        @Test("Redis came back with older data (a snapshot older than its last writes): the topic starts a new epoch, so new messages reuse no offset a client saw, and a client recovering from one is told recovered:false")
        func rewoundRedisStartsNewEpoch() async throws {
            try await withCluster(nodes: 2) { cluster in
                let topic = "chat.rewound"
                let subscriber = try await cluster.node(2).connect(as: "alice")
                _ = try await subscriber.subscribeWithHistory(topic)
                let publisher = try await cluster.node(1).connect(as: "pub")
                for n in 1...3 { _ = try await publisher.publishAcknowledged(topic: topic, data: ["n": n]) }
                _ = try await cluster.redis[0].command(["SAVE"])
                for n in 4...6 { _ = try await publisher.publishAcknowledged(topic: topic, data: ["n": n]) }
                let seen = try #require(try await subscriber.messages(of: topic, through: 6).last.flatMap(HistoryMark.init))
                await cluster.redis[0].kill()
                try await cluster.redis[0].start()  // from the snapshot: the topic is back at offset 3
                try await cluster.waitUntilAdapters(are: "connected")
                let republisher = try await cluster.node(1).connect(as: "pub2")  // the first was told of a gap
                var after: [HistoryMark] = []
                for n in 7...9 {
                    after.append(try #require(HistoryMark(try await republisher.publishAcknowledged(topic: topic, data: ["n": n]))))
                }
                // Before, they were offsets 4 to 6 of the same epoch: SDKs dropped them as repeats,
                // and a client recovering from offset 6 was told recovered:true without them.
                #expect(after.allSatisfy { $0.epoch != seen.epoch }, "a new epoch: \(after) after \(seen)")
                #expect(after.map(\.offset) == [1, 2, 3])
                let live = try await subscriber.messages(of: topic, through: 3)
                #expect(live.map { ($0["data"] as? [String: Any])?["n"] as? Int } == [7, 8, 9])
                let back = try await cluster.node(2).connect(as: "bob")
                let reply = try await back.subscribeWithHistory(topic, since: seen)
                #expect(reply["recovered"] as? Bool == false)
                #expect(HistoryMark(reply) == after.last)
            }
        }

        @Test("Redis came back with older data, and no node was subscribed to the topic: the node that published the lost messages starts a new epoch before its next publish")
        func rewoundRedisSeenByPublisher() async throws {
            try await withCluster(nodes: 1) { cluster in
                let topic = "chat.rewound-unread"
                let publisher = try await cluster.node(1).connect(as: "pub")
                for n in 1...3 { _ = try await publisher.publishAcknowledged(topic: topic, data: ["n": n]) }
                _ = try await cluster.redis[0].command(["SAVE"])
                var seen: HistoryMark?
                for n in 4...6 { seen = HistoryMark(try await publisher.publishAcknowledged(topic: topic, data: ["n": n])) }
                let last = try #require(seen)
                await cluster.redis[0].kill()
                try await cluster.redis[0].start()
                try await cluster.waitUntilAdapters(are: "connected")
                let republisher = try await cluster.node(1).connect(as: "pub2")
                var after: HistoryMark?
                for n in 7...9 { after = HistoryMark(try await republisher.publishAcknowledged(topic: topic, data: ["n": n])) }
                #expect(after?.offset == 3, "offsets start again in the new epoch")
                #expect(after?.epoch != last.epoch)
                let back = try await cluster.node(1).connect(as: "alice")
                let reply = try await back.subscribeWithHistory(topic, since: last)
                #expect(reply["recovered"] as? Bool == false)
            }
        }

        /// Three messages published on node 1 and received on node 2; the last one's position.
        private func publishAndSee(_ cluster: Cluster, topic: String) async throws -> HistoryMark {
            let subscriber = try await cluster.node(2).connect(as: "alice")
            _ = try await subscriber.subscribeWithHistory(topic)
            let publisher = try await cluster.node(1).connect(as: "pub")
            for n in 1...3 { _ = try await publisher.publishAcknowledged(topic: topic, data: ["n": n]) }
            let received = try await subscriber.messages(of: topic, through: 3)
            await subscriber.close()
            await publisher.close()
            return try #require(received.last.flatMap(HistoryMark.init))
        }
    }
}
