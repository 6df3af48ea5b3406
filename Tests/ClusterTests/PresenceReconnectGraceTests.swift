import ChorusClient
import Testing
import TestSupport

extension ClusterTests {
    @Suite("Presence across a silent reconnect")
    struct PresenceReconnectGraceTests {
        @Test("with PRESENCE_RECONNECT_GRACE a member whose connection to one node ends silently and who comes back through another node within it neither leaves nor joins for watchers")
        func reconnectToAnotherNode() async throws {
            try await withCluster(nodes: 2, environment: ["PRESENCE_RECONNECT_GRACE": "60000"]) { cluster in
                let topic = "rooms.flaky"
                let watcher = try await cluster.node(1).connect(as: "watcher")
                try await watcher.subscribe(topic, member: false, events: true)
                let alice = try await cluster.node(2).connect(as: "alice")
                try await alice.subscribe(topic, member: true, events: false)
                let joined = try await watcher.nextPresence()
                #expect(joined.event == "join" && joined.userId == "alice")

                await alice.drop()
                let back = try await cluster.node(1).connect(as: "alice")
                try await back.subscribe(topic, member: true, events: false)
                let bob = try await cluster.node(2).connect(as: "bob")
                try await bob.subscribe(topic, member: true, events: false)
                let fence = try await watcher.nextPresence()
                #expect(fence.event == "join" && fence.userId == "bob", "no leave or join of alice before bob's join: \(fence)")
                #expect(try await watcher.presenceState(topic).connections == ["alice": 2, "bob": 1], "node-2 still counts alice's silent connection")
                await back.close()
                await bob.close()
            }
        }
    }
}
