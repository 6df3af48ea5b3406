import Foundation
import Logging
import Testing
import TestSupport

@testable import Broker

/// Presence changes made faster than Redis takes them: a join/leave storm of many users.
@Suite("Redis presence store: a storm of changes", .timeLimit(.minutes(1)))
struct RedisPresenceBacklogTests {
    private static let prefix = "t:"

    @Test("changes made while Redis does not answer are held back past a bound instead of queued without one (a storm grew a node by a gigabyte), and each member's last state reaches Redis once it answers")
    func stormIsBounded() async throws {
        try await RedisTest.withServers { servers in
            let server = servers[0]
            let store = RedisPresenceStore(
                urls: [server.url], prefix: Self.prefix, nodeId: "n1", timeout: .seconds(30), ttl: .seconds(30),
                logger: Logger(label: "chorus.test.presence-backlog"))
            store.start()
            let leased = try await eventually {
                if case .integer(1) = try await server.command(["ZCARD", Self.prefix + "@presence:leases"]) { return true }
                return false
            }
            try #require(leased)
            let topic = try Topic("rooms.storm")
            let payload = String(repeating: "p", count: 4_000)

            server.pause()
            // 2,000 changes of 4 KB each for two users: about 8 MB queued without the bound.
            for round in 1...1_000 {
                for user in ["ann", "ben"] {
                    let member = PresenceMember.document(userId: user, data: try RawJSON(validating: Array(#"{"n":\#(round),"p":"\#(payload)"}"#.utf8)))
                    // Ann ends as a member with the last data; Ben ends gone.
                    let connections = user == "ann" ? (round % 2 == 0 ? 1 : 0) : (round % 2 == 0 ? 0 : 1)
                    store.set(topic: topic, userId: user, connections: connections, member: member, announceUpdate: true)
                }
            }
            let backlog = store.backlogBytes(of: 0)
            server.resume()
            #expect(backlog <= (1 << 20) + 8_192, "queued: \(backlog) bytes, at most the bound of 1 MiB and one change")

            let settled = try await eventually(within: .seconds(30)) {
                let ann = try await server.command(["HGET", Self.prefix + "@presence:m:rooms.storm", "ann"])
                let ben = try await server.command(["HEXISTS", Self.prefix + "@presence:m:rooms.storm", "ben"])
                guard case .bulk(let document) = ann, ben == .integer(0) else { return false }
                return String(decoding: document, as: UTF8.self).contains(#""n":1000"#)
            }
            #expect(settled, "ann a member with her last data, ben gone")
            await store.shutdown()
        }
    }
}
