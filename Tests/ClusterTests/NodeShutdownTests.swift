import ChorusClient
import Testing
import TestSupport

extension ClusterTests {
    @Suite("Stopping a node")
    struct NodeShutdownTests {
        @Test("SIGTERM on a node closes its WebSockets with 1001, exits 0, and nginx sends new clients to the live nodes")
        func sigterm() async throws {
            try await withCluster { cluster in
                let leaving = cluster.node(2)
                let clients = [try await leaving.connect(as: "u1"), try await leaving.connect(as: "u2")]
                try await clients[0].subscribe("room.lobby")

                leaving.terminate()
                for client in clients {
                    #expect(try await client.closeCode() == 1001)
                    await client.close(code: 1001)
                }
                #expect(await leaving.process.wait(timeout: .seconds(15)) == 0, "exit status of node-2")

                // New connections through nginx: all admitted, all served by node 1 or node 3.
                let topic = "room.after"
                var late: [WebSocketClient] = []
                for number in 0..<6 {
                    let client = try await cluster.connectThroughNginx(as: "late-\(number)")
                    try await client.subscribe(topic)
                    late.append(client)
                }
                let publisher = try await cluster.node(1).connect(as: "publisher")
                try await publisher.awaitRoute(to: late, topic: topic)
                try await publisher.publish(topic: topic, data: ["seq": 1])
                let marker = try await publisher.publishMarker(topic: topic)
                for client in late {
                    let received = try await client.deliveries(1)
                    #expect(received.map(\.seq) == [1])
                    #expect(try await client.messages(before: marker) == [], "once")
                }
                var connections = 0
                for node in [cluster.node(1), cluster.node(3)] {
                    connections += (try await node.stats()["connections"] as? [String: Any])?["total"] as? Int ?? 0
                }
                #expect(connections == late.count + 1, "the late clients and the publisher, all on live nodes")
            }
        }
    }
}
