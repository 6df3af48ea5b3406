import Foundation
import Logging
import Testing
import TestSupport

@testable import Broker

/// Member lists read from Redis a page at a time, through the user id index (`P z:<topic>`).
@Suite("Redis presence store: member pages", .timeLimit(.minutes(1)))
struct RedisPresencePageTests {
    private static let prefix = "t:"
    private static let room = "rooms.big"

    private static func key(_ kind: String) -> String { prefix + "@presence:" + kind + ":" + room }

    /// Where `listed` first differs from `expected` (nil when equal), short enough to read.
    private static func difference(_ listed: [String], _ expected: [String]) -> String? {
        if let index = zip(listed, expected).enumerated().first(where: { $0.element.0 != $0.element.1 })?.offset {
            return "at \(index): \(listed[index]) instead of \(expected[index])"
        }
        return listed.count == expected.count ? nil : "\(listed.count) listed, \(expected.count) expected"
    }

    /// A started store on `server` whose node holds its lease: a set before the lease exists is
    /// refused and resent later.
    private static func leasedStore(on server: RedisTestServer) async throws -> RedisPresenceStore {
        let store = RedisPresenceStore(
            urls: [server.url], prefix: prefix, nodeId: "n1", timeout: .seconds(2), ttl: .seconds(30),
            logger: Logger(label: "chorus.test.presence-pages"))
        store.start()
        let leased = try await eventually {
            if case .integer(1) = try await server.command(["ZCARD", prefix + "@presence:leases"]) { return true }
            return false
        }
        try #require(leased)
        return store
    }

    @Test("a user's online topic keeps no index key and still lists its member, after an id before it and not after its own")
    func onlineTopicWithoutIndex() async throws {
        try await RedisTest.withServers { servers in
            let server = servers[0]
            let store = try await Self.leasedStore(on: server)
            let online = try Topic("presence.user.Bob-1")
            let room = try Topic("rooms.small")
            for topic in [online, room] {
                store.set(
                    topic: topic, userId: "Bob-1", connections: 1, member: PresenceMember.document(userId: "Bob-1", data: nil),
                    announceUpdate: false)
            }
            #expect(try await store.count(of: online) == 1)
            #expect(try await server.command(["EXISTS", Self.prefix + "@presence:z:" + online.name]) == .integer(0))
            #expect(try await server.command(["EXISTS", Self.prefix + "@presence:z:" + room.name]) == .integer(1))
            // Byte order: "B" (66) sorts before "a" (97) and after "A" (65), whatever the locale.
            for (after, listed) in [(nil, ["Bob-1"]), ("A", ["Bob-1"]), ("Bob-", ["Bob-1"]), ("Bob-1", []), ("a", [])] as [(String?, [String])] {
                let page = try await store.members(of: online, after: after, limit: 10, maxBytes: 1 << 20)
                #expect(page.members.map(\.userId) == listed, "after \(after ?? "nil")")
                #expect(page.count == 1 && !page.more)
            }
            store.set(
                topic: online, userId: "Bob-1", connections: 0, member: PresenceMember.document(userId: "Bob-1", data: nil),
                announceUpdate: false)
            #expect(try await store.members(of: online, after: nil, limit: 10, maxBytes: 1 << 20).members.isEmpty)
            await store.shutdown()
        }
    }

    @Test("a member document in Redis that is not a JSON object (written by something else) is left out of a page rather than listed: a listing adds fields to each document, which stopped the node")
    func documentNotAnObject() throws {
        let documents: [RedisReply] = [.bulk(Array(#"{"userId":"a"}"#.utf8)), .bulk(Array("[]".utf8)), .bulk(Array(#""x""#.utf8)), .bulk(Array("null".utf8)), .bulk(Array("{".utf8))]
        let users = ["a", "b", "c", "d", "e"].map { RedisReply.bulk(Array($0.utf8)) }
        let reply = RedisReply.array([
            .integer(5), .array(users), .array(documents), .array(users.map { _ in .bulk(Array("1".utf8)) }), .integer(0),
        ])
        let page = try RedisPresenceStore.page(reply)
        #expect(page.members.map(\.userId) == ["a"])
        #expect(page.count == 5)
    }

    @Test("a room of 2,500 pages in user id order, each member once with the full count; members stored without the index (an earlier version) are listed too, and a leave leaves the pages")
    func pagesThroughTheIndex() async throws {
        try await RedisTest.withServers { servers in
            let server = servers[0]
            let store = try await Self.leasedStore(on: server)
            let topic = try Topic(Self.room)
            let users = (1...2_500).map { "u" + String(100_000 + $0) }
            for user in users.shuffled() {
                store.set(
                    topic: topic, userId: user, connections: 1, member: PresenceMember.document(userId: user, data: nil),
                    announceUpdate: false)
            }
            // Same command queue, in order: answered after every set above.
            #expect(try await store.count(of: topic) == 2_500)

            func all() async throws -> (users: [String], pages: Int, counts: Set<Int>) {
                var listed: [String] = []
                var counts: Set<Int> = []
                var after: String?
                var pages = 0
                while pages < 10 {
                    let page = try await store.members(of: topic, after: after, limit: PresencePage.maxMembers, maxBytes: 1 << 20)
                    pages += 1
                    listed += page.members.map(\.userId)
                    counts.insert(page.count)
                    guard page.more, let last = page.members.last else { break }
                    after = last.userId
                }
                return (listed, pages, counts)
            }
            let first = try await all()
            #expect(Self.difference(first.users, users) == nil, "every member once, in user id order")
            #expect(first.pages == 3 && first.counts == [2_500])

            // Written the way a node without the index wrote members: hash entries only.
            _ = try await server.command(["HSET", Self.key("m"), "a-old", #"{"userId":"a-old","data":{}}"#])
            _ = try await server.command(["HSET", Self.key("n"), "a-old", "1"])
            store.set(
                topic: topic, userId: users[0], connections: 0, member: PresenceMember.document(userId: users[0], data: nil),
                announceUpdate: false)
            let second = try await all()
            #expect(Self.difference(second.users, ["a-old"] + users.dropFirst()) == nil, "the old member is found, the one who left is gone")
            #expect(second.counts == [2_500])

            // An index entry without a member is skipped (the page is one shorter) and dropped.
            _ = try await server.command(["ZADD", Self.key("z"), "0", "a-ghost"])
            let first3 = try await store.members(of: topic, after: nil, limit: 3, maxBytes: 1 << 20)
            #expect(first3.members.map(\.userId) == ["a-old", users[1]] && first3.more)
            #expect(try await server.command(["ZSCORE", Self.key("z"), "a-ghost"]) == .null)

            // Large member data: a page stops at the bytes asked for, not at the member limit.
            let big = try Topic("rooms.bigdata")
            for user in users.prefix(100) {
                store.set(
                    topic: big, userId: user, connections: 1,
                    member: PresenceMember.document(userId: user, data: RawJSON(unchecked: Array("{\"blob\":\"\(String(repeating: "x", count: 4_000))\"}".utf8))),
                    announceUpdate: false)
            }
            #expect(try await store.count(of: big) == 100)
            let bounded = try await store.members(of: big, after: nil, limit: PresencePage.maxMembers, maxBytes: 40_000)
            #expect((9...10).contains(bounded.members.count) && bounded.more && bounded.count == 100, "\(bounded.members.count)")
            await store.shutdown()
        }
    }

    @Test("member lists are read on a connection of their own, never in the queue of the changes and lease renewals (a resync's reads held a renewal past PRESENCE_TTL), and a read still sees the changes made before it")
    func readsHaveTheirOwnConnection() async throws {
        try await RedisTest.withServers { servers in
            let server = servers[0]
            // Every command logged, with the name of the connection that sent it.
            _ = try await server.command(["CONFIG", "SET", "slowlog-log-slower-than", "0"])
            _ = try await server.command(["CONFIG", "SET", "slowlog-max-len", "10000"])
            let store = try await Self.leasedStore(on: server)
            let topic = try Topic(Self.room)
            for user in ["ann", "ben", "cid"] {
                store.set(topic: topic, userId: user, connections: 1, member: PresenceMember.document(userId: user, data: nil), announceUpdate: false)
            }
            let page = try await store.members(of: topic, after: nil, limit: PresencePage.maxMembers, maxBytes: 1 << 20)
            #expect(page.members.map(\.userId) == ["ann", "ben", "cid"], "a read after the changes sees them")
            #expect(try await store.count(of: topic) == 3)

            // Each entry: id, time, duration, arguments, client address, client name.
            guard case .array(let entries) = try await server.command(["SLOWLOG", "GET", "10000"]) else {
                throw TestFailure("SLOWLOG GET")
            }
            var senders: [String: Set<String>] = [:]
            for case .array(let fields) in entries where fields.count >= 6 {
                // Unnamed: this test's own connections.
                guard case .array(let arguments) = fields[3], let name = fields[5].string, !name.isEmpty else { continue }
                let text = arguments.compactMap(\.string).joined(separator: " ")
                let kind = text.hasPrefix("HLEN") ? "count" : text.contains("@presence:zr:") ? "page"
                    : text.contains("@presence:seen:") ? "change" : text.contains("@presence:leases") ? "lease" : nil
                if let kind { senders[kind, default: []].insert(name) }
            }
            #expect(senders["page"] == ["chorus-presence-reads-0"] && senders["count"] == ["chorus-presence-reads-0"], "\(senders)")
            #expect(senders["change"] == ["chorus-presence-0"] && senders["lease"] == ["chorus-presence-0"], "\(senders)")
            await store.shutdown()
        }
    }
}
