import ChorusClient
import Foundation
import Testing
import TestSupport

extension ClusterTests {
    /// Sentinels and masters that require passwords (`requirepass` on both, `sentinel auth-pass`
    /// and `sentinel sentinel-pass` in the Sentinels), real processes on loopback.
    @Suite("Redis Sentinel with passwords")
    struct RedisSentinelAuthTests {
        static let passwords = SentinelPasswords(master: "master-s3cret", sentinel: "sentinel-s3cret")

        @Test("with PUBSUB_REDIS_SENTINEL_PASSWORD and the master's password in PUBSUB_REDIS_MASTER_NAME, two nodes find the master and deliver across nodes")
        func rightPasswords() async throws {
            try await withSentinelGroup(passwords: Self.passwords) { group in
                let environment = [
                    "PUBSUB_REDIS_SENTINELS": group.sentinelList,
                    "PUBSUB_REDIS_SENTINEL_PASSWORD": "sentinel-s3cret",
                    "PUBSUB_REDIS_MASTER_NAME": ":master-s3cret@\(RedisSentinelGroup.masterName)",
                ]
                try await withCluster(nodes: 2, redisServers: 0, environment: environment) { cluster in
                    for node in cluster.nodes {
                        let backends = try await node.adapter()["backends"] as? [[String: Any]]
                        #expect(backends?.first?["address"] as? String == "sentinel://chorus/0")
                    }
                    let subscriber = try await cluster.node(2).connect(as: "s")
                    try await subscriber.subscribe("auth.t")
                    let publisher = try await cluster.node(1).connect(as: "p")
                    try await publisher.awaitRoute(to: [subscriber], topic: "auth.t")
                    try await publisher.publish(topic: "auth.t", data: ["text": "across"])
                    #expect(try await subscriber.nextDelivery().data["text"] as? String == "across")
                    for node in cluster.nodes {
                        #expect(!node.process.output().contains("password"), "no password in the log: \(node.logTail())")
                    }
                }
            }
        }

        @Test(
            "a wrong Sentinel or master password is logged as refused at once, and the node serves its own subscribers locally",
            arguments: [
                ("wrong", ":master-s3cret@chorus", "Sentinel"),
                ("sentinel-s3cret", ":wrong@chorus", "master"),
            ])
        func wrongPassword(sentinelPassword: String, masterName: String, refuser: String) async throws {
            try await withSentinelGroup(passwords: Self.passwords) { group in
                let environment = [
                    "PUBSUB_ADAPTER": "redis", "PUBSUB_REDIS_SENTINELS": group.sentinelList,
                    "PUBSUB_REDIS_SENTINEL_PASSWORD": sentinelPassword, "PUBSUB_REDIS_MASTER_NAME": masterName,
                ]
                try await withNodeProcess(environment) { node in
                    let refused = await eventually(within: .seconds(30)) {
                        let log = node.process.output()
                        return log.contains("Redis Sentinel named no reachable master") && log.contains("WRONGPASS")
                    }
                    #expect(refused, "\(refuser) refusal logged: \(node.logTail())")
                    let state = await node.adapterState()
                    #expect(state != "connected", "no master without the password: \(state ?? "no answer")")
                    #expect(!node.process.output().contains("wrong@") && !node.process.output().contains("s3cret"))
                    let subscriber = try await node.connect(as: "s")
                    try await subscriber.subscribe("auth.local")
                    let publisher = try await node.connect(as: "p")
                    try await publisher.publish(topic: "auth.local", data: ["text": "local"])
                    #expect(try await subscriber.nextDelivery().data["text"] as? String == "local")
                }
            }
        }
    }
}
