import ChorusClient
import Testing
import TestSupport

extension ClusterTests {
    /// nginx in front of two nodes restarted one right after the other, as a quick rolling
    /// upgrade does: the node restarted first refused connections while it was down, and must
    /// take every request as soon as it is back, whatever nginx counted against it.
    @Suite("Restarting the nodes one after the other")
    struct BackToBackRestartTests {
        @Test("a node restarted, then the other one gone at once: nginx sends every request and WebSocket to the restarted node, none answered 502")
        func restartThenLoseTheOther() async throws {
            try await withCluster(nodes: 2) { cluster in
                let first = cluster.node(1)
                #expect(await first.stop() == 0, "exit status of node-1")
                // Requests while node-1 is down: nginx tries it, finds it refusing, and goes on to node-2.
                for _ in 0..<10 {
                    #expect(try await nodeAnswering(cluster) == "node-2")
                }
                let restarted = try await cluster.startNode(1, port: first.port)
                await cluster.node(2).kill()

                // node-1 alone is up: each request and each new WebSocket through nginx reaches it.
                for _ in 0..<10 {
                    #expect(try await nodeAnswering(cluster) == "node-1")
                }
                let client = try await cluster.connectThroughNginx(as: "after", within: .seconds(10))
                try await client.subscribe("room.after")
                await client.close()

                #expect(await restarted.stop() == 0, "exit status of the restarted node-1")
                restarted.checkExit()
            }
        }

        /// `GET /health` through nginx: the id of the node that answered, or the status when it
        /// was not 200 (nginx's 502 when it holds every node out).
        private func nodeAnswering(_ cluster: Cluster) async throws -> String {
            let response = try await HTTP.get("\(cluster.nginx.baseURL)/health")
            guard response.status == 200 else { return "HTTP \(response.status)" }
            return try response.json()["nodeId"] as? String ?? "no nodeId"
        }
    }
}
