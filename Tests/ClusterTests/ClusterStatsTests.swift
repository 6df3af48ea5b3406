import Foundation
import Testing
import TestSupport

#if canImport(Glibc)
import Glibc
#endif

extension ClusterTests {
    @Suite("Cluster stats")
    struct ClusterStatsTests {
        @Test("/stats?scope=cluster on any node lists every live node; a killed one expires")
        func clusterView() async throws {
            try await withCluster(environment: ["CLUSTER_HEARTBEAT_INTERVAL": "200"]) { cluster in
                let client = try await cluster.node(2).connect(as: "watcher")
                try await client.subscribe("room.stats")

                let all: Set = ["node-1", "node-2", "node-3"]
                #expect(await Self.members(seenFrom: cluster.node(1), become: all))
                // Totals include node 2's client and its subscription once its next heartbeat has gone out.
                var totals: [String: Any] = [:]
                let deadline = ContinuousClock.now + .seconds(15)
                // Every node too: one whose heartbeat was three 200-ms intervals late (a loaded
                // machine) is missing from that one reading, and listed again at the next.
                while (totals["subscriptions"] as? Int ?? 0) < 1 || totals["nodes"] as? Int != 3, ContinuousClock.now < deadline {
                    let stats = try await HTTP.get("\(cluster.node(3).baseURL)/stats?scope=cluster").json()
                    #expect(stats["complete"] as? Bool == true)
                    totals = stats["totals"] as? [String: Any] ?? [:]
                    try await Task.sleep(for: .milliseconds(100))  // heartbeats arrive on their interval
                }
                #expect(totals["nodes"] as? Int == 3)
                #expect(totals["connections"] as? Int == 1)
                #expect(totals["subscriptions"] as? Int == 1)

                // A crash stops the heartbeat: the entry expires after three intervals.
                await cluster.node(3).kill()
                #expect(await Self.members(seenFrom: cluster.node(1), become: ["node-1", "node-2"]))
            }
        }

        @Test("a graceful stop withdraws the node from the cluster view at once, long before its entry would expire")
        func gracefulWithdraw() async throws {
            // One heartbeat a minute: entries live three minutes, so only the withdraw at
            // shutdown can take node 2 out of the view within the 15 s `members` waits.
            try await withCluster(nodes: 2, environment: ["CLUSTER_HEARTBEAT_INTERVAL": "60000"]) { cluster in
                #expect(await Self.members(seenFrom: cluster.node(1), become: ["node-1", "node-2"]))
                #expect(await cluster.node(2).stop() == 0)
                #expect(await Self.members(seenFrom: cluster.node(1), become: ["node-1"]))
            }
        }

        /// Polls the cluster view until it lists exactly `expected` (bounded).
        static func members(seenFrom node: NodeProcess, become expected: Set<String>) async -> Bool {
            let deadline = ContinuousClock.now + .seconds(15)
            while ContinuousClock.now < deadline {
                if let stats = try? await HTTP.get("\(node.baseURL)/stats?scope=cluster").json(),
                    let nodes = stats["nodes"] as? [[String: Any]],
                    Set(nodes.compactMap { $0["nodeId"] as? String }) == expected
                {
                    return true
                }
                try? await Task.sleep(for: .milliseconds(100))  // heartbeats arrive on their interval
            }
            return false
        }
    }
}
