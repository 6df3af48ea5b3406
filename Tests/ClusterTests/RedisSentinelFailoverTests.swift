import ChorusClient
import Foundation
import Testing
import TestSupport

extension ClusterTests {
    /// Two nodes that find Redis through three real Sentinels, and the master killed under load.
    @Suite("Redis Sentinel failover")
    struct RedisSentinelFailoverTests {
        typealias Received = RedisHangTests.Received
        typealias Sent = RedisHangTests.Sent

        @Test("the master killed (SIGKILL) under 100 msg/s: local delivery goes on throughout, cross-node delivery resumes on the promoted replica, nothing twice, the nodes exit cleanly")
        func masterKilled() async throws {
            try await withSentinelGroup { group in
                try await withCluster(nodes: 2, redisServers: 0, environment: group.nodeEnvironment) { cluster in
                    try await Self.run(cluster, group)
                }
            }
        }

        @Test("presence finds Redis through Sentinel too: a member on one node is listed, cluster-wide, on the other")
        func presenceThroughSentinel() async throws {
            try await withSentinelGroup { group in
                try await withCluster(nodes: 2, redisServers: 0, environment: group.nodeEnvironment) { cluster in
                    let alice = try await cluster.node(1).connect(as: "alice")
                    try await alice.subscribe("rooms.ha", member: true, events: false)
                    let bob = try await cluster.node(2).connect(as: "bob")
                    var state: PresenceState?
                    let listed = await eventually(within: .seconds(20)) {
                        state = try? await bob.presenceState("rooms.ha")
                        return state?.connections["alice"] == 1
                    }
                    #expect(listed, "node 2 lists node 1's member: \(String(describing: state))")
                    #expect(state?.scope == nil, "answered from Redis, not from the node alone")
                }
            }
        }

        @Test("Sentinels that answer only after clients subscribed (the node started while they hung): once the node finds the master, its subscribers are told of the gap, as after a fallback")
        func masterFoundLate() async throws {
            try await withSentinelGroup { group in
                for sentinel in group.sentinels { sentinel.process.signal(SIGSTOP) }
                defer { for sentinel in group.sentinels { sentinel.process.signal(SIGCONT) } }
                try await withNodeProcess(["PUBSUB_ADAPTER": "redis"].merging(group.nodeEnvironment) { $1 }) { node in
                    #expect(await node.adapterState() == "connecting", "no master named yet")
                    let subscriber = try await node.connect(as: "s")
                    try await subscriber.subscribe("late.t")
                    for sentinel in group.sentinels { sentinel.process.signal(SIGCONT) }
                    let gap = try await subscriber.next(type: "gap", timeout: .seconds(60))
                    #expect(gap["topic"] as? String == "late.t", "messages other nodes published before the master was found never came: \(gap)")
                    #expect(await node.adapterState() == "connected")
                }
            }
        }

        static func run(_ cluster: Cluster, _ group: RedisSentinelGroup) async throws {
            let topic = "ha.t"
            let (master, replica) = (group.servers[0], group.servers[1])
            for node in cluster.nodes {
                let backends = try await node.adapter()["backends"] as? [[String: Any]]
                #expect(backends?.first?["address"] as? String == "sentinel://chorus/0", "\(node.id) found Redis through Sentinel")
            }
            let subscribers = [try await cluster.node(1).connect(as: "s1"), try await cluster.node(2).connect(as: "s2")]
            for subscriber in subscribers { try await subscriber.subscribe(topic) }
            let publishers = [try await cluster.node(1).connect(as: "p1"), try await cluster.node(2).connect(as: "p2")]
            for publisher in publishers { try await publisher.awaitRoute(to: subscribers, topic: topic) }

            let clock = ContinuousClock()
            let origin = clock.now
            let collectors = subscribers.map { subscriber in
                Task { try await RedisHangTests.collect(subscriber, markers: 2, origin: origin) }
            }
            // 50 msg/s from each node: 100 msg/s over the cluster.
            let publishing = RedisHangTests.Switch()
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

            try await Task.sleep(for: .seconds(1))  // traffic through the master before the kill
            let kill = clock.now - origin
            await master.kill()
            try await cluster.waitUntilAdapters(are: "fallback", within: .seconds(20))
            let fallbackSeen = clock.now - origin - kill
            let promoted = await eventually(within: .seconds(60), every: .milliseconds(20)) {
                for sentinel in group.sentinels where (try? await sentinel.masterPort()) == replica.port { return true }
                return false
            }
            #expect(promoted, "a Sentinel names the replica as the master")
            let switched = clock.now - origin - kill
            try await cluster.waitUntilAdapters(are: "connected", within: .seconds(60))
            let connectedAt = clock.now - origin
            try await Task.sleep(for: .seconds(2))  // publishing through the new master

            publishing.turnOff()
            var sent: [[Sent]] = []
            for sender in senders { sent.append(try await sender.value) }
            for (index, publisher) in publishers.enumerated() {
                try await publisher.publish(topic: topic, data: ["via": "node-\(index + 1)", "seq": RedisHangTests.marker])
            }
            var received: [[Received]] = []
            for collector in collectors { received.append(try await collector.value) }

            for (index, messages) in received.enumerated() {
                let node = "node-\(index + 1)"
                let keys = messages.map { "\($0.via) \($0.seq)" }
                #expect(Set(keys).count == keys.count, "no message delivered twice on \(node)")

                // Local delivery throughout: every own publish from the kill on arrived. (One
                // sent just before it may be lost: Redis can acknowledge a PUBLISH and die
                // before writing it to the subscriber; pub/sub is at most once.)
                let own = Set(messages.filter { $0.via == node }.map(\.seq))
                let missingAfter = sent[index].filter { $0.at >= kill && !own.contains($0.seq) }.map(\.seq)
                let missingBefore = sent[index].filter { $0.at < kill && !own.contains($0.seq) }.map(\.seq)
                #expect(missingAfter.isEmpty, "\(node) delivered its own publishes during the failover; missing \(missingAfter.prefix(20))")
                let arrival = Dictionary(messages.filter { $0.via == node }.map { ($0.seq, $0.at) }, uniquingKeysWith: min)
                let ownWorst = sent[index].filter { $0.at >= kill && $0.at < connectedAt }
                    .compactMap { message in arrival[message.seq].map { $0 - message.at } }.max() ?? .zero

                // Cross-node: everything the other node sent once both reported connected, and
                // the interruption: from the kill to the first of its messages to arrive after.
                let other = 1 - index
                let theirs = messages.filter { $0.via == "node-\(other + 1)" && $0.seq != RedisHangTests.marker }
                let theirSeqs = Set(theirs.map(\.seq))
                let lost = sent[other].filter { $0.at > connectedAt && !theirSeqs.contains($0.seq) }.map(\.seq)
                #expect(lost.isEmpty, "\(node) got every message node-\(other + 1) published after the failover; missing \(lost.prefix(20))")
                let firstAfter = theirs.filter { $0.at > kill }.map(\.at).min()
                let arrivals = theirs.map(\.at).sorted()
                let longestGap = zip(arrivals, arrivals.dropFirst()).map { $1 - $0 }.max() ?? .zero
                #expect(firstAfter != nil, "cross-node delivery resumed on \(node)")
                print(
                    "sentinel failover, \(node): fallback reported \(RedisHangTests.ms(fallbackSeen)) after SIGKILL; a Sentinel named the replica after \(RedisHangTests.ms(switched)); cross-node gap \(firstAfter.map { RedisHangTests.ms($0 - kill) } ?? "none") (first message from node-\(other + 1) after the kill; longest gap between its messages \(RedisHangTests.ms(longestGap))); own publishes during the failover delivered locally within \(RedisHangTests.ms(ownWorst)); own lost just before the kill: \(missingBefore.count)"
                )
            }
            #expect(await group.currentMaster()?.port == replica.port)
            // The cluster directory followed the master too: read from the new one, both nodes listed.
            let directoryBack = await eventually(within: .seconds(20), every: .milliseconds(100)) {
                guard let stats = try? await HTTP.get("\(cluster.node(1).baseURL)/stats?scope=cluster").json() else { return false }
                return stats["complete"] as? Bool == true && (stats["totals"] as? [String: Any])?["nodes"] as? Int == 2
            }
            #expect(directoryBack, "/stats?scope=cluster is complete again after the failover")
        }
    }
}
