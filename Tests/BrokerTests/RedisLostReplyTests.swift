import NIOPosix
import Synchronization
import Testing

@testable import Broker

/// Redis published a message but its reply to the publisher was lost with the connection (Redis
/// killed between the two writes, a connection cut): the node's own subscriber brings the message
/// back, before or after the failure is handled, and it must reach every subscriber once. A
/// ``RedisFaultProxy`` in front of a real `redis-server` makes each order happen on demand.
@Suite("Redis adapter: a reply lost after Redis published")
struct RedisLostReplyTests {
    /// Node a behind a proxy, node b straight to Redis, both subscribed to `topic` and settled.
    /// Node a's timeout is long: replies a test holds back must not make it fail on its own.
    static func withProxiedPair(
        _ topic: String, history: HistoryPolicy = .off, _ body: (RedisFaultProxy, RedisTestNode, RedisTestNode) async throws -> Void
    ) async throws {
        try await RedisTest.withServers { servers in
            let proxy = try await RedisFaultProxy.start(to: servers[0].url)
            defer { Task { await proxy.stop() } }
            let a = RedisTestNode("a", urls: [proxy.url], timeout: .seconds(30), history: history)
            let b = RedisTestNode("b", urls: [servers[0].url], history: history)
            try await RedisTest.shuttingDown([a, b]) {
                a.subscribe(RedisTest.topic(topic))
                b.subscribe(RedisTest.topic(topic))
                try await RedisTest.settle([a, b])
                try await body(proxy, a, b)
            }
        }
    }

    /// Publishes from node a while everything Redis sends node a is held back: the message
    /// reaches node b, its reply and its copy for node a wait in the proxy.
    static func publishWithEverythingHeld(
        _ topic: String, _ proxy: RedisFaultProxy, _ a: RedisTestNode, _ b: RedisTestNode,
        completion: PublishCompletion? = nil
    ) async -> Envelope {
        proxy.holdReplies(toClientNamed: "chorus:a:pub")
        proxy.holdReplies(toClientNamed: "chorus:a:sub")
        let message = a.publish(topic: topic, completion: completion)
        #expect(await RedisTest.eventually { b.ids() == [message.id] }, "published by Redis")
        return message
    }

    /// Redis killed between publishing a message and writing the publisher's reply: the node's
    /// own subscriber connection has the message, its publisher connection lost the reply.
    @Test(
        "a message Redis published before the publisher lost its reply is neither sent again nor delivered locally",
        arguments: [["pub"], ["sub", "pub"]])
    func publishedButUnacknowledged(cut connections: [String]) async throws {
        try await Self.withProxiedPair("echo.t") { proxy, a, b in
            proxy.holdReplies(toClientNamed: "chorus:a:pub")
            let first = a.publish(topic: "echo.t")
            #expect(await RedisTest.eventually { a.ids() == [first.id] && b.ids() == [first.id] })
            // Another message after it, so that a resent `first` would not follow itself
            // (a subscriber drops a payload equal to the one just before).
            let other = b.publish(topic: "echo.t")
            let published = [first.id, other.id]
            #expect(await RedisTest.eventually { a.ids() == published && b.ids() == published }, "published by Redis")
            for name in connections {
                let transitions = a.status.backends[0].transitions
                proxy.cut(clientNamed: "chorus:a:\(name)")  // `first` stays unacknowledged
                // The fall back may be over before a poll would see it: its transition stays counted.
                if name == "sub" { #expect(await RedisTest.eventually { a.status.backends[0].transitions > transitions }) }
            }
            #expect(await RedisTest.eventually { connections.allSatisfy { proxy.count(clientNamed: "chorus:a:\($0)") == 2 } })
            try await RedisTest.settle([a, b])

            let second = a.publish(topic: "echo.t")
            #expect(await RedisTest.eventually { a.ids().last == second.id && b.ids().last == second.id })
            #expect(a.ids() == published + [second.id], "once on the publishing node")
            #expect(b.ids() == published + [second.id], "once on the other node")
        }
    }

    /// The same loss for a batch holding a message this node has no subscriber for: it never
    /// comes back to the node, but Redis ran it, since it ran a later command of the same
    /// connection (the node's own message that did come back).
    @Test("a message with no subscriber on its node, in a batch Redis ran past, is not sent again")
    func publishedUnseen() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)  // the link's loop
        try await RedisTest.withServers { servers in
            let proxy = try await RedisFaultProxy.start(to: servers[0].url)
            defer { Task { await proxy.stop() } }
            let a = RedisTestNode("a", urls: [proxy.url], timeout: .seconds(30), eventLoopGroup: group)
            let b = RedisTestNode("b", urls: [servers[0].url])
            try await RedisTest.shuttingDown([a, b]) {
                a.subscribe(RedisTest.topic("seen.t"))
                b.subscribe(RedisTest.topic("seen.t"), RedisTest.topic("unseen.t"))
                try await RedisTest.settle([a, b])
                proxy.holdReplies(toClientNamed: "chorus:a:pub")
                // Both in one batch: published on the link's loop, before its turn runs.
                let loop = group.next()
                let (unseen, seen) = try await loop.submit { (a.publish(topic: "unseen.t"), a.publish(topic: "seen.t")) }.get()
                #expect(await RedisTest.eventually { a.ids() == [seen.id] && b.ids() == [unseen.id, seen.id] })
                proxy.cut(clientNamed: "chorus:a:pub")
                #expect(await RedisTest.eventually { proxy.count(clientNamed: "chorus:a:pub") == 2 })
                try await RedisTest.settle([a, b])
                let last = a.publish(topic: "seen.t")
                #expect(await RedisTest.eventually { b.ids().last == last.id })
                #expect(b.ids() == [unseen.id, seen.id, last.id], "once on the other node")
            }
        }
        try await group.shutdownGracefully()
    }

    /// The same loss, with the publisher's failure handled before the subscriber reads the
    /// message Redis published (it sits unread on the subscriber connection), and the link
    /// falling back meanwhile: delivered locally, the late copy from Redis is dropped.
    @Test("a message put back by a failed publisher and delivered locally is dropped when Redis's copy arrives late")
    func publishedButReadLate() async throws {
        try await Self.withProxiedPair("late.t") { proxy, a, b in
            let first = await Self.publishWithEverythingHeld("late.t", proxy, a, b)
            proxy.refuse(clientNamed: "chorus:a:pub")  // the quick retry fails: the link falls back
            proxy.cut(clientNamed: "chorus:a:pub")
            #expect(await RedisTest.eventually { a.status.state == .fallback })
            #expect(await RedisTest.eventually { a.ids() == [first.id] }, "delivered locally")

            proxy.release(clientNamed: "chorus:a:sub")  // Redis's copy, then the next message
            let next = b.publish(topic: "late.t")
            #expect(await RedisTest.eventually { a.ids().last == next.id && b.ids().last == next.id })
            #expect(a.ids() == [first.id, next.id], "once on the publishing node")
            #expect(b.ids() == [first.id, next.id])
        }
    }

    /// The answer to such a message, on a topic with history: delivered locally (`nodeOnly`), but
    /// Redis may have run it, and here did (the other node has it), so it is `uncertain`. A
    /// message published once the link is in fallback never went to Redis: `nodeOnly` alone.
    /// The link falls back either through the publisher (its batch put back, then taken for
    /// local delivery) or through the subscriber (the batch still in flight).
    @Test(
        "a message with history written to Redis unanswered when the link fell back is answered node-only and uncertain; one published in fallback is node-only and certain",
        arguments: ["pub", "sub"])
    func uncertainAnswer(failing connection: String) async throws {
        try await Self.withProxiedPair("doubt.t", history: HistoryPolicy(size: 10)) { proxy, a, b in
            let outcomes = Mutex<[String: PublishOutcome]>([:])
            let first = await Self.publishWithEverythingHeld("doubt.t", proxy, a, b) { outcome in
                outcomes.withLock { $0["first"] = outcome }
            }
            proxy.refuse(clientNamed: "chorus:a:\(connection)")  // the quick retry fails: the link falls back
            proxy.cut(clientNamed: "chorus:a:\(connection)")
            #expect(await RedisTest.eventually { a.status.state == .fallback })
            #expect(await RedisTest.eventually { a.ids() == [first.id] }, "delivered locally")
            #expect(await RedisTest.eventually { outcomes.withLock { $0["first"] } != nil })
            let answer = outcomes.withLock { $0["first"] }
            #expect(answer?.nodeOnly == true && answer?.uncertain == true, "\(String(describing: answer))")
            #expect(b.ids() == [first.id], "Redis did run it")

            let later = a.publish(topic: "doubt.t") { outcome in outcomes.withLock { $0["later"] = outcome } }
            #expect(await RedisTest.eventually { a.ids() == [first.id, later.id] })
            #expect(await RedisTest.eventually { outcomes.withLock { $0["later"] } != nil })
            let laterAnswer = outcomes.withLock { $0["later"] }
            #expect(laterAnswer?.nodeOnly == true && laterAnswer?.uncertain == false, "\(String(describing: laterAnswer))")
        }
    }

    /// A batch still in flight when the link falls back may hold a message Redis refused already
    /// (its reply in, its publisher told) beside one Redis has not answered: only the second is
    /// delivered locally. Here the node's ACL keeps it from `bad.t`'s keys (`NOPERM`, answered at
    /// once) and `CLIENT PAUSE WRITE` holds the calls after it in Redis: a message to a user
    /// (a `PUBLISH`, which also parts the two script calls), then `ok.t`'s.
    @Test("a message Redis refused, in a batch still in flight when the link falls back, is not delivered locally")
    func refusedInFlight() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)  // the link's loop
        try await RedisTest.withServers { servers in
            let redis = servers[0]
            _ = try await redis.command(["ACL", "SETUSER", "okonly", "on", ">pw", "~pubsub:@history*:ok.*", "&*", "+@all"])
            let proxy = try await RedisFaultProxy.start(
                to: RedisURL(host: redis.host, port: redis.port, user: "okonly", password: "pw"))
            defer { Task { await proxy.stop() } }
            let a = RedisTestNode("a", urls: [proxy.url], timeout: .seconds(30), history: HistoryPolicy(size: 10), eventLoopGroup: group)
            try await RedisTest.shuttingDown([a]) {
                a.subscribe(RedisTest.topic("ok.t"), RedisTest.topic("bad.t"))
                try await RedisTest.settle([a])
                _ = try await redis.command(["CLIENT", "PAUSE", "20000", "WRITE"])
                let outcomes = Mutex<[String: PublishOutcome]>([:])
                let loop = group.next()
                // Both in one batch: published on the link's loop, before its turn runs.
                let ok = try await loop.submit {
                    a.publish(topic: "bad.t") { outcome in outcomes.withLock { $0["bad"] = outcome } }
                    a.publish(topic: nil, userId: "u1")
                    return a.publish(topic: "ok.t") { outcome in outcomes.withLock { $0["ok"] = outcome } }
                }.get()
                #expect(await RedisTest.eventually { outcomes.withLock { $0["bad"] }?.refusal != nil }, "refused at once")
                proxy.refuse(clientNamed: "chorus:a:sub")  // the quick retry fails: the link falls back
                proxy.cut(clientNamed: "chorus:a:sub")
                #expect(await RedisTest.eventually { a.status.state == .fallback })
                #expect(await RedisTest.eventually { a.ids(topic: "ok.t") == [ok.id] }, "\(a.ids())")
                #expect(a.ids(topic: "bad.t").isEmpty, "a refused message is not delivered")
                let answer = outcomes.withLock { $0["ok"] }
                #expect(answer?.nodeOnly == true && answer?.uncertain == true, "\(String(describing: answer))")
                _ = try await redis.command(["CLIENT", "UNPAUSE"])
            }
        }
        try await group.shutdownGracefully()
    }

    /// The same loss, with the publisher back at once while the subscriber connection is behind
    /// (its copy of the message still unread, as behind a backlog Redis has not written yet):
    /// the new publisher must not send the message again before the subscriber has read
    /// everything Redis sent it before the failure, which a `PING` on that connection marks.
    @Test("a message put back by a failed publisher is sent again only after the subscriber has caught up")
    func publishedReadAfterReconnect() async throws {
        try await Self.withProxiedPair("behind.t") { proxy, a, b in
            let first = await Self.publishWithEverythingHeld("behind.t", proxy, a, b)
            // Another message after it on b, so that a resent `first` would not follow itself
            // there (a subscriber drops a payload equal to the one just before).
            let other = b.publish(topic: "behind.t")
            #expect(await RedisTest.eventually { b.ids() == [first.id, other.id] })
            let pings = proxy.pings(fromClientNamed: "chorus:a:sub")
            proxy.cut(clientNamed: "chorus:a:pub")  // the quick retry connects at once
            let second = a.publish(topic: "behind.t")  // queued behind `first`
            // Either the new publisher sent them, or the subscriber marked its place first.
            #expect(
                await RedisTest.eventually {
                    b.ids().last == second.id || proxy.pings(fromClientNamed: "chorus:a:sub") > pings
                })
            proxy.release(clientNamed: "chorus:a:sub")  // Redis's copy of `first`, then the rest
            #expect(await RedisTest.eventually { a.ids().last == second.id && b.ids().last == second.id })
            #expect(b.ids() == [first.id, other.id, second.id], "once on the other node")
            #expect(a.ids() == [first.id, other.id, second.id], "once on the publishing node")
            #expect(a.status.state == .connected && a.status.backends[0].transitions == 1, "no fall back: \(a.status)")
        }
    }

    /// The same loss, read late, while the publisher reconnects: Redis's copy takes the
    /// message out of the queue before the new connection could send it again.
    @Test("a message put back by a failed publisher is not sent again when Redis's copy arrives before the reconnect")
    func publishedReadBeforeReconnect() async throws {
        try await Self.withProxiedPair("again.t") { proxy, a, b in
            let first = await Self.publishWithEverythingHeld("again.t", proxy, a, b)
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
