import Foundation
import Testing
import TestSupport

@testable import Broker

/// `PUBSUB_REDIS_URL` with several servers.
@Suite("Redis adapter: topics spread over several Redis servers")
struct RedisShardingTests {
    @Test("the server of a channel is FNV-1a 64 of its name modulo the server count")
    func stableHash() {
        #expect(RedisChannels.fnv1a64("") == 0xcbf2_9ce4_8422_2325)
        #expect(RedisChannels.fnv1a64("a") == 0xaf63_dc4c_8601_ec8c)
        #expect(RedisChannels.fnv1a64("foobar") == 0x8594_4171_f739_67e8)
        let channels = RedisChannels(prefix: "pubsub:", serverCount: 3)
        #expect(channels.server(forKey: "foobar") == Int(UInt64(0x8594_4171_f739_67e8) % 3))
        #expect(channels.key(forUser: "u-7") == "@user:u-7")
        #expect(RedisChannels(prefix: "p*[x]:", serverCount: 1).glob(for: try! TopicPattern("a.**")) == #"p\*\[x\]:a.*"#)
    }

    /// Topics named `shard.<n>`, `count` of them on each of the two servers (by the documented
    /// rule; the test then checks that the adapter put them there).
    private func topics(perServer count: Int) -> [[String]] {
        var byServer: [[String]] = [[], []]
        var n = 0
        while byServer.contains(where: { $0.count < count }) {
            let name = "shard.t\(n)"
            let server = RedisPlacement.server(forKey: name, among: 2)
            if byServer[server].count < count { byServer[server].append(name) }
            n += 1
        }
        return byServer
    }

    @Test("topics spread over both servers and every message arrives once")
    func spreadAndDeliverOnce() async throws {
        try await RedisTest.withServers(2) { servers in
            try await RedisTest.withNodes(["a", "b", "c"], urls: servers.map(\.url)) { nodes in
                let (a, b, c) = (nodes[0], nodes[1], nodes[2])
                let byServer = topics(perServer: 5)
                for name in byServer.joined() { b.subscribe(RedisTest.topic(name)) }
                b.subscribe(.user("u-1"), .user("u-2"), .user("u-3"))
                c.subscribe(RedisTest.pattern("shard.*"))
                try await RedisTest.settle(nodes)

                for (index, server) in servers.enumerated() {
                    let expectedTopics = Set(byServer[index].map { "pubsub:" + $0 })
                    let expectedUsers = Set(
                        ["u-1", "u-2", "u-3"].filter { RedisPlacement.server(forKey: "@user:" + $0, among: 2) == index }
                            .map { "pubsub:@user:" + $0 })
                    #expect(try await server.activeChannels(matching: "pubsub:shard.*") == expectedTopics)
                    #expect(try await server.activeChannels(matching: "pubsub:@user:*") == expectedUsers)
                    #expect(try await server.command(["PUBSUB", "NUMPAT"]) == .integer(1), "patterns live on every server")
                }

                var sent: [Envelope] = []
                for round in 0..<10 {
                    for name in byServer.joined() { sent.append(a.publish(topic: name)) }
                    sent.append(a.publish(topic: nil, userId: "u-\(round % 3 + 1)"))
                }
                let published = sent.map(\.id)
                let topicMessages = published.count - 10
                #expect(await RedisTest.eventually { b.envelopes.count >= published.count && c.envelopes.count >= topicMessages })
                #expect(Set(b.ids()) == Set(published))
                #expect(b.ids().count == published.count)
                #expect(c.ids().count == topicMessages)
                #expect(Set(c.ids()).count == topicMessages)
                for name in byServer.joined() {
                    let perTopic = sent.filter { $0.topic?.name == name }.map(\.id)
                    #expect(b.ids(topic: name) == perTopic, "one order per topic")
                }
            }
        }
    }

    @Test("stopping one server puts only its topics into fallback")
    func oneServerDown() async throws {
        try await RedisTest.withServers(2) { servers in
            try await RedisTest.withNodes(["a", "b"], urls: servers.map(\.url)) { nodes in
                let (a, b) = (nodes[0], nodes[1])
                let byServer = topics(perServer: 1)
                let (up, down) = (byServer[0][0], byServer[1][0])
                b.subscribe(RedisTest.topic(up), RedisTest.topic(down))
                try await RedisTest.settle(nodes)

                await servers[1].kill()
                #expect(await RedisTest.eventually { a.status.backends.map(\.state) == [.connected, .fallback] })
                #expect(a.status.state == .fallback, "the overall state is the worst")

                let viaRedis = a.publish(topic: up)
                let local = a.publish(topic: down)
                #expect(await RedisTest.eventually { b.ids() == [viaRedis.id] })
                // Local delivery runs on the stopped server's link thread, independent of b's.
                #expect(await RedisTest.eventually { a.ids() == [local.id] }, "the topic of the stopped server is delivered locally")
                #expect(a.status.publishedInFallback == 1)

                try await servers[1].start()
                try await RedisTest.settle(nodes)
                let resumed = a.publish(topic: down)
                #expect(await RedisTest.eventually { b.ids() == [viaRedis.id, resumed.id] }, "b got \(b.ids()), a got \(a.ids()), a: \(a.status)")
                #expect(a.status.state == .connected)
            }
        }
    }
}
