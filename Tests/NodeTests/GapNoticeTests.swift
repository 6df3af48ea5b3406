import Broker
import ChorusClient
import Testing
import TestSupport

@testable import Node

@Suite("Gap notices, written a batch of sessions at a time")
struct GapNoticeTests {
    @Test("a gap report written one session per task reaches every session once: each covered subscription, and its user")
    func batches() async throws {
        try await withNode { node in
            var clients: [WebSocketClient] = []
            for index in 0..<7 {
                let client = try await node.connect(as: "user-\(index)")
                try await client.subscribe("gaps.t")
                try await client.subscribe("other.t")
                clients.append(client)
            }
            let covered = try Topic("gaps.t")
            node.node.context.hub.reportGaps(
                where: { interest in
                    switch interest {
                    case .user: true
                    case .topic(let topic): topic == covered
                    case .pattern: false
                    }
                },
                sessionsPerTask: 1)
            for (index, client) in clients.enumerated() {
                var notices: [String] = []
                while notices.count < 2 {
                    let frame = try await client.nextJSON()
                    #expect(frame["type"] as? String == "gap", "client \(index): \(frame)")
                    notices.append(frame["topic"] as? String ?? "(user)")
                }
                #expect(notices.sorted() == ["(user)", "gaps.t"], "client \(index)")
                // Nothing more: the next frame answers a ping sent now.
                let reply = try await client.request(["type": "ping", "id": "after"])
                #expect(reply["type"] as? String == "pong", "client \(index): \(reply)")
            }
        }
    }
}
