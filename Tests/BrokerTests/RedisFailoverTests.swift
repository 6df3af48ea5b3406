import Foundation
import NIOCore
import NIOPosix
import Synchronization
import Testing
import TestSupport

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
                let failedAt = try #require(fallback.backends[0].lastErrorAt, "the error's time is shown")

                // Local publishes reach the local node (through the link's delivering thread), and only it.
                let local = a.publish(topic: "down.t")
                #expect(await RedisTest.eventually { a.ids() == [local.id] }, "delivered locally in fallback")
                #expect(a.status.publishedInFallback == 1)

                try await redis.start()
                try await RedisTest.settle(nodes)
                let status = a.status
                #expect(status.state == .connected)
                #expect(status.backends[0].transitions == 2)  // connecting -> fallback -> connected
                #expect(status.backends[0].lastErrorAt.map { $0 >= failedAt && $0 <= status.backends[0].since } == true, "the error is older than the recovery")
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

                // Generous bounds: the publishing task shares the cooperative pool with the rest of
                // the suite, and on a loaded 2-core machine it can be starved for seconds; each wait
                // ends as soon as its condition holds.
                let patience = Duration.seconds(40)
                #expect(await RedisTest.eventually(within: patience) { b.envelopes.count >= 300 },
                        "cross-node delivery before the kill: b has \(b.envelopes.count), a has \(a.envelopes.count)")
                await redis.kill()
                #expect(await RedisTest.eventually(within: patience) { a.status.state == .fallback && b.status.state == .fallback })
                let fallbackDeliveries = a.envelopes.count
                #expect(await RedisTest.eventually(within: patience) { a.envelopes.count > fallbackDeliveries + 100 },
                        "local delivery goes on")

                try await redis.start()
                try await RedisTest.settle(nodes, within: patience)
                let received = b.envelopes.count
                #expect(await RedisTest.eventually(within: patience) { b.envelopes.count > received + 300 },
                        "cross-node delivery resumes: b has \(b.envelopes.count), had \(received)")
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
                #expect(a.status.backends[0].transitions == 3, "connected, fallback, connected: \(a.status.backends[0])")
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
                #expect(a.status.backends[0].lastError?.contains("no answer") == true)
                let local = a.publish(topic: "frozen.t")
                #expect(await RedisTest.eventually { a.ids().last == local.id }, "delivered locally while Redis is frozen")

                redis.resume()
                try await RedisTest.settle(nodes)
                let shared = a.publish(topic: "frozen.t")
                #expect(await RedisTest.eventually { a.ids().last == shared.id })
            }
        }
    }

    @Test("a reply left unread while the link's loop is busy with other work is not a timeout")
    func busyLoop() async throws {
        try await RedisTest.withServers { servers in
            let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)  // the link's loop, and only its
            // The 1-s block below is past the 800-ms timeout; a reply merely slowed on a loaded
            // machine is not.
            let a = RedisTestNode("a", urls: [servers[0].url], timeout: .milliseconds(800), eventLoopGroup: group)
            try await RedisTest.shuttingDown([a]) {
                a.subscribe(RedisTest.topic("busy.t"))
                try await RedisTest.settle([a])
                // On the link's loop: a publish (written in this pass; Redis answers at once),
                // then other work that holds the loop for 1 s. NIO runs every ready task, the
                // publisher's deadline included, before it reads its sockets again.
                let loop = group.next()
                let sent = try await loop.submit {
                    let sent = a.publish(topic: "busy.t")
                    loop.execute { usleep(1_000_000) }
                    return sent
                }.get()
                #expect(await RedisTest.eventually { a.ids() == [sent.id] })
                let status = a.status
                #expect(status.state == .connected)
                #expect(status.backends[0].transitions == 1, "no fall back: \(status.backends[0].lastError ?? "no error")")
            }
            try await group.shutdownGracefully()
        }
    }

    @Test("shutdown is prompt, with Redis up or down")
    func promptShutdown() async throws {
        try await RedisTest.withServers(2) { servers in
            await servers[1].kill()
            // A 120-s Redis timeout and a 60-s bound on the shutdown: a shutdown that waited for
            // a deadline (a reply, a connect, the down server's reconnect) could not end before
            // the bound, so ending within it shows it waited for none, with no wall-clock
            // threshold for a loaded machine to cross.
            let node = RedisTestNode("a", urls: servers.map(\.url), timeout: .seconds(120))
            node.subscribe(RedisTest.topic("s.t"), RedisTest.pattern("s.**"))
            #expect(await RedisTest.eventually { node.status.backends.map(\.state) == [.connected, .fallback] })
            try await withDeadline(.seconds(60), "shutdown with one Redis up and one down") {
                await node.adapter.shutdown()
            }
            node.publish(topic: "s.t")
            #expect(node.envelopes.isEmpty, "nothing is delivered after shutdown")
        }
    }

    @Test("in fallback a node's own publishes are delivered by the link's loop, never by the publishing thread")
    func fallbackDeliveryThread() async throws {
        try await RedisTest.withServers(started: false) { servers in
            try await RedisTest.withNodes(["a"], urls: [servers[0].url]) { nodes in
                let a = nodes[0]
                a.subscribe(RedisTest.topic("hand.t"))
                #expect(await RedisTest.eventually { a.status.state == .fallback })
                let publishingThread = UInt(pthread_self())
                let local = a.publish(topic: "hand.t")
                #expect(await RedisTest.eventually { a.ids() == [local.id] })
                #expect(a.deliveringThreads.count == 1)
                #expect(!a.deliveringThreads.contains(publishingThread), "the publishing thread only queues")
            }
        }
    }

    /// A batch in flight and a full queue behind it, when Redis hangs: the fall back delivers
    /// every message the queue admitted and answers each publisher, none dropped unanswered.
    @Test("a fall back under a full publish queue delivers and answers every message the queue admitted")
    func fallBackWithFullQueue() async throws {
        try await RedisTest.withServers { servers in
            let redis = servers[0]
            let node = RedisTestNode("a", urls: [redis.url], timeout: .milliseconds(500), publishQueueLimit: 3)
            try await RedisTest.shuttingDown([node]) {
                node.subscribe(RedisTest.topic("full.t"))
                try await RedisTest.settle([node])
                redis.pause()
                defer { redis.resume() }
                let outcomes = Mutex<[PublishOutcome]>([])
                func publish() -> Envelope {
                    node.publish(topic: "full.t") { outcome in outcomes.withLock { $0.append(outcome) } }
                }
                let inFlight = publish()
                #expect(await RedisTest.eventually { node.adapter.hasBatchInFlight }, "written to the hung Redis")
                let admitted = [inFlight] + (0..<3).map { _ in publish() }  // the queue's limit
                #expect(await RedisTest.eventually { node.status.state == .fallback })
                #expect(await RedisTest.eventually { node.ids() == admitted.map(\.id) }, "all delivered locally")
                #expect(await RedisTest.eventually { outcomes.withLock { $0.count } == admitted.count }, "all answered")
                #expect(outcomes.withLock { $0 }.allSatisfy { $0.refusal == nil })
                #expect(node.status.dropped == 0)
            }
        }
    }

    @Test("shutdown while Redis is hung ends within the Redis timeout")
    func shutdownWhileHung() async throws {
        try await RedisTest.withServers { servers in
            let redis = servers[0]
            let node = RedisTestNode("a", urls: [redis.url], timeout: .milliseconds(500))
            node.subscribe(RedisTest.topic("h.t"))
            try await RedisTest.settle([node])
            redis.pause()
            defer { redis.resume() }  // also when a wait below fails
            node.publish(topic: "h.t")  // the publisher now waits for a reply that never comes
            #expect(await RedisTest.eventually { node.adapter.hasBatchInFlight }, "written to the hung Redis")
            // A shutdown that waited for the hung reply would never end: the deadline turns that
            // into a failure, with no wall-clock threshold for a loaded machine to cross.
            try await withDeadline(.seconds(30), "shutdown while Redis is hung") {
                await node.adapter.shutdown()
            }
        }
    }

    @Test("a publish queue is bounded in bytes as well as in messages; an empty queue takes one large message")
    func queueBounds() throws {
        let envelope = Envelope(id: "n:1", origin: "n", topic: try Topic("q.t"), data: .null)
        func message(_ size: Int) -> RedisOutgoing {
            RedisOutgoing(channel: "c", envelope: envelope, payload: Array(repeating: 0x20, count: size))
        }
        var queue = RedisOutgoingQueue(messageLimit: 3, byteLimit: 1200)  // a 400-byte message costs 465
        var accepted = [queue.append(message(2000)), queue.append(message(10))]
        #expect(queue.bytes == 2000 + 1 + RedisOutgoing.overhead)
        #expect(accepted == [true, false], "alone, a message larger than the limit passes; nothing after it")
        _ = queue.takeAll()
        #expect(queue.bytes == 0)
        accepted = [queue.append(message(400)), queue.append(message(400)), queue.append(message(400))]
        #expect(accepted == [true, true, false], "over 1200 bytes")
        accepted = [queue.append(message(10)), queue.append(message(1))]
        #expect(accepted == [true, false], "over 3 messages")
        queue.prepend([message(500)])
        #expect(queue.count == 4, "a batch put back is never refused")
    }

    @Test("ids delivered locally are dropped once when Redis brings them back, and the memory of them is bounded")
    func doubtfulIDs() {
        var ids = RedisDoubtfulIDs(limit: 3)
        #expect(ids.isEmpty)
        for id in ["a", "b", "c", "d"] { ids.insert(id) }
        let removed = ["a", "b", "b", "c", "d"].map { ids.remove($0) }
        #expect(removed == [false, true, false, true, true], "the oldest was forgotten; each dropped once")
        #expect(ids.isEmpty)
    }

    @Test("backoff doubles from 100 ms up to 5 s, with jitter in the upper half")
    func backoff() {
        var backoff = Backoff(initial: .milliseconds(100), maximum: .seconds(5))
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
