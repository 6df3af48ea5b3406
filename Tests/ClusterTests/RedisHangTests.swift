import ChorusClient
import Foundation
import Synchronization
import Testing
import TestSupport

extension ClusterTests {
    /// A Redis that stops answering (SIGSTOP) under load, and one that closes idle clients.
    @Suite("Redis hung or closing idle clients")
    struct RedisHangTests {
        /// One message as a subscriber saw it, with the test clock's time of arrival.
        struct Received: Sendable, Hashable {
            let via: String
            let seq: Int
            let at: Duration
        }

        /// One message as a publisher sent it.
        struct Sent: Sendable {
            let seq: Int
            let at: Duration
        }

        static let marker = -1
        /// Published on each node while Redis is hung: it reaches that node's own watcher
        /// before Redis is resumed.
        static let hangMarker = -2

        /// A flag the publishing tasks read.
        final class Switch: Sendable {
            private let on = Atomic<Bool>(true)
            var isOn: Bool { on.load(ordering: .relaxed) }
            func turnOff() { on.store(false, ordering: .relaxed) }
        }

        @Test("a hung Redis (SIGSTOP) under 100 msg/s: each node delivers its own publishes locally while Redis is still hung; after SIGCONT cross-node delivery returns, and subscribers are told of the gap; nothing twice, nothing lost on the publishing node")
        func hungRedis() async throws {
            try await withCluster(nodes: 2) { cluster in
                let topic = "hang.t"
                let redis = cluster.redis[0]
                let subscribers = [try await cluster.node(1).connect(as: "s1"), try await cluster.node(2).connect(as: "s2")]
                for subscriber in subscribers { try await subscriber.subscribe(topic) }
                let publishers = [try await cluster.node(1).connect(as: "p1"), try await cluster.node(2).connect(as: "p2")]
                for publisher in publishers { try await publisher.awaitRoute(to: subscribers, topic: topic) }
                // A topic, a pattern, and (every authenticated connection) the user's own messages.
                let watchers = [try await cluster.node(1).connect(as: "w1"), try await cluster.node(2).connect(as: "w2")]
                for watcher in watchers {
                    try await watcher.subscribe(topic)
                    try await watcher.subscribe("hang.*")
                }

                let clock = ContinuousClock()
                let origin = clock.now
                let collectors = subscribers.map { subscriber in
                    Task { try await Self.collect(subscriber, markers: 2, origin: origin) }
                }
                // 50 msg/s from each node: 100 msg/s over the cluster.
                let publishing = Switch()
                let senders = publishers.enumerated().map { index, publisher in
                    Task {
                        var sent: [Sent] = []
                        while publishing.isOn {
                            let seq = sent.count
                            sent.append(Sent(seq: seq, at: clock.now - origin))
                            try await publisher.publish(topic: topic, data: ["via": "node-\(index + 1)", "seq": seq])
                            try await Task.sleep(for: .milliseconds(20))
                        }
                        return sent
                    }
                }

                try await Task.sleep(for: .seconds(1))  // traffic through Redis before the hang
                let hang = clock.now - origin
                redis.pause()
                let fallbackSeen: Duration
                do {
                    try await cluster.waitUntilAdapters(are: "fallback", within: .seconds(20))
                    fallbackSeen = clock.now - origin - hang
                    try await Task.sleep(for: .seconds(2))  // publishing while Redis is hung
                    // Local delivery goes on while Redis is hung: a marker published on each node
                    // now reaches that node's watcher before Redis answers again.
                    for (index, publisher) in publishers.enumerated() {
                        let via = "node-\(index + 1)"
                        try await publisher.publish(topic: topic, data: ["via": via, "seq": Self.hangMarker])
                        let deadline = ContinuousClock.now + .seconds(20)
                        while true {
                            let delivery = try await watchers[index].nextDelivery(timeout: deadline - ContinuousClock.now)
                            if delivery.seq == Self.hangMarker && delivery.string("via") == via { break }
                        }
                    }
                } catch {
                    redis.resume()
                    throw error
                }
                let thaw = clock.now - origin
                let thawDate = Date()
                redis.resume()
                try await cluster.waitUntilAdapters(are: "connected", within: .seconds(20))
                let connectedSeen = clock.now - origin - thaw
                let connectedAt = clock.now - origin
                // Each node, back on Redis, tells every subscription (and user) whose messages
                // travel through it that some may be missing, after the outage. (The other node's
                // announcement of what it published meanwhile may repeat a topic's notice.)
                let timestamps = ISO8601DateFormatter()
                timestamps.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
                for (index, watcher) in watchers.enumerated() {
                    var gaps: Set<String> = []
                    // Messages keep arriving meanwhile: the wait for the notices has a deadline of its own.
                    let deadline = ContinuousClock.now + .seconds(20)
                    while gaps.count < 3, ContinuousClock.now < deadline {
                        let gap = try await watcher.nextJSON(timeout: deadline - ContinuousClock.now)
                        guard gap["type"] as? String == "gap" else { continue }
                        gaps.insert(gap["topic"] as? String ?? "(user)")
                        let sent = try #require(timestamps.date(from: gap["timestamp"] as? String ?? ""))
                        #expect(sent.timeIntervalSince(thawDate) > -0.002, "sent after the outage, not before: \(gap)")
                    }
                    #expect(gaps == ["(user)", "hang.*", topic], "node-\(index + 1): \(gaps)")
                }
                try await Task.sleep(for: .seconds(2))  // publishing through Redis again

                publishing.turnOff()
                var sent: [[Sent]] = []
                for sender in senders { sent.append(try await sender.value) }
                // Trailing markers: once both arrived everywhere, everything before them has too.
                for (index, publisher) in publishers.enumerated() {
                    try await publisher.publish(topic: topic, data: ["via": "node-\(index + 1)", "seq": Self.marker])
                }
                var received: [[Received]] = []
                for collector in collectors { received.append(try await collector.value) }

                for (index, messages) in received.enumerated() {
                    let node = "node-\(index + 1)"
                    let keys = messages.map { "\($0.via) \($0.seq)" }
                    #expect(Set(keys).count == keys.count, "no message delivered twice on \(node)")
                    let own = Set(messages.filter { $0.via == node }.map(\.seq))
                    let missing = sent[index].map(\.seq).filter { !own.contains($0) }
                    #expect(missing.isEmpty, "\(node) delivered all \(sent[index].count) of its own publishes; missing \(missing.prefix(20))")

                    // Own publishes while Redis is hung: delivered locally within the deadline.
                    let arrival = Dictionary(messages.filter { $0.via == node }.map { ($0.seq, $0.at) }, uniquingKeysWith: min)
                    let duringHang = sent[index].filter { $0.at >= hang && $0.at < thaw }
                    let worst = duringHang.compactMap { message in arrival[message.seq].map { $0 - message.at } }.max() ?? .zero
                    #expect(!duringHang.isEmpty)

                    // Cross-node delivery after SIGCONT: the other node's publishes since it
                    // reported connected all arrive; the first arrival after the thaw is measured.
                    let other = 1 - index
                    let theirs = Set(messages.filter { $0.via == "node-\(other + 1)" }.map(\.seq))
                    let lost = sent[other].filter { $0.at > connectedAt && !theirs.contains($0.seq) }.map(\.seq)
                    #expect(lost.isEmpty, "\(node) got every message node-\(other + 1) published after reconnecting; missing \(lost.prefix(20))")
                    let firstCross = messages.filter { $0.via == "node-\(other + 1)" && $0.at > thaw && $0.seq >= 0 }
                        .map(\.at).min().map { $0 - thaw }
                    print(
                        "redis hang, \(node): fallback reported \(Self.ms(fallbackSeen)) after SIGSTOP; own publishes during the hang delivered locally within \(Self.ms(worst)) (\(duringHang.count) messages); connected reported \(Self.ms(connectedSeen)) after SIGCONT; first cross-node message \(firstCross.map(Self.ms) ?? "none") after SIGCONT"
                    )
                    #expect(firstCross != nil)
                }
                // The failover is counted where an operator's alert looks, with what it means.
                for node in cluster.nodes {
                    let text = try await HTTP.get("\(node.baseURL)/metrics").text
                    #expect((Self.sample(text, "chorus_gap_notices_total") ?? 0) >= 3, "\(node.id) counted its gap notices")
                    #expect(text.contains("# HELP chorus_redis_transitions_total "), "\(text)")
                    let fallbacks = Self.sample(text, #"chorus_redis_transitions_total{to="fallback"}"#) ?? 0
                    let connects = Self.sample(text, #"chorus_redis_transitions_total{to="connected"}"#) ?? 0
                    #expect(fallbacks >= 1, "\(node.id) counted the fallback: \(text)")
                    #expect(connects == fallbacks + 1, "\(node.id): connected at start and after each fallback")
                }
            }
        }

        /// The value of one sample line (`name{labels} value`) of a Prometheus text exposition.
        static func sample(_ text: String, _ series: String) -> Double? {
            text.split(separator: "\n").first { $0.hasPrefix(series + " ") }.flatMap { Double($0.dropFirst(series.count + 1)) }
        }

        /// With the default deadline the keepalive `PING`s keep the publisher connections open;
        /// with a 10-minute one they never ping within the test, Redis closes them, and the
        /// first publish finds its connection closed and is retried on a new one.
        @Test(
            "with Redis closing idle clients (CONFIG SET timeout 1), nodes idle for 5 s lose no message and count no failover",
            arguments: [nil, "600000"])
        func idleTimeout(redisTimeout: String?) async throws {
            let environment = redisTimeout.map { ["PUBSUB_REDIS_TIMEOUT": $0] } ?? [:]
            try await withCluster(environment: environment) { cluster in
                let topic = "idle.t"
                let redis = cluster.redis[0]
                _ = try await redis.command(["CONFIG", "SET", "timeout", "1"])
                var subscribers: [WebSocketClient] = []
                var publishers: [WebSocketClient] = []
                for number in 1...3 {
                    let subscriber = try await cluster.node(number).connect(as: "s\(number)")
                    try await subscriber.subscribe(topic)
                    subscribers.append(subscriber)
                    publishers.append(try await cluster.node(number).connect(as: "p\(number)"))
                }
                for publisher in publishers { try await publisher.awaitRoute(to: subscribers, topic: topic) }
                var before: [Int] = []
                for node in cluster.nodes { before.append(try await node.adapter()["transitions"] as? Int ?? -1) }

                // The scenario itself: five seconds without a publish, five times Redis' timeout.
                try await Task.sleep(for: .seconds(5))

                var expected: Set<String> = []
                for (index, publisher) in publishers.enumerated() {
                    for seq in 0..<3 {
                        try await publisher.publish(topic: topic, data: ["via": "node-\(index + 1)", "seq": seq])
                        expected.insert("node-\(index + 1) \(seq)")
                    }
                }
                for (index, subscriber) in subscribers.enumerated() {
                    let got = try await subscriber.deliveries(expected.count)
                    #expect(Set(got.map { "\($0.string("via") ?? "-") \($0.seq ?? -1)" }) == expected, "on node-\(index + 1)")
                }
                // Markers once all has arrived: each follows its publisher's messages.
                var markers: [String] = []
                for publisher in publishers { markers.append(try await publisher.publishMarker(topic: topic)) }
                for (index, subscriber) in subscribers.enumerated() {
                    #expect(try await subscriber.messages(before: markers) == [], "no duplicate on node-\(index + 1)")
                }
                for (index, node) in cluster.nodes.enumerated() {
                    let adapter = try await node.adapter()
                    #expect(adapter["transitions"] as? Int == before[index], "no failover counted on \(node.id)")
                    #expect(adapter["state"] as? String == "connected")
                }
                // With keepalives the nodes' connections lived through the idle period; without,
                // the publishers' were closed by Redis and remade (the retry), the subscribers'
                // untouched.
                let clients = try await redis.cli(["CLIENT", "LIST"]).split(separator: "\n")
                for node in cluster.nodes {
                    for role in ["sub", "pub"] {
                        let line = clients.first { $0.contains("name=chorus:\(node.id):\(role) ") }
                        let age = line.flatMap { $0.split(separator: " ").first { $0.hasPrefix("age=") } }.flatMap { Int($0.dropFirst(4)) }
                        let survived = redisTimeout == nil || role == "sub"
                        // A remade publisher may be gone again: Redis closes it after a second idle.
                        #expect(
                            survived ? (age ?? 0) >= 5 : (age ?? 0) < 5,
                            "\(node.id)'s \(role) connection is \(age.map(String.init) ?? "missing") s old")
                    }
                }
            }
        }

        /// Reads deliveries until `markers` trailing markers arrived.
        static func collect(_ subscriber: WebSocketClient, markers: Int, origin: ContinuousClock.Instant) async throws -> [Received] {
            var received: [Received] = []
            var seen = 0
            while seen < markers {
                let delivery = try await subscriber.nextDelivery(timeout: .seconds(60))
                guard let via = delivery.string("via"), let seq = delivery.seq else { continue }
                received.append(Received(via: via, seq: seq, at: ContinuousClock.now - origin))
                if seq == marker { seen += 1 }
            }
            return received
        }

        static func ms(_ duration: Duration) -> String {
            let (seconds, attoseconds) = duration.components
            return "\(seconds * 1000 + attoseconds / 1_000_000_000_000_000) ms"
        }
    }
}
