import Foundation
import NIOCore
import NIOPosix
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

                // Local publishes reach the local node (through the link's delivering thread), and only it.
                let local = a.publish(topic: "down.t")
                #expect(await RedisTest.eventually { a.ids() == [local.id] }, "delivered locally in fallback")
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

    /// Redis killed between publishing a message and writing the publisher's reply: the node's
    /// own subscriber connection has the message, its publisher connection lost the reply.
    @Test(
        "a message Redis published before the publisher lost its reply is neither sent again nor delivered locally",
        arguments: [["pub"], ["sub", "pub"]])
    func publishedButUnacknowledged(cut connections: [String]) async throws {
        try await RedisTest.withServers { servers in
            let proxy = try await RedisFaultProxy.start(to: servers[0].url)
            defer { Task { await proxy.stop() } }
            // A long timeout: the held replies must not make the publisher fail on its own.
            let a = RedisTestNode("a", urls: [proxy.url], timeout: .seconds(30))
            let b = RedisTestNode("b", urls: [servers[0].url])
            try await RedisTest.shuttingDown([a, b]) {
                a.subscribe(RedisTest.topic("echo.t"))
                b.subscribe(RedisTest.topic("echo.t"))
                try await RedisTest.settle([a, b])

                proxy.holdReplies(toClientNamed: "chorus:a:pub")
                let first = a.publish(topic: "echo.t")
                #expect(await RedisTest.eventually { a.ids() == [first.id] && b.ids() == [first.id] })
                // Another message after it, so that a resent `first` would not follow itself
                // (a subscriber drops a payload equal to the one just before).
                let other = b.publish(topic: "echo.t")
                let published = [first.id, other.id]
                #expect(await RedisTest.eventually { a.ids() == published && b.ids() == published }, "published by Redis")
                for name in connections {
                    proxy.cut(clientNamed: "chorus:a:\(name)")  // `first` stays unacknowledged
                    if name == "sub" { #expect(await RedisTest.eventually { a.status.state == .fallback }) }
                }
                #expect(await RedisTest.eventually { connections.allSatisfy { proxy.count(clientNamed: "chorus:a:\($0)") == 2 } })
                try await RedisTest.settle([a, b])

                let second = a.publish(topic: "echo.t")
                #expect(await RedisTest.eventually { a.ids().last == second.id && b.ids().last == second.id })
                #expect(a.ids() == published + [second.id], "once on the publishing node")
                #expect(b.ids() == published + [second.id], "once on the other node")
            }
        }
    }

    /// The same loss, with the publisher's failure handled before the subscriber reads the
    /// message Redis published (it sits unread on the subscriber connection), and the link
    /// falling back meanwhile: delivered locally, the late copy from Redis is dropped.
    @Test("a message put back by a failed publisher and delivered locally is dropped when Redis's copy arrives late")
    func publishedButReadLate() async throws {
        try await RedisTest.withServers { servers in
            let proxy = try await RedisFaultProxy.start(to: servers[0].url)
            defer { Task { await proxy.stop() } }
            let a = RedisTestNode("a", urls: [proxy.url], timeout: .seconds(30))
            let b = RedisTestNode("b", urls: [servers[0].url])
            try await RedisTest.shuttingDown([a, b]) {
                a.subscribe(RedisTest.topic("late.t"))
                b.subscribe(RedisTest.topic("late.t"))
                try await RedisTest.settle([a, b])

                proxy.holdReplies(toClientNamed: "chorus:a:pub")
                proxy.holdReplies(toClientNamed: "chorus:a:sub")
                let first = a.publish(topic: "late.t")
                #expect(await RedisTest.eventually { b.ids() == [first.id] }, "published by Redis")
                proxy.refuse(clientNamed: "chorus:a:pub")  // the quick retry fails: the link falls back
                proxy.cut(clientNamed: "chorus:a:pub")
                #expect(await RedisTest.eventually { a.status.state == .fallback })
                #expect(await RedisTest.eventually { a.ids() == [first.id] }, "delivered locally")

                proxy.release(clientNamed: "chorus:a:sub")  // Redis's copy, then the next message
                let next = b.publish(topic: "late.t")
                #expect(await RedisTest.eventually { a.ids().last == next.id })
                #expect(a.ids() == [first.id, next.id], "once on the publishing node")
                #expect(b.ids() == [first.id, next.id])
            }
        }
    }

    /// The same loss, read late, while the publisher reconnects: Redis's copy takes the
    /// message out of the queue before the new connection could send it again.
    @Test("a message put back by a failed publisher is not sent again when Redis's copy arrives before the reconnect")
    func publishedReadBeforeReconnect() async throws {
        try await RedisTest.withServers { servers in
            let proxy = try await RedisFaultProxy.start(to: servers[0].url)
            defer { Task { await proxy.stop() } }
            let a = RedisTestNode("a", urls: [proxy.url], timeout: .seconds(30))
            let b = RedisTestNode("b", urls: [servers[0].url])
            try await RedisTest.shuttingDown([a, b]) {
                a.subscribe(RedisTest.topic("again.t"))
                b.subscribe(RedisTest.topic("again.t"))
                try await RedisTest.settle([a, b])

                proxy.holdReplies(toClientNamed: "chorus:a:pub")
                proxy.holdReplies(toClientNamed: "chorus:a:sub")
                let first = a.publish(topic: "again.t")
                #expect(await RedisTest.eventually { b.ids() == [first.id] }, "published by Redis")
                proxy.stall(clientNamed: "chorus:a:pub")  // the quick retry connects, and waits
                proxy.cut(clientNamed: "chorus:a:pub")
                #expect(await RedisTest.eventually { proxy.count(clientNamed: "chorus:a:pub") == 2 })

                proxy.release(clientNamed: "chorus:a:sub")  // Redis's copy, then the next message
                let next = b.publish(topic: "again.t")
                #expect(await RedisTest.eventually { a.ids() == [first.id, next.id] })
                proxy.release(clientNamed: "chorus:a:pub")  // the reconnect completes
                try await RedisTest.settle([a, b])
                let last = a.publish(topic: "again.t")
                #expect(await RedisTest.eventually { a.ids().last == last.id && b.ids().last == last.id })
                #expect(a.ids() == [first.id, next.id, last.id], "once on the publishing node")
                #expect(b.ids() == [first.id, next.id, last.id], "once on the other node")
                #expect(a.status.state == .connected && a.status.backends[0].transitions == 1, "no fall back: \(a.status)")
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
            let a = RedisTestNode("a", urls: [servers[0].url], timeout: .milliseconds(300), eventLoopGroup: group)
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

    @Test("shutdown while Redis is hung ends within the Redis timeout")
    func shutdownWhileHung() async throws {
        try await RedisTest.withServers { servers in
            let redis = servers[0]
            let node = RedisTestNode("a", urls: [redis.url], timeout: .milliseconds(500))
            node.subscribe(RedisTest.topic("h.t"))
            try await RedisTest.settle([node])
            redis.pause()
            node.publish(topic: "h.t")  // the publisher now waits for a reply that never comes
            try await Task.sleep(for: .milliseconds(50))  // let it be written and wait
            let elapsed = await ContinuousClock().measure { await node.adapter.shutdown() }
            redis.resume()
            #expect(elapsed < .seconds(2), "shutdown took \(elapsed)")
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
