import Foundation
import Synchronization
import Testing

@testable import Broker

/// Redis going away and coming back under running nodes.
@Suite("Redis adapter: failover to local delivery and back", .serialized)
struct RedisFailoverTests {
    @Test("a node started while Redis is down serves locally, then rejoins when Redis starts")
    func startWhileRedisIsDown() async throws {
        try await RedisTest.withServers(started: false) { servers in
            let redis = servers[0]
            try await RedisTest.withNodes(["a", "b"], urls: [redis.url]) { nodes in
                let (a, b) = (nodes[0], nodes[1])
                a.subscribe(RedisTest.topic("down.t"))
                b.subscribe(RedisTest.topic("down.t"), RedisTest.pattern("down.*"))
                #expect(await RedisTest.eventually { nodes.allSatisfy { $0.status.state == .fallback } })
                let fallback = a.status
                #expect(fallback.backends[0].state == .fallback)
                #expect(fallback.backends[0].lastError?.contains("refused") == true)

                // Local publishes reach the local node at once, and only it.
                let local = a.publish(topic: "down.t")
                #expect(a.ids() == [local.id], "delivered synchronously in fallback")
                #expect(a.status.publishedInFallback == 1)

                try await redis.start()
                try await RedisTest.settle(nodes)
                let status = a.status
                #expect(status.state == .connected)
                #expect(status.backends[0].transitions == 2)  // connecting -> fallback -> connected
                #expect(try await redis.activeChannels() == ["pubsub:down.t"], "interests resubscribed")

                let shared = a.publish(topic: "down.t")
                #expect(await RedisTest.eventually { b.ids() == [shared.id] && a.ids() == [local.id, shared.id] })
                #expect(b.ids() == [shared.id], "the fallback message never reaches other nodes")
            }
        }
    }

    @Test("killing Redis under a publishing loop falls back without a crash and resumes without duplicates")
    func killUnderLoad() async throws {
        try await RedisTest.withServers { servers in
            let redis = servers[0]
            try await RedisTest.withNodes(["a", "b"], urls: [redis.url]) { nodes in
                let (a, b) = (nodes[0], nodes[1])
                a.subscribe(RedisTest.topic("load.t"))
                b.subscribe(RedisTest.topic("load.t"), RedisTest.pattern("load.*"))
                try await RedisTest.settle(nodes)

                let publishing = Atomic<Bool>(true)
                let publisher = Task {
                    var count = 0
                    while publishing.load(ordering: .relaxed) {
                        a.publish(topic: "load.t")
                        count += 1
                        if count % 5 == 0 { try? await Task.sleep(for: .milliseconds(1)) }  // leave the cooperative pool to the rest of the suite
                    }
                    return count
                }

                #expect(await RedisTest.eventually { b.envelopes.count >= 300 })
                await redis.kill()
                #expect(await RedisTest.eventually { a.status.state == .fallback && b.status.state == .fallback })
                let fallbackDeliveries = a.envelopes.count
                #expect(await RedisTest.eventually { a.envelopes.count > fallbackDeliveries + 100 }, "local delivery goes on")

                try await redis.start()
                try await RedisTest.settle(nodes)
                let received = b.envelopes.count
                #expect(await RedisTest.eventually { b.envelopes.count > received + 300 }, "cross-node delivery resumes")
                publishing.store(false, ordering: .relaxed)
                let published = await publisher.value

                for node in nodes {
                    let ids = node.ids()
                    #expect(Set(ids).count == ids.count, "no duplicates on \(node.id)")
                }
                // b receives only through Redis: one order, with a gap for the outage.
                let sequence = b.envelopes.map { Int($0.id.split(separator: ":")[1])! }
                #expect(sequence == sequence.sorted())
                #expect(a.status.publishedInFallback > 0)
                #expect(a.status.backends[0].transitions == 3)  // connected, fallback, connected
                #expect(published > b.envelopes.count)
            }
        }
    }

    @Test("a Redis that stops answering puts the node into fallback after the command timeout")
    func frozenRedis() async throws {
        try await RedisTest.withServers { servers in
            let redis = servers[0]
            try await RedisTest.withNodes(["a"], urls: [redis.url]) { nodes in
                let a = nodes[0]
                a.subscribe(RedisTest.topic("frozen.t"))
                try await RedisTest.settle(nodes)

                redis.pause()
                a.publish(topic: "frozen.t")  // its pipeline never gets a reply
                #expect(await RedisTest.eventually { a.status.state == .fallback })
                #expect(a.status.backends[0].lastError?.contains("read") == true)
                let local = a.publish(topic: "frozen.t")
                #expect(a.ids().last == local.id, "delivered locally while Redis is frozen")

                redis.resume()
                try await RedisTest.settle(nodes)
                let shared = a.publish(topic: "frozen.t")
                #expect(await RedisTest.eventually { a.ids().last == shared.id })
            }
        }
    }

    @Test("shutdown is prompt, with Redis up or down")
    func promptShutdown() async throws {
        try await RedisTest.withServers(2) { servers in
            await servers[1].kill()
            let node = RedisTestNode("a", urls: servers.map(\.url))
            node.subscribe(RedisTest.topic("s.t"), RedisTest.pattern("s.**"))
            #expect(await RedisTest.eventually { node.status.backends.map(\.state) == [.connected, .fallback] })
            let clock = ContinuousClock()
            let elapsed = await clock.measure { await node.adapter.shutdown() }
            #expect(elapsed < .milliseconds(500))
            node.publish(topic: "s.t")
            #expect(node.envelopes.isEmpty, "nothing is delivered after shutdown")
        }
    }

    @Test("backoff doubles from 100 ms up to 5 s, with jitter in the upper half")
    func backoff() {
        var backoff = Backoff()
        var generator = SystemRandomNumberGenerator()
        let ceilings: [Duration] = [.milliseconds(100), .milliseconds(200), .milliseconds(400), .milliseconds(800),
            .milliseconds(1600), .milliseconds(3200), .seconds(5), .seconds(5)]
        for ceiling in ceilings {
            let delay = backoff.next(using: &generator)
            #expect(delay <= ceiling && delay >= ceiling / 2)
        }
        backoff.reset()
        #expect(backoff.next(using: &generator) <= .milliseconds(100))
    }
}
