import ChorusClient
import Testing
import TestSupport

/// The test client itself: what the other suites rely on when they read one client from two tasks.
@Suite("The test WebSocket client")
struct TestClientTests {
    @Test("two tasks waiting on one client each get an event: the first waiter is not lost to the second")
    func twoReaders() async throws {
        try await withNode { node in
            let client = try await node.connect(as: "reader")
            let readers = (0..<2).map { _ in Task { try await client.nextJSON(timeout: .seconds(20))["type"] as? String ?? "" } }
            // Whether a reader is already waiting when its pong arrives or asks after, it gets one.
            for id in 1...2 { try await client.send(json: ["type": "ping", "id": id]) }
            let replies = try await withDeadline(.seconds(30), "both readers answered") {
                var replies: [String] = []
                for reader in readers { replies.append(try await reader.value) }
                return replies
            }
            #expect(replies == ["pong", "pong"])
            await client.close()
        }
    }
}
