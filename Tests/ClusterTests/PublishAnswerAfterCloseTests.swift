import ChorusClient
import Foundation
import Testing
import TestSupport

extension ClusterTests {
    /// A publish answered by the adapter after its connection has closed: the answer goes
    /// nowhere, and the node stays up. (A pipelined publisher whose connection closes with
    /// publishes in flight does this; the node used to read the closed connection's transport
    /// and crash: "Attempted to read an unowned reference but object ... was already destroyed".)
    @Suite("A publish answered after its connection closed")
    struct PublishAnswerAfterCloseTests {
        @Test("the node survives answering a publish whose connection is gone, and exits 0 after SIGTERM")
        func answerAfterClose() async throws {
            try await withCluster(nodes: 1) { cluster in
                let node = cluster.node(1)
                let redis = cluster.redis[0]
                let publisher = try await node.connect(as: "publisher")
                redis.pause()  // the publish's history script waits on Redis
                do {
                    try await publisher.send(json: [
                        "type": "message", "topic": "gone.room", "data": ["n": 1], "id": "p1", "messageId": "gone-1",
                    ])
                    await publisher.close()
                    // The node has let the connection go: its transport is released.
                    let gone = await eventually(within: .seconds(20)) {
                        ((try? await node.stats())?["connections"] as? [String: Any])?["total"] as? Int == 0
                    }
                    #expect(gone, "the node still counts the closed connection")
                } catch {
                    redis.resume()
                    throw error
                }
                redis.resume()  // the publish's outcome arrives now, for a connection that is gone
                try await cluster.waitUntilAdapters(are: "connected")
                #expect(try await HTTP.get("\(node.baseURL)/health").status == 200)
                #expect(node.process.isRunning, "the node is still up:\n\(node.logTail(30))")
            }
        }
    }
}
