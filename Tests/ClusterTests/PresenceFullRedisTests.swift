import ChorusClient
import Testing
import TestSupport

extension ClusterTests {
    @Suite("Presence when Redis is full")
    struct PresenceFullRedisTests {
        @Test("a Redis full with noeviction keeps the members of live nodes: past PRESENCE_TTL only the killed node's member leaves, the list keeps the others, and none of them leaves once Redis takes writes again")
        func fullRedisKeepsLiveMembers() async throws {
            let ttl = 2_000
            try await withCluster(nodes: 3, environment: ["PRESENCE_TTL": "\(ttl)"]) { cluster in
                let topic = "rooms.full"
                let watcher = try await cluster.node(1).connect(as: "watcher")
                try await watcher.subscribe(topic, member: false, events: true)
                var members: [WebSocketClient] = []
                for (number, user) in [(1, "alice"), (2, "bob"), (3, "zed")] {
                    let client = try await cluster.node(number).connect(as: user)
                    try await client.subscribe(topic, member: true, events: false)
                    members.append(client)
                }
                let joins = [try await watcher.nextPresence(), try await watcher.nextPresence(), try await watcher.nextPresence()]
                #expect(Set(joins.map(\.userId)) == ["alice", "bob", "zed"])

                // Redis refuses every write that adds data from here on.
                let redis = cluster.redis[0]
                _ = try await redis.command(["CONFIG", "SET", "maxmemory-policy", "noeviction"])
                _ = try await redis.command(["CONFIG", "SET", "maxmemory", "1"])
                await cluster.node(3).kill()
                // Zed's leave comes once node-3's lease has run out and a reaper has run: had
                // the live nodes' renewals been refused, their leases would have run out too.
                let leave = try await watcher.nextPresence(timeout: .seconds(60))
                #expect(leave.event == "leave" && leave.userId == "zed", "\(leave)")
                #expect(try await watcher.presenceState(topic).connections == ["alice": 1, "bob": 1])

                _ = try await redis.command(["CONFIG", "SET", "maxmemory", "0"])
                try await members[1].subscribe(topic, member: true, data: ["status": "fence"], events: false)
                let fence = try await watcher.nextPresence()
                #expect(fence.event == "update" && fence.userId == "bob", "no leave (or join) of alice or bob first: \(fence)")
            }
        }
    }
}
