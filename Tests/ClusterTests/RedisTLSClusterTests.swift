import ChorusClient
import Foundation
import Testing
import TestSupport

extension ClusterTests {
    /// Nodes that reach Redis over TLS only (`PUBSUB_REDIS_URL=rediss://...` and
    /// `PUBSUB_REDIS_TLS_CA_FILE`), as with a managed Redis: real `chorus` and `redis-server`
    /// processes, the server's certificate signed by an authority made for the test.
    @Suite("Redis over TLS")
    struct RedisTLSClusterTests {
        @Test("two nodes on rediss:// deliver across nodes and replay history, both over TLS, and stop cleanly")
        func acrossNodes() async throws {
            let directory = try TestLogs.folder("cluster-redis-tls")
            let certificates = try await TestCertificates.loopback()
            let redis = try RedisProcess(directory: directory, tls: certificates)
            try await redis.start()
            do {
                try await run(redis, certificates)
                await redis.stop()
            } catch {
                await redis.stop()
                throw error
            }
        }

        @Test("two nodes given rediss:// Sentinels reach the master over TLS, deliver across nodes, replay history, and stop cleanly")
        func throughSentinel() async throws {
            let certificates = try await TestCertificates.loopback()
            try await withSentinelGroup(sentinels: 1, tls: certificates) { group in
                let environment = group.nodeEnvironment.merging(["PUBSUB_REDIS_TLS_CA_FILE": certificates.authority]) { $1 }
                #expect(environment["PUBSUB_REDIS_SENTINELS"]?.hasPrefix("rediss://") == true)
                try await withCluster(nodes: 2, redisServers: 0, environment: environment) { cluster in
                    try await deliverAndReplay(cluster, address: "sentinel://\(RedisSentinelGroup.masterName)/0", topic: "tls.ha")

                    // Every connection of both nodes, to the master and to the Sentinel, came in on a TLS port.
                    let master = group.servers[0]
                    let onMaster = namedClientPorts(try await master.cli(["CLIENT", "LIST"]), prefix: "chorus")
                    for node in ["node-1", "node-2"] {
                        #expect(onMaster["chorus:\(node):sub"] != nil && onMaster["chorus:\(node):pub"] != nil, "\(onMaster)")
                    }
                    #expect(onMaster.keys.contains { $0.hasPrefix("chorus-node-2:history") }, "the queue that read the replay: \(onMaster)")
                    #expect(Set(onMaster.values) == [try #require(master.tls?.port)], "\(onMaster)")
                    let sentinel = group.sentinels[0]
                    let onSentinel = namedClientPorts(try await sentinel.command(["CLIENT", "LIST"]).text ?? "", prefix: "chorus")
                    #expect(Set(onSentinel.keys) == ["chorus:node-1:sentinel", "chorus:node-2:sentinel"])
                    #expect(Set(onSentinel.values) == [try #require(sentinel.tlsPort)], "\(onSentinel)")
                }
            }
        }

        /// Both nodes connected to `address`; a message published on node 1 reaches a subscriber
        /// on node 2, and a late subscriber there replays it (read from Redis by the node's
        /// history queue, over TLS too).
        private func deliverAndReplay(_ cluster: Cluster, address: String, topic: String) async throws {
            for node in cluster.nodes {
                let backends = try await node.adapter()["backends"] as? [[String: Any]]
                #expect(backends?.first?["address"] as? String == address)
                #expect(backends?.first?["state"] as? String == "connected")
            }
            let subscriber = try await cluster.node(2).connect(as: "s")
            try await subscriber.subscribe(topic)
            let publisher = try await cluster.node(1).connect(as: "p")
            try await publisher.awaitRoute(to: [subscriber], topic: topic)
            let sent = try await publisher.publishAcknowledged(topic: topic, data: ["text": "sealed"])
            #expect(try await subscriber.nextDelivery().data["text"] as? String == "sealed")
            let late = try await cluster.node(2).connect(as: "late")
            _ = try await late.subscribeWithHistory(topic, replay: 10)
            let replayed = try await late.messages(of: topic, through: try #require(sent["offset"] as? Int))
            #expect(replayed.compactMap { ($0["data"] as? [String: Any])?["text"] as? String }.last == "sealed")
        }

        private func run(_ redis: RedisProcess, _ certificates: TestCertificates) async throws {
            #expect(redis.isRunning)
            let tlsURL = try #require(redis.tlsURL)
            let environment = ["PUBSUB_REDIS_URL": tlsURL, "PUBSUB_REDIS_TLS_CA_FILE": certificates.authority]
            try await withCluster(nodes: 2, redisServers: 0, environment: environment) { cluster in
                try await deliverAndReplay(cluster, address: "\(tlsURL)/0", topic: "tls.room")
                // The nodes know the TLS port only: the link and the request/reply queues (history,
                // presence, directory) of both are connected through it.
                let names = try await redis.cli(["CLIENT", "LIST"]).split(separator: "\n").compactMap { line in
                    line.split(separator: " ").first { $0.hasPrefix("name=") }.map { String($0.dropFirst(5)) }
                }
                for node in ["node-1", "node-2"] {
                    #expect(names.contains("chorus:\(node):sub") && names.contains("chorus:\(node):pub"), "\(names)")
                }
                #expect(names.contains { $0.hasPrefix("chorus-node-2:history") }, "the queue that read the replay: \(names)")
                #expect(names.contains { $0.hasPrefix("chorus-presence") } && names.contains("chorus-directory"), "\(names)")
            }
        }
    }
}
