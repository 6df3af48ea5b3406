import Foundation
import TestSupport
import Synchronization
import Testing

@testable import Broker

/// Several nodes sharing one real `redis-server`.
@Suite("Redis adapter: nodes sharing one Redis")
struct RedisAdapterTests {
    @Test("a publish is answered with where it went: accepted through Redis, nodeOnly while Redis is unreachable, refused once the adapter stopped")
    func publishOutcomes() async throws {
        try await RedisTest.withServers { servers in
            let node = RedisTestNode("a", urls: [servers[0].url])
            let outcomes = Mutex<[PublishOutcome]>([])
            let record: PublishCompletion = { outcome in outcomes.withLock { $0.append(outcome) } }
            try await RedisTest.shuttingDown([node]) {
                try await RedisTest.settle([node])
                node.publish(topic: "outcome.t", completion: record)
                await servers[0].kill()
                #expect(await RedisTest.eventually { node.status.state == .fallback })
                node.publish(topic: "outcome.t", completion: record)
            }
            node.publish(topic: "outcome.t", completion: record)
            #expect(await RedisTest.eventually { outcomes.withLock { $0.count } == 3 })
            #expect(outcomes.withLock { $0 } == [.accepted, PublishOutcome(nodeOnly: true), .refused(RedisServerLink.droppedReason)])
        }
    }

    @Test("a message published on one node reaches the other nodes' topic and pattern interests once, in order")
    func crossNodeInOrder() async throws {
        try await RedisTest.withServers { servers in
            try await RedisTest.withNodes(["a", "b", "c"], urls: [servers[0].url]) { nodes in
                let (a, b, c) = (nodes[0], nodes[1], nodes[2])
                b.subscribe(RedisTest.topic("orders.eu"))
                c.subscribe(RedisTest.pattern("orders.*"))
                try await RedisTest.settle(nodes)
                #expect(a.status.state == .connected)

                let published = (0..<200).map { _ in a.publish(topic: "orders.eu").id }
                #expect(await RedisTest.eventually { b.envelopes.count >= 200 && c.envelopes.count >= 200 })
                #expect(b.ids() == published)
                #expect(c.ids() == published)
                #expect(a.envelopes.isEmpty, "a node without interest receives nothing")
                #expect(b.envelopes.first?.data.description == #"{"n":1}"#)
            }
        }
    }

    @Test("a pattern delivers only what it matches, although Redis '*' crosses dots")
    func patternOverMatchIsFiltered() async throws {
        try await RedisTest.withServers { servers in
            try await RedisTest.withNodes(["a", "b"], urls: [servers[0].url]) { nodes in
                let (a, b) = (nodes[0], nodes[1])
                b.subscribe(RedisTest.pattern("a.*"), RedisTest.pattern("x.**.z"))
                try await RedisTest.settle(nodes)

                a.publish(topic: "a.b.c")
                a.publish(topic: "x.z")
                a.publish(topic: "a.b")
                a.publish(topic: "x.y.w.z")
                a.publish(topic: "a.b.c.d")
                a.publish(topic: "x.y.zz")
                let last = a.publish(topic: "a.last")
                #expect(await RedisTest.eventually { b.ids().contains(last.id) })
                #expect(b.envelopes.map(\.topic?.name) == ["a.b", "x.y.w.z", "a.last"])
            }
        }
    }

    @Test("a node holding a topic and several matching patterns gets each message once")
    func overlappingInterestsDeliverOnce() async throws {
        try await RedisTest.withServers { servers in
            try await RedisTest.withNodes(["a", "b"], urls: [servers[0].url]) { nodes in
                let (a, b) = (nodes[0], nodes[1])
                b.subscribe(
                    RedisTest.topic("a.b"), RedisTest.pattern("a.*"), RedisTest.pattern("a.**"),
                    RedisTest.pattern("*.b"), RedisTest.pattern("**"))
                try await RedisTest.settle(nodes)

                let published = (0..<50).map { _ in a.publish(topic: "a.b").id }
                #expect(await RedisTest.eventually { b.envelopes.count >= 50 })
                // Give any duplicate the chance to arrive behind a final marker.
                let marker = a.publish(topic: "a.b")
                #expect(await RedisTest.eventually { b.ids().last == marker.id })
                #expect(b.ids() == published + [marker.id])
            }
        }
    }

    @Test("past PUBSUB_REDIS_MAX_PATTERNS one catch-all glob stands in for the patterns: Redis holds one, delivery unchanged")
    func patternsCollapse() async throws {
        try await RedisTest.withServers { servers in
            let a = RedisTestNode("a", urls: [servers[0].url])
            let b = RedisTestNode("b", urls: [servers[0].url], maxPatterns: 4)
            try await RedisTest.shuttingDown([a, b]) {
                func numpat() async throws -> Int? {
                    guard case .integer(let count) = try await servers[0].command(["PUBSUB", "NUMPAT"]) else { return nil }
                    return count
                }
                let patterns = (1...6).map { RedisTest.pattern("room\($0).*") }
                for pattern in patterns { b.subscribe(pattern) }
                b.subscribe(RedisTest.topic("room1.exact"))
                try await RedisTest.settle([a, b])
                #expect(try await numpat() == 1, "six patterns, one glob in Redis")

                var wanted: [String] = []
                for n in 1...6 { wanted.append(a.publish(topic: "room\(n).x").id) }
                a.publish(topic: "other.x")
                a.publish(topic: "room1.x.deeper")  // Redis '*' crosses dots; the pattern does not
                wanted.append(a.publish(topic: "room1.exact").id)  // a topic and a pattern: once
                let last = a.publish(topic: "room6.last")
                wanted.append(last.id)
                #expect(await RedisTest.eventually { b.ids().last == last.id })
                #expect(b.ids() == wanted)

                // Back to at most half the limit: each pattern under its own glob again.
                for pattern in patterns[2...] { b.adapter.removeInterest(pattern) }
                try await RedisTest.settle([a, b])
                #expect(try await numpat() == 2)
                let before = b.envelopes.count
                let kept = a.publish(topic: "room2.y")
                a.publish(topic: "room3.y")
                let end = a.publish(topic: "room1.end")
                #expect(await RedisTest.eventually { b.ids().last == end.id })
                #expect(Array(b.ids()[before...]) == [kept.id, end.id])
            }
        }
    }

    @Test("a node's own messages come back through Redis once")
    func ownMessages() async throws {
        try await RedisTest.withServers { servers in
            try await RedisTest.withNodes(["a"], urls: [servers[0].url]) { nodes in
                let a = nodes[0]
                a.subscribe(RedisTest.topic("self.t"), RedisTest.pattern("self.*"))
                try await RedisTest.settle(nodes)
                let published = (0..<20).map { _ in a.publish(topic: "self.t").id }
                #expect(await RedisTest.eventually { a.envelopes.count >= 20 })
                #expect(a.ids() == published)
                #expect(a.status.publishedInFallback == 0)
            }
        }
    }

    @Test("messages addressed to a user cross nodes, and patterns do not pick them up")
    func userMessagesCross() async throws {
        try await RedisTest.withServers { servers in
            try await RedisTest.withNodes(["a", "b", "c"], urls: [servers[0].url]) { nodes in
                let (a, b, c) = (nodes[0], nodes[1], nodes[2])
                b.subscribe(.user("u-7"), RedisTest.pattern("**"), RedisTest.pattern("chat.*"))
                c.subscribe(RedisTest.pattern("**"))
                try await RedisTest.settle(nodes)

                let direct = a.publish(topic: nil, userId: "u-7")
                let labelled = a.publish(topic: "chat.x", userId: "u-7")
                a.publish(topic: nil, userId: "someone-else")
                let marker = a.publish(topic: "chat.end")
                #expect(await RedisTest.eventually { b.ids().contains(marker.id) && c.ids().contains(marker.id) })
                #expect(b.ids() == [direct.id, labelled.id, marker.id])
                #expect(b.envelopes.first?.userId == "u-7")
                #expect(c.ids() == [marker.id], "a pattern never receives user-addressed messages")
            }
        }
    }

    @Test("after the last interest is removed, the node stops receiving that topic")
    func removeInterestUnsubscribes() async throws {
        try await RedisTest.withServers { servers in
            try await RedisTest.withNodes(["a", "b"], urls: [servers[0].url]) { nodes in
                let (a, b) = (nodes[0], nodes[1])
                b.subscribe(RedisTest.topic("gone.t"), RedisTest.pattern("gone.*"), RedisTest.topic("kept.t"))
                try await RedisTest.settle(nodes)
                #expect(try await servers[0].activeChannels() == ["pubsub:gone.t", "pubsub:kept.t"])

                b.adapter.removeInterest(RedisTest.topic("gone.t"))
                b.adapter.removeInterest(RedisTest.pattern("gone.*"))
                try await RedisTest.settle(nodes)
                #expect(try await servers[0].activeChannels() == ["pubsub:kept.t"])

                a.publish(topic: "gone.t")
                let marker = a.publish(topic: "kept.t")
                #expect(await RedisTest.eventually { b.ids().contains(marker.id) })
                #expect(b.ids() == [marker.id])
            }
        }
    }

    @Test("garbage on a channel is counted as malformed and later messages still arrive")
    func garbageIsSkipped() async throws {
        try await RedisTest.withServers { servers in
            try await RedisTest.withNodes(["a", "b"], urls: [servers[0].url]) { nodes in
                let (a, b) = (nodes[0], nodes[1])
                b.subscribe(RedisTest.topic("g.t"), RedisTest.pattern("g.*"))
                try await RedisTest.settle(nodes)

                let server = servers[0]
                _ = try await server.command(["PUBLISH", "pubsub:g.t", "notjson"])
                _ = try await server.command(["PUBLISH", "pubsub:g.t", #"{"v":1}"#])
                // A valid envelope on a channel it is not addressed to.
                let stray = Envelope(id: "x:1", origin: "x", topic: try Topic("other.t"), data: .null)
                _ = try await server.command(["PUBLISH", "pubsub:g.t", String(decoding: EnvelopeCodec.encode(stray), as: UTF8.self)])

                let published = (0..<10).map { _ in a.publish(topic: "g.t").id }
                #expect(await RedisTest.eventually { b.envelopes.count >= 10 })
                #expect(b.ids() == published)
                // Each garbage payload arrives twice (topic and pattern) and is counted once.
                #expect(b.status.malformed == 3)
                #expect(b.status.state == .connected)
            }
        }
    }

    @Test("data and metadata cross a real Redis byte for byte: big integers, 1e400, escapes, member order")
    func faithfulAcrossRedis() async throws {
        let data = try RawJSON(validating: Array(JSONFixtures.faithfulData.utf8))
        let metadata = try RawJSON(validating: Array(#"{"z":1,"senderId":"bob","a":-0,"n":1E+2}"#.utf8))
        try await RedisTest.withServers { servers in
            try await RedisTest.withNodes(["a", "b"], urls: [servers[0].url]) { nodes in
                let (a, b) = (nodes[0], nodes[1])
                b.subscribe(RedisTest.topic("faithful.t"))
                try await RedisTest.settle(nodes)
                a.publish(topic: "faithful.t", data: data, metadata: metadata)
                #expect(await RedisTest.eventually { b.envelopes.count >= 1 })
                #expect(b.envelopes.first?.data.description == JSONFixtures.faithfulData)
                #expect(b.envelopes.first?.metadata?.description == #"{"z":1,"senderId":"bob","a":-0,"n":1E+2}"#)
            }
        }
    }

    @Test("status shows one connected backend per URL, without the password")
    func status() async throws {
        try await RedisTest.withServers { servers in
            try await RedisTest.withNodes(["a"], urls: [servers[0].url]) { nodes in
                try await RedisTest.settle(nodes)
                let status = nodes[0].status
                #expect(status.adapter == "redis")
                #expect(status.state == .connected)
                #expect(status.backends.count == 1)
                #expect(status.backends[0].address == "redis://127.0.0.1:\(servers[0].port)/0")
                #expect(status.backends[0].transitions == 1)
                #expect(status.transitions == 1)
                #expect(status.transitionsTo == ["connected": 1, "fallback": 0])
            }
        }
    }

    @Test("nodes authenticate (classic password and ACL user) and select their database")
    func authenticationAndDatabase() async throws {
        let protected = {
            try RedisTestServer(
                arguments: ["--requirepass", "s3cret", "--user", "alice", "on", ">pw", "~*", "&*", "+@all"],
                password: "s3cret")
        }
        try await RedisTest.withServers(make: protected) { servers in
            let redis = servers[0]
            let classic = try RedisURL(parsing: "redis://:s3cret@127.0.0.1:\(redis.port)/0")
            let acl = try RedisURL(parsing: "redis://alice:pw@127.0.0.1:\(redis.port)/3")
            let wrong = try RedisURL(parsing: "redis://alice:nope@127.0.0.1:\(redis.port)")
            let (a, b, c) = (RedisTestNode("a", urls: [acl]), RedisTestNode("b", urls: [classic]), RedisTestNode("c", urls: [wrong]))

            try await RedisTest.shuttingDown([a, b, c]) {
                b.subscribe(RedisTest.topic("auth.t"))
                try await RedisTest.settle([a, b])
                let sent = a.publish(topic: "auth.t")
                #expect(await RedisTest.eventually { b.ids() == [sent.id] })

                #expect(await RedisTest.eventually { c.status.state == .fallback })
                let error = try #require(c.status.backends[0].lastError)
                #expect(error.contains("AUTH"))
                #expect(!error.contains("nope"), "the password never reaches the status")

                // SELECT happened: CLIENT LIST shows each node's connections and their database.
                let list = try #require(try await redis.command(["CLIENT", "LIST"]).string)
                let clients = list.split(separator: "\n")
                #expect(clients.contains { $0.contains("name=chorus:a:pub") && $0.contains(" db=3 ") })
                #expect(clients.contains { $0.contains("name=chorus:b:sub") && $0.contains(" db=0 ") })
            }
        }
    }
}
