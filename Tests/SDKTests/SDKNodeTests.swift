import struct Broker.TopicPattern
import ChorusSDK
import Foundation
import Synchronization
import Node
import Testing
import TestSupport

/// The Swift SDK against one real `chorus` node (a child process, see `withNodeProcess`).
@Suite("Swift SDK against a node", .timeLimit(.minutes(2)))
struct SDKNodeTests {
    private static func url(_ node: NodeProcess) -> String { "ws://127.0.0.1:\(node.port)/ws" }

    /// The SDK's default configuration (publish acknowledgements on).
    private static func configuration() -> ChorusClient.Configuration {
        ChorusClient.Configuration()
    }

    /// Renews only when the node says the token expired (tests of that path).
    private static func renewingOnExpiry() -> ChorusClient.Configuration {
        var configuration = configuration()
        configuration.renewBefore = nil
        return configuration
    }

    @Test("a publish that only the node's own subscribers received (its Redis unreachable) says so: nodeOnly")
    func nodeOnlyReceipt() async throws {
        try await withNodeProcess(["PUBSUB_ADAPTER": "redis", "PUBSUB_REDIS_URL": "redis://127.0.0.1:1"]) { node in
            let client = try ChorusClient(url: Self.url(node), token: node.token("alice"), configuration: Self.configuration())
            try await client.connect()
            let receipt = try await client.publish("chat.lobby", ["n": 1])
            #expect(receipt.acknowledged && receipt.nodeOnly)
            await client.close()
        }
    }

    @Test("a client connects, subscribes, publishes and receives what it published")
    func roundTrip() async throws {
        try await withNodeProcess { node in
            let client = try ChorusClient(url: Self.url(node), token: node.token("alice"), configuration: Self.configuration())
            try await client.connect()
            #expect(await client.state == .connected(userId: "alice"))
            let subscription = try await client.subscribe("chat.lobby")
            let receipt = try await client.publish("chat.lobby", ["text": "hello", "n": 1], metadata: ["room": "lobby"])
            #expect(receipt.topic == "chat.lobby")
            #expect(receipt.acknowledged)
            #expect(!receipt.duplicate)
            #expect(!receipt.nodeOnly)
            var messages = subscription.makeAsyncIterator()
            let message = try #require(await messages.next())
            #expect(message.topic == "chat.lobby")
            #expect(message.data == ["text": "hello", "n": 1])
            #expect(message.senderId == "alice")
            #expect(message.metadata["room"] == "lobby")
            #expect(message.eventType == "message.sent")
            await client.close()
            #expect(await client.state == .disconnected)
        }
    }

    @Test("a burst past the node's message rate: subscribes and publishes the node drops with 429 and retryAfter are sent again, and every one succeeds; each message arrives once")
    func burstPastTheRateLimit() async throws {
        try await withNodeProcess(["WEBSOCKET_MAX_MESSAGES_PER_SECOND": "10"]) { node in
            let reader = try ChorusClient(url: Self.url(node), token: node.token("rhea"), configuration: Self.configuration())
            let watched = try await reader.subscribe("chat.burst")
            let client = try ChorusClient(url: Self.url(node), token: node.token("sam"), configuration: Self.configuration())
            try await client.connect()
            // 12 subscribes and 24 publishes at once: over two seconds' worth of the rate.
            let subscribed = try await withThrowingTaskGroup(of: String.self) { group in
                for n in 0..<12 { group.addTask { _ = try await client.subscribe("chat.room-\(n)"); return "chat.room-\(n)" } }
                return try await group.reduce(into: Set<String>()) { $0.insert($1) }
            }
            #expect(subscribed.count == 12)
            let receipts = try await withThrowingTaskGroup(of: PublishReceipt.self) { group in
                for n in 0..<24 { group.addTask { try await client.publish("chat.burst", ["n": .integer(Int64(n))]) } }
                return try await group.reduce(into: [PublishReceipt]()) { $0.append($1) }
            }
            #expect(receipts.count == 24 && receipts.allSatisfy { $0.acknowledged && !$0.duplicate })
            var messages = watched.makeAsyncIterator()
            var seen: [Int64] = []
            while seen.count < 24, let message = await messages.next() {
                if case .integer(let n)? = message.data["n"] { seen.append(n) }
            }
            #expect(Set(seen) == Set(0..<24) && seen.count == 24, "each message once")
            await client.close()
            await reader.close()
        }
    }

    @Test("presence: ending a topic's last join while a plain subscription of it stays subscribes again without presence, and the subscription hears resync (events between may be missed)")
    func resyncAfterLastJoinEnds() async throws {
        try await withNodeProcess { node in
            let client = try ChorusClient(url: Self.url(node), token: node.token("vic"), configuration: Self.configuration())
            let membership = try await client.join("rooms.mixed", data: ["status": "here"])
            let plain = try await client.subscribe("rooms.mixed")
            let watchdog = Task {
                try await Task.sleep(for: .seconds(30))
                await client.close()
            }
            defer { watchdog.cancel() }
            membership.cancel()
            let resync = await first(in: plain.presenceEvents) { $0.kind == .resync }
            #expect(resync?.topic == "rooms.mixed")
            let state = try await client.members("rooms.mixed")
            #expect(state.members.isEmpty, "no longer a member")
            await client.close()
        }
    }

    @Test("a burst of 900 subscribes at a message rate of 100 drains: the ones the node drops are sent again spaced to its limit, not closed for flooding (1008)")
    func subscribeBurstDrains() async throws {
        try await withNodeProcess(["WEBSOCKET_MAX_MESSAGES_PER_SECOND": "100", "WEBSOCKET_MAX_SUBSCRIPTIONS": "2000"]) { node in
            let client = try ChorusClient(url: Self.url(node), token: node.token("uma"), configuration: Self.configuration())
            try await client.connect()
            let events = await client.events()
            let subscriptions = try await withThrowingTaskGroup(of: Subscription.self) { group in
                for n in 0..<900 { group.addTask { try await client.subscribe("chat.many-\(n)") } }
                return try await group.reduce(into: [Subscription]()) { $0.append($1) }
            }
            #expect(subscriptions.count == 900)
            #expect(await client.state == .connected(userId: "uma"), "never dropped for flooding")
            let stats = try await node.stats()
            #expect((stats["connections"] as? [String: Any])?["closedFlooding"] as? Int == 0)
            #expect((stats["subscriptions"] as? [String: Any])?["total"] as? Int == 900)
            _ = events
            await client.close()
        }
    }

    @Test("a publish on a connection that stops answering (the node frozen with SIGSTOP: the TCP connection stays open) is not failed: the missing pong drops the connection and the publish goes out again once the node answers")
    func publishOnAHalfOpenConnection() async throws {
        try await withNodeProcess { node in
            var configuration = Self.configuration()
            // After the thaw the publish, sent again, must be answered within the request
            // timeout (the node answering the ping then would fail it): 5 s for a node just
            // thawed on a loaded machine, where 1 s was tight.
            configuration.requestTimeout = .seconds(5)
            configuration.pongTimeout = .seconds(1)
            configuration.pingInterval = nil
            configuration.connectTimeout = .seconds(2)
            let client = try ChorusClient(url: Self.url(node), token: node.token("tess"), configuration: configuration)
            let states = await client.states()
            let subscription = try await client.subscribe("chat.frozen")
            var messages = subscription.makeAsyncIterator()

            node.process.signal(SIGSTOP)
            // The publish's timeout checks the connection; no pong: dropped, reconnecting. Then
            // the node answers again (at once if the publish ends first).
            let thaw = Task {
                let dropped = await first(in: states) { if case .reconnecting = $0 { true } else { false } }
                node.process.signal(SIGCONT)
                return dropped != nil
            }
            let outcome = await Task { try await client.publish("chat.frozen", ["n": 1]) }.result
            thaw.cancel()
            node.process.signal(SIGCONT)
            #expect(await thaw.value, "the client noticed the dead connection")
            let receipt = try outcome.get()
            #expect(receipt.acknowledged, "sent again on the new connection and acknowledged, not failed with a timeout")
            let message = await messages.next()
            #expect(message?.data == ["n": 1])
            await client.close()
        }
    }

    @Test("a first subscribe with replay or since receives the history it asked for, then live messages")
    func historyOnFirstSubscribe() async throws {
        try await withNodeProcess { node in
            let publisher = try ChorusClient(url: Self.url(node), token: node.token("alice"), configuration: Self.configuration())
            var receipts: [PublishReceipt] = []
            for n in 1...5 { receipts.append(try await publisher.publish("chat.history", ["n": .integer(Int64(n))])) }
            let second = try #require(receipts[1].position)

            let bob = try ChorusClient(url: Self.url(node), token: node.token("bob"), configuration: Self.configuration())
            let carol = try ChorusClient(url: Self.url(node), token: node.token("carol"), configuration: Self.configuration())
            let replayed = try await bob.subscribe("chat.history", replay: 3)
            let recovered = try await carol.subscribe("chat.history", since: second)
            try await publisher.publish("chat.history", ["n": 6])

            for (name, subscription) in [("replay: 3", replayed), ("since the second", recovered)] {
                var messages = subscription.makeAsyncIterator()
                var got: [JSONValue] = []
                for _ in 0..<4 { got.append(try #require(await messages.next(), "\(name): \(got)").data) }
                #expect(got == [["n": 3], ["n": 4], ["n": 5], ["n": 6]], "\(name): the third to the fifth, then live")
            }
            for client in [publisher, bob, carol] { await client.close() }
        }
    }

    @Test("a second subscription of a live topic with since behind the topic's position starts live and reports recoveryFailed; one at the position does not")
    func sinceOnALiveTopic() async throws {
        try await withNodeProcess { node in
            let publisher = try ChorusClient(url: Self.url(node), token: node.token("alice"), configuration: Self.configuration())
            let bob = try ChorusClient(url: Self.url(node), token: node.token("bob"), configuration: Self.configuration())
            let events = await bob.events()
            let first = try await bob.subscribe("chat.twice")
            var receipts: [PublishReceipt] = []
            for n in 1...3 { receipts.append(try await publisher.publish("chat.twice", ["n": .integer(Int64(n))])) }
            var firstMessages = first.makeAsyncIterator()
            for _ in 1...3 { _ = await firstMessages.next() }
            let behind = try #require(receipts[0].position)
            let current = try #require(receipts[2].position)
            let late = try await bob.subscribe("chat.twice", since: behind)
            let level = try await bob.subscribe("chat.twice", since: current)
            try await publisher.publish("chat.twice", ["n": 4])
            for subscription in [late, level] {
                var messages = subscription.makeAsyncIterator()
                #expect(await messages.next()?.data == ["n": 4], "live from here")
            }
            // Events come in order: everything up to a later subscription's is in.
            _ = try await bob.subscribe("chat.marker")
            var failures: [ClientEvent] = []
            for await event in events {
                if case .recoveryFailed = event { failures.append(event) }
                if case .subscribed("chat.marker", _, _, _) = event { break }
            }
            #expect(failures == [.recoveryFailed(topic: "chat.twice", since: behind)], "one, for the subscription behind")
            await bob.close()
            await publisher.close()
        }
    }

    @Test("a topic's history page arrives in full after a pattern of the same client delivered that topic's newest message, and the pattern gets no repeats")
    func historyAfterPattern() async throws {
        try await withNodeProcess { node in
            let bob = try ChorusClient(url: Self.url(node), token: node.token("bob"), configuration: Self.configuration())
            let pattern = try await bob.subscribe("chat.*")
            for n in 1...3 { try await bob.publish("chat.history", ["n": .integer(Int64(n))]) }
            var patternMessages = pattern.makeAsyncIterator()
            for n in 1...3 { #expect(await patternMessages.next()?.data == ["n": .integer(Int64(n))]) }

            let topic = try await bob.subscribe("chat.history", replay: 3)
            try await bob.publish("chat.history", ["n": 4])
            var topicMessages = topic.makeAsyncIterator()
            var got: [JSONValue] = []
            for _ in 0..<4 { got.append(try #require(await topicMessages.next(), "\(got)").data) }
            #expect(got == [["n": 1], ["n": 2], ["n": 3], ["n": 4]], "the page the pattern had delivered, then live")
            #expect(await patternMessages.next()?.data == ["n": 4], "the pattern is not given the page again")
            #expect(await bob.position(of: "chat.history")?.offset == 4)
            await bob.close()
        }
    }

    @Test("a topic's page arrives in full when a pattern of the client delivered that topic's message before the topic's subscribed (a scripted node: the order every time)")
    func patternBeforePage() async throws {
        let (scripted, port) = try await Self.scriptedNode("pattern-before-page")
        defer { scripted.signal(SIGKILL) }
        let client = try ChorusClient(url: "ws://127.0.0.1:\(port)/ws", token: "any", configuration: Self.configuration())
        let pattern = try await client.subscribe("chat.*")
        let topic = try await client.subscribe("chat.a", replay: 3)
        var topicMessages = topic.makeAsyncIterator()
        var got: [JSONValue] = []
        for _ in 0..<4 { got.append(try #require(await topicMessages.next(), "\(got)").data) }
        #expect(got == [["n": 1], ["n": 2], ["n": 3], ["n": 4]], "the page, then live")
        var patternMessages = pattern.makeAsyncIterator()
        #expect(await patternMessages.next()?.data == ["n": 3])
        #expect(await patternMessages.next()?.data == ["n": 4], "the pattern is not given the page again")
        await client.close()
        #expect(await scripted.wait(timeout: .seconds(30)) == 0, "\(scripted.output())")
    }

    @Test("a subscribe never answered is sent 6 times, then throws timeout and sends unsubscribe, since an earlier attempt may still succeed on the node (a scripted node)")
    func unsubscribeOnGivingUp() async throws {
        let scripted = try await Self.scriptedNode("subscribes-unanswered")
        defer { scripted.process.signal(SIGKILL) }
        var configuration = Self.configuration()
        configuration.requestTimeout = .milliseconds(100)
        configuration.minimumReconnectDelay = .milliseconds(10)
        let client = try ChorusClient(url: "ws://127.0.0.1:\(scripted.port)/ws", token: "any", configuration: configuration)
        await #expect(throws: ChorusError.timeout) { try await client.subscribe("chat.slow") }
        try #require(await eventually { scripted.process.output().contains("unsubscribe chat.slow") }, "\(scripted.process.output())")
        #expect(scripted.process.output().contains("subscribes 6\n"))
        #expect(!scripted.process.output().contains("subscribes 7"))
        await client.close()
        #expect(await scripted.process.wait(timeout: .seconds(30)) == 0, "\(scripted.process.output())")
    }

    @Test("without reconnects the end of the connection is final: a publish waiting for its answer and later ones throw disconnected, and the subscription ends (a scripted node)")
    func finalDisconnect() async throws {
        let scripted = try await Self.scriptedNode("closes-on-publish")
        defer { scripted.process.signal(SIGKILL) }
        var configuration = Self.configuration()
        configuration.reconnects = false
        let client = try ChorusClient(url: "ws://127.0.0.1:\(scripted.port)/ws", token: "any", configuration: configuration)
        let subscription = try await client.subscribe("chat.final")
        await #expect(throws: ChorusError.disconnected) {
            try await withDeadline(.seconds(20), "the publish's answer") { try await client.publish("chat.final", "unanswered") }
        }
        let ended = try await withDeadline(.seconds(20), "the subscription's end") {
            var messages = subscription.makeAsyncIterator()
            return await messages.next() == nil
        }
        #expect(ended, "the subscription ends with the connection")
        #expect(await client.state == .disconnected)
        #expect(await scripted.process.wait(timeout: .seconds(30)) == 0, "\(scripted.process.output())")
        // Nothing listens now: a publish starts one attempt, which fails, and throws.
        await #expect(throws: ChorusError.disconnected) { try await client.publish("chat.final", "nowhere") }
        #expect(await client.queuedPublishes == 0)
        await client.close()
    }

    @Test("a node slow to authenticate (300 ms) is waited for past a ping interval of 100 ms: the first connection authenticates, none is dropped (a scripted node)")
    func slowAuthentication() async throws {
        let scripted = try await Self.scriptedNode("slow-auth")
        defer { scripted.process.signal(SIGKILL) }
        var configuration = Self.configuration()
        configuration.pingInterval = .milliseconds(100)
        let client = try ChorusClient(url: "ws://127.0.0.1:\(scripted.port)/ws", token: "any", configuration: configuration)
        try await withDeadline(.seconds(20), "the first connection") { try await client.connect() }
        await client.close()
        #expect(await scripted.process.wait(timeout: .seconds(30)) == 0, "\(scripted.process.output())")
        #expect(!scripted.process.output().contains("upgrades 2"), "\(scripted.process.output())")
    }

    @Test("close() ends the connection with a close handshake (1000), also when the client is released at once: ten in a row (a scripted node)")
    func closeHandshake() async throws {
        let scripted = try await Self.scriptedNode("close-codes")
        defer { scripted.process.signal(SIGKILL) }
        for _ in 0..<10 {
            let client = try ChorusClient(url: "ws://127.0.0.1:\(scripted.port)/ws", token: "any", configuration: Self.configuration())
            try await withDeadline(.seconds(20), "the connection") { try await client.connect() }
            await client.close()
        }
        #expect(await scripted.process.wait(timeout: .seconds(30)) == 0, "\(scripted.process.output())")
        #expect(scripted.process.output().contains("close codes 1000 1000 1000 1000 1000 1000 1000 1000 1000 1000"), "\(scripted.process.output())")
    }

    @Test("a join storm past a subscription's presence buffer: the oldest events are dropped and the subscriber hears resync after them, to read the list again (a scripted node)")
    func presenceOverflowResyncs() async throws {
        let scripted = try await Self.scriptedNode("presence-storm")
        defer { scripted.process.signal(SIGKILL) }
        let client = try ChorusClient(url: "ws://127.0.0.1:\(scripted.port)/ws", token: "any", configuration: Self.configuration())
        let room = try await client.join("rooms.storm")
        // The message after the batch: the client has handled the batch, and nothing read its
        // events meanwhile (a consumer on another thread would keep up with it).
        var messages = room.makeAsyncIterator()
        #expect(await messages.next()?.data == ["n": 1])
        let presence = room.presenceEvents
        let events = try await withDeadline(.seconds(20), "resync after the storm") {
            var events: [ChorusSDK.PresenceEvent] = []
            for await event in presence {
                events.append(event)
                if event.kind == .resync { break }
            }
            return events
        }
        #expect(events.last?.kind == .resync, "\(events.count) events, none resync")
        #expect(events.dropLast().allSatisfy { $0.kind == .join })
        #expect(events.count <= 1000, "the buffer holds 1,000 events")
        #expect(events.dropLast().last?.member?.userId == "u1499", "the newest join is kept")
        await client.close()
        #expect(await scripted.process.wait(timeout: .seconds(30)) == 0, "\(scripted.process.output())")
    }

    @Test("a publish that crosses the token's expiry (auth_expired, then 401 for it) is sent again with the fresh token and succeeds, with the same messageId (a scripted node)")
    func publishCrossingExpiry() async throws {
        let scripted = try await Self.scriptedNode("expiry-crossing")
        defer { scripted.process.signal(SIGKILL) }
        let tokens = TokenGate(user: "bob")
        let client = try ChorusClient(url: "ws://127.0.0.1:\(scripted.port)/ws", configuration: Self.configuration(), getToken: tokens.provider)
        let receipt = try await client.publish("chat.expiry", "across", messageId: "m-1")
        #expect(receipt.acknowledged)
        #expect(receipt.messageId == "m-1")
        #expect(await tokens.calls == 2, "a fresh token for the renewal")
        let output = scripted.process.output()
        #expect(output.contains("publishes 1 m-1\n") && output.contains("publishes 2 m-1\n"), "\(output)")
        await client.close()
        #expect(await scripted.process.wait(timeout: .seconds(30)) == 0, "\(scripted.process.output())")
    }

    @Test("a catch-up after a late renewal that the node refuses is a recoveryFailed, and the subscription goes on live, not ended (a scripted node)")
    func catchUpRefused() async throws {
        let scripted = try await Self.scriptedNode("catch-up-refused")
        defer { scripted.process.signal(SIGKILL) }
        let tokens = TokenGate(user: "bob")
        let client = try ChorusClient(url: "ws://127.0.0.1:\(scripted.port)/ws", configuration: Self.configuration(), getToken: tokens.provider)
        let events = await client.events()
        let subscription = try await client.subscribe("rooms.a")
        let failure = await first(in: events) { event in
            switch event {
            case .recoveryFailed, .subscriptionEnded: true
            default: false
            }
        }
        #expect(failure == .recoveryFailed(topic: "rooms.a", since: StreamPosition(offset: 6, epoch: "E")))
        var messages = subscription.makeAsyncIterator()
        #expect(await messages.next()?.position?.offset == 6)
        #expect(await messages.next()?.position?.offset == 9, "live again")
        #expect(scripted.process.output().contains("catch-up since 6"))
        await client.close()
        #expect(await scripted.process.wait(timeout: .seconds(30)) == 0, "\(scripted.process.output())")
    }

    @Test("a catch-up answered 401 (the fresh token expired too before the node read it) is sent again after the next renewal from the same position: every message once, no recoveryFailed (a scripted node)")
    func catchUpExpired() async throws {
        let scripted = try await Self.scriptedNode("catch-up-expired")
        defer { scripted.process.signal(SIGKILL) }
        let tokens = TokenGate(user: "bob")
        let client = try ChorusClient(url: "ws://127.0.0.1:\(scripted.port)/ws", configuration: Self.configuration(), getToken: tokens.provider)
        let events = await client.events()
        let subscription = try await client.subscribe("rooms.a")
        let outcome = await first(in: events) { event in
            switch event {
            case .recoveryFailed, .subscriptionEnded, .subscribed(_, _, true, _): true
            default: false
            }
        }
        #expect(outcome == .subscribed(topic: "rooms.a", resubscribed: false, recovered: true, position: StreamPosition(offset: 8, epoch: "E")),
            "the catch-up is on the same connection: no reconnect")
        var messages = subscription.makeAsyncIterator()
        var offsets: [Int?] = []
        for _ in 0..<4 { offsets.append(await messages.next()?.position?.offset) }
        #expect(offsets == [6, 7, 8, 9])
        #expect(scripted.process.output().components(separatedBy: "catch-up since 6\n").count == 3, "\(scripted.process.output())")
        #expect(await tokens.calls == 3, "two renewals")
        await client.close()
        #expect(await scripted.process.wait(timeout: .seconds(30)) == 0, "\(scripted.process.output())")
    }

    @Test("subscribed says resubscribed only for a reconnect's first confirmation, also one the node confirms after a 409 retry; a subscribe sent again on the same connection (a join of the live topic, new member data, the last join ending) says false (a scripted node)")
    func resubscribedOnlyAfterReconnect() async throws {
        let scripted = try await Self.scriptedNode("resubscribed")
        defer { scripted.process.signal(SIGKILL) }
        var configuration = Self.configuration()
        configuration.minimumReconnectDelay = .milliseconds(50)
        let client = try ChorusClient(url: "ws://127.0.0.1:\(scripted.port)/ws", token: "fixed", configuration: configuration)
        var events = await client.events().makeAsyncIterator()
        func resubscribed() async -> Bool? {
            while let event = await events.next() {
                if case .subscribed(_, let resubscribed, _, _) = event { return resubscribed }
            }
            return nil
        }
        let plain = try await client.subscribe("rooms.a")
        #expect(await resubscribed() == false, "the first subscribe")
        // Answered, then the node closes the connection.
        let first = try await client.join("rooms.a", data: ["n": 1])
        #expect(await resubscribed() == false, "a join of the live topic")
        #expect(await resubscribed() == true, "the reconnect's, confirmed after a 409")
        let second = try await client.join("rooms.a", data: ["n": 2])
        #expect(await resubscribed() == false, "new member data")
        second.cancel()
        #expect(await resubscribed() == false, "the earlier join's data back")
        first.cancel()
        #expect(await resubscribed() == false, "the last join ending")
        _ = plain
        await client.close()
        #expect(await scripted.process.wait(timeout: .seconds(30)) == 0, "\(scripted.process.output())")
        let output = scripted.process.output()
        #expect(output.contains("subscribe 2 1 True True\n") && output.contains("subscribe 2 2 True True\n"), "\(output)")
    }

    @Test("gap frames (the node's Redis link is back after an outage) are ClientEvent.gap, with the topic or pattern as subscribed or nil for messages to the user; positions and delivery carry on (a scripted node)")
    func gapEvents() async throws {
        let scripted = try await Self.scriptedNode("gap")
        defer { scripted.process.signal(SIGKILL) }
        let client = try ChorusClient(url: "ws://127.0.0.1:\(scripted.port)/ws", token: "any", configuration: Self.configuration())
        let events = await client.events()
        let topic = try await client.subscribe("rooms.a")
        let pattern = try await client.subscribe("rooms.*")
        let gaps = try await withDeadline(.seconds(20), "four gap events") {
            var gaps: [ClientEvent] = []
            for await event in events {
                switch event {
                case .gap, .recoveryFailed, .subscriptionEnded: gaps.append(event)
                default: break
                }
                if gaps.count == 4 { break }
            }
            return gaps
        }
        #expect(gaps == [.gap(topic: "rooms.a"), .gap(topic: "rooms.*"), .gap(topic: nil), .gap(topic: "rooms.gone")])
        // Message 6 came before the gaps, and the gaps moved nothing.
        #expect(await client.position(of: "rooms.a") == StreamPosition(offset: 6, epoch: "E"))
        try await client.ping()  // the node sends message 7 before its pong
        var messages = topic.makeAsyncIterator()
        #expect(await messages.next()?.position?.offset == 6)
        #expect(await messages.next()?.position?.offset == 7, "live after the gap")
        _ = pattern
        await client.close()
        #expect(await scripted.process.wait(timeout: .seconds(30)) == 0, "\(scripted.process.output())")
    }

    @Test("a join of a live topic dropped past the node's message rate (429 with retryAfter) is sent again and returns (a scripted node)")
    func joinOfLiveTopicRetried() async throws {
        let scripted = try await Self.scriptedNode("join-refused")
        defer { scripted.process.signal(SIGKILL) }
        let client = try ChorusClient(url: "ws://127.0.0.1:\(scripted.port)/ws", token: "any", configuration: Self.configuration())
        let plain = try await client.subscribe("rooms.a")
        let membership = try await withDeadline(.seconds(20), "the join, sent again after the 429") {
            try await client.join("rooms.a", data: ["status": "here"])
        }
        _ = (plain, membership)
        await client.close()
        #expect(await scripted.process.wait(timeout: .seconds(30)) == 0, "\(scripted.process.output())")
        #expect(scripted.process.output().contains("subscribe 3 True"), "the join went again: \(scripted.process.output())")
    }

    @Test("a token the provider hands out ahead of the expiry that the node refuses leaves the connection as it is: an error event, still connected")
    func refusedRenewalAhead() async throws {
        try await withNodeProcess(["JWT_LEEWAY": "0"]) { node in
            let minter = TokenMinter(secret: Array(Cluster.secret.utf8))
            let calls = Mutex(0)
            // The connection's token lives 9-10 s; the one asked for ahead of its end is refused,
            // and any later one (a loaded machine may reach the expiry first) is good.
            let provider: @Sendable () async throws -> String = {
                let call = calls.withLock { count in
                    count += 1
                    return count
                }
                return call == 2 ? "not-a-token" : minter.mint(subject: "ola", ttl: .seconds(call == 1 ? 10 : 3600))
            }
            let client = try ChorusClient(url: Self.url(node), configuration: Self.configuration(), getToken: provider)
            let events = await client.events()
            let subscription = try await client.subscribe("rooms.ahead")
            let refused = await first(in: events) { event in
                if case .error(.authenticationFailed) = event { return true }
                return event == .tokenExpired
            }
            guard case .error(.authenticationFailed(let code, _))? = refused else {
                throw TestFailure("expected the refused renewal, got \(String(describing: refused))")
            }
            #expect(code == 401)
            #expect(await client.state == .connected(userId: "ola"))
            try await client.publish("rooms.ahead", "still connected")
            var messages = subscription.makeAsyncIterator()
            #expect(await messages.next()?.data == "still connected")
            await client.close()
        }
    }

    @Test("a join of a subscribed topic while the token is renewed is sent once the fresh token is accepted: the call returns and the user is a member")
    func joinDuringRenewal() async throws {
        try await withNodeProcess(["JWT_LEEWAY": "0"]) { node in
            let tokens = TokenGate(user: "gina", lifetimes: [.seconds(2)])
            let client = try ChorusClient(url: Self.url(node), configuration: Self.renewingOnExpiry(), getToken: tokens.provider)
            let events = await client.events()
            let plain = try await client.subscribe("rooms.renewal")
            await tokens.close()  // the renewal's provider call waits until open()
            #expect(await first(in: events, where: { $0 == .tokenExpired }) != nil)
            let joining = Task { try await client.join("rooms.renewal", data: ["role": "late"]) }
            await tokens.waitForCalls(2)
            await tokens.open()
            let room = try await withDeadline(.seconds(20), "the join's answer") { try await joining.value }
            let members = try await client.members("rooms.renewal")
            #expect(members.members.map(\.userId) == ["gina"], "joined after the renewal")
            _ = (plain, room)
            await client.close()
        }
    }

    @Test("a client that fails (its token refused on reconnect) fails a subscribe of a topic it had, made while it waited to reconnect, instead of leaving it waiting (a scripted node)")
    func failureEndsWaitingSubscribe() async throws {
        let scripted = try await Self.scriptedNode("refuses-reconnect")
        defer { scripted.process.signal(SIGKILL) }
        var configuration = Self.configuration()
        configuration.minimumReconnectDelay = .seconds(1)
        configuration.random = { 0.999 }  // the whole delay: the second subscribe comes before the attempt
        let client = try ChorusClient(url: "ws://127.0.0.1:\(scripted.port)/ws", token: "fixed", configuration: configuration)
        let states = await client.states()
        let first = try await client.subscribe("chat.had")
        for await state in states {
            if case .reconnecting(_, let delay) = state, delay > .zero { break }
        }
        await #expect {
            _ = try await withDeadline(.seconds(20), "the subscribe's answer") { try await client.subscribe("chat.had") }
        } throws: { error in
            if case .authenticationFailed(401, _) = error as? ChorusError { return true }
            return false
        }
        if case .failed = await client.state {} else { Issue.record("failed, not \(await client.state)") }
        _ = first
        await client.close()
        #expect(await scripted.process.wait(timeout: .seconds(30)) == 0, "\(scripted.process.output())")
    }

    @Test("a publish or join over the node's maxMessageSize (from auth_success) throws messageTooLarge (413) unsent, at once; the connection stays and the next publish goes (a scripted node)")
    func messageOverAnnouncedLimit() async throws {
        let scripted = try await Self.scriptedNode("max-message-size")
        defer { scripted.process.signal(SIGKILL) }
        let client = try ChorusClient(url: "ws://127.0.0.1:\(scripted.port)/ws", token: "any", configuration: Self.configuration())
        try await client.connect()
        await #expect {
            try await withDeadline(.seconds(20), "the big publish") { try await client.publish("rooms.big", .string(String(repeating: "x", count: 400))) }
        } throws: { error in
            guard case .messageTooLarge(let size, 300)? = error as? ChorusError else { return false }
            return size > 400 && (error as? ChorusError)?.code == 413
        }
        // A join over the limit throws why, whether the topic is new or live already.
        let live = try await client.subscribe("rooms.live")
        for topic in ["rooms.big", "rooms.live"] {
            await #expect {
                try await withDeadline(.seconds(20), "the big join") { try await client.join(topic, data: ["bio": .string(String(repeating: "x", count: 400))]) }
            } throws: { error in
                if case .messageTooLarge(_, 300)? = error as? ChorusError { return true }
                return false
            }
        }
        _ = live
        let receipt = try await withDeadline(.seconds(20), "the small publish") { try await client.publish("rooms.big", "hi") }
        #expect(receipt.acknowledged)
        #expect(await client.state == .connected(userId: "bob"))
        await client.close()
        #expect(await scripted.process.wait(timeout: .seconds(30)) == 0, "\(scripted.process.output())")
        let output = scripted.process.output()
        #expect(output.contains("publish 1 ") && !output.contains("publish 2"), "only the small publish was sent: \(output)")
        #expect(!output.contains("connections 2"), "no reconnect: \(output)")
    }

    @Test("configuration.maxMessageSize lowers the limit a node announces: a publish over it throws messageTooLarge with that limit, unsent (a scripted node)")
    func configuredLimitLowersAnnounced() async throws {
        let scripted = try await Self.scriptedNode("max-message-size")
        defer { scripted.process.signal(SIGKILL) }
        var configuration = Self.configuration()
        configuration.maxMessageSize = 150
        let client = try ChorusClient(url: "ws://127.0.0.1:\(scripted.port)/ws", token: "any", configuration: configuration)
        await #expect {
            try await withDeadline(.seconds(20), "the publish") { try await client.publish("rooms.big", .string(String(repeating: "x", count: 200))) }
        } throws: { error in
            if case .messageTooLarge(_, 150)? = error as? ChorusError { return true }
            return false
        }
        try await withDeadline(.seconds(20), "the small publish") { _ = try await client.publish("rooms.big", "hi") }
        await client.close()
        #expect(await scripted.process.wait(timeout: .seconds(30)) == 0, "\(scripted.process.output())")
        #expect(!scripted.process.output().contains("publish 2"), "\(scripted.process.output())")
    }

    @Test("a close with 1009 (a frame over a limit the client did not know) throws messageTooLarge from the largest unacknowledged publish instead of sending it again; the client reconnects once and goes on (a scripted node)")
    func closeTooBigDoesNotLoop() async throws {
        let scripted = try await Self.scriptedNode("closes-too-big")
        defer { scripted.process.signal(SIGKILL) }
        var configuration = Self.configuration()
        configuration.minimumReconnectDelay = .milliseconds(10)
        let client = try ChorusClient(url: "ws://127.0.0.1:\(scripted.port)/ws", token: "any", configuration: configuration)
        try await client.connect()
        await #expect {
            try await withDeadline(.seconds(20), "the big publish") { try await client.publish("rooms.big", .string(String(repeating: "x", count: 1_000))) }
        } throws: { error in
            guard case .messageTooLarge(let size, 1_048_576)? = error as? ChorusError else { return false }
            return size > 1_000
        }
        let receipt = try await withDeadline(.seconds(20), "the small publish") { try await client.publish("rooms.big", "hi") }
        #expect(receipt.acknowledged)
        await client.close()
        #expect(await scripted.process.wait(timeout: .seconds(30)) == 0, "\(scripted.process.output())")
        let output = scripted.process.output()
        #expect(output.components(separatedBy: "closed for").count == 2, "closed once: \(output)")
        #expect(!output.contains("connections 3"), "\(output)")
    }

    /// `scripts/lib/scripted_node.py` playing `scenario`, and the port it listens on.
    private static func scriptedNode(_ scenario: String) async throws -> (process: ChildProcess, port: Int) {
        let python = try Executable.find("python3", hint: "install Python 3 and `pip install websockets`")
        let script = Executable.packageRoot.appendingPathComponent("scripts/lib/scripted_node.py").path
        let log = try TestLogs.folder("scripted-node-\(scenario)").appendingPathComponent("node.log")
        let process = try await ChildProcess.spawn(python, [script, scenario], log: log)
        try #require(await eventually { announcedPort(process.output()) != nil || !process.isRunning }, "\(process.output())")
        let port = try #require(announcedPort(process.output()), "\(process.output())")
        return (process, port)
    }

    /// The port of a finished `port N` line: the output may end in the middle of that line
    /// (it came as "port " once, and the test read no number).
    private static func announcedPort(_ output: String) -> Int? {
        output.split(separator: "\n", omittingEmptySubsequences: false).dropLast()
            .first { $0.hasPrefix("port ") }.flatMap { Int($0.dropFirst(5)) }
    }

    @Test("subscribes the node refuses for its message rate (429 with retryAfter) are sent again until they are answered: every subscription goes live")
    func subscribesPastTheRate() async throws {
        try await withNodeProcess(["WEBSOCKET_MAX_MESSAGES_PER_SECOND": "5"]) { node in
            var configuration = Self.configuration()
            // The refusals are answered, so no timeout is needed to find them; a short one only
            // spends the retries of a subscribe a loaded machine answers late (failed a full run).
            configuration.requestTimeout = .seconds(10)
            configuration.minimumReconnectDelay = .milliseconds(100)
            let client = try ChorusClient(url: Self.url(node), token: node.token("many"), configuration: configuration)
            // Twelve at once: the node lets five (a second's worth) through, then five a second.
            let subscriptions = try await withThrowingTaskGroup(of: Subscription.self) { group in
                for n in 1...12 { group.addTask { try await client.subscribe("rooms.r\(n)") } }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(subscriptions.count == 12)
            // Published with the API key, which the message rate does not limit.
            for n in 1...12 {
                let published = try await HTTP.post(
                    "\(node.baseURL)/api/publish", json: ["topic": "rooms.r\(n)", "data": ["n": n]],
                    headers: ["X-API-Key": Cluster.apiKey])
                #expect(published.status == 202)
            }
            for subscription in subscriptions {
                var messages = subscription.makeAsyncIterator()
                #expect(await messages.next() != nil, "live")
            }
            await client.close()
        }
    }

    @Test("a message the application addresses to a user reaches userMessages() on each of that user's clients, unchanged, and no one else's")
    func messagesAddressedToUser() async throws {
        try await withNodeProcess { node in
            let phone = try ChorusClient(url: Self.url(node), token: node.token("alice"), configuration: Self.configuration())
            let laptop = try ChorusClient(url: Self.url(node), token: node.token("alice"), configuration: Self.configuration())
            let bob = try ChorusClient(url: Self.url(node), token: node.token("bob"), configuration: Self.configuration())
            let streams = [await phone.userMessages(), await laptop.userMessages(), await bob.userMessages()]
            for client in [phone, laptop, bob] { try await client.connect() }
            let body = #"{"userId":"alice","eventType":"invite.received","data":{"room":"chat.r1","big":12345678901234567890}}"#
            let published = try await HTTP.post(
                "\(node.baseURL)/api/publish", body: Data(body.utf8), headers: ["X-API-Key": Cluster.apiKey])
            #expect(published.status == 202)
            // A marker to bob after alice's message: bob's connection gets it in order, so
            // a stray invite would come first.
            let marker = #"{"userId":"bob","data":"marker"}"#
            #expect(try await HTTP.post("\(node.baseURL)/api/publish", body: Data(marker.utf8), headers: ["X-API-Key": Cluster.apiKey]).status == 202)
            for stream in streams[0..<2] {
                var messages = stream.makeAsyncIterator()
                let message = try #require(await messages.next())
                #expect(message.topic == "")
                #expect(message.eventType == "invite.received")
                #expect(message.rawData == #"{"room":"chat.r1","big":12345678901234567890}"#)
                #expect(try message.decode(Invite.self) == Invite(room: "chat.r1", big: 12_345_678_901_234_567_890))
                #expect(message.senderId == "server")
                #expect(message.position == nil)
            }
            var bobMessages = streams[2].makeAsyncIterator()
            #expect(await bobMessages.next()?.data == "marker", "bob gets his own message and not alice's")
            for client in [phone, laptop, bob] { await client.close() }
        }
    }

    private struct Invite: Codable, Equatable {
        var room: String
        var big: UInt64
    }

    private struct Price: Codable, Equatable, Sendable {
        var amount: Decimal
        var id: UInt64
    }

    @Test("an Encodable published through the SDK arrives with every digit: decode(_:) and rawData keep what JSONValue cannot")
    func digitsSurvive() async throws {
        try await withNodeProcess { node in
            let client = try ChorusClient(url: Self.url(node), token: node.token("alice"), configuration: Self.configuration())
            let subscription = try await client.subscribe("chat.prices")
            let sent = Price(amount: Decimal(string: "12345678901234567890.123456789")!, id: .max)
            try await client.publish("chat.prices", encoding: sent)
            try await client.publish("chat.prices", ["text": "é\u{1F600}", "n": 1.5])
            var messages = subscription.makeAsyncIterator()
            let first = try #require(await messages.next())
            #expect(try first.decode(Price.self) == sent)
            #expect(first.rawData.contains("12345678901234567890.123456789"))
            #expect(first.rawData.contains("18446744073709551615"))
            #expect(try #require(await messages.next()).data == ["text": "é\u{1F600}", "n": 1.5])
            // JSON has no NaN: refused before anything is sent, in data and in metadata.
            await #expect(throws: EncodingError.self) { try await client.publish("chat.prices", ["price": .double(.nan)]) }
            await #expect(throws: EncodingError.self) {
                try await client.publish("chat.prices", ["ok": true], metadata: ["price": .double(.infinity)])
            }
            try await client.publish("chat.prices", ["after": true])
            #expect(try #require(await messages.next()).data == ["after": true], "nothing was sent for the refused ones")
            #expect(await client.queuedPublishes == 0)
            await client.close()
        }
    }

    @Test("on a topic without history, a messageId the node delivers again (a publish sent again, a retried post) reaches each subscription once")
    func repeatsWithoutHistory() async throws {
        try await withNodeProcess(["HISTORY_SIZE": "0"]) { node in
            let alice = try ChorusClient(url: Self.url(node), token: node.token("alice"), configuration: Self.configuration())
            let exact = try await alice.subscribe("chat.plain")
            let pattern = try await alice.subscribe("chat.*")
            for key in ["k1", "k1", "k2", "k1"] {
                let receipt = try await alice.publish("chat.plain", ["key": .string(key)], messageId: key)
                #expect(!receipt.duplicate, "the node has no history to compare with")
            }
            try await alice.publish("chat.plain", ["key": "last"])
            for subscription in [exact, pattern] {
                var messages = subscription.makeAsyncIterator()
                var keys: [JSONValue] = []
                for _ in 0..<3 { keys.append(try #require(await messages.next()).data) }
                #expect(keys == [["key": "k1"], ["key": "k2"], ["key": "last"]])
            }
            await alice.close()
        }
    }

    @Test("a subscription whose consumer falls behind its buffer ends with bufferOverflow after the messages it holds")
    func bufferOverflow() async throws {
        try await withNodeProcess { node in
            var configuration = Self.configuration()
            configuration.messageBufferLimit = 5
            let client = try ChorusClient(url: Self.url(node), token: node.token("slow"), configuration: configuration)
            let events = await client.events()
            let subscription = try await client.subscribe("chat.flood")
            // Nobody iterates `subscription` while 20 messages arrive.
            for n in 1...20 { try await client.publish("chat.flood", ["n": .integer(Int64(n))]) }
            var ended: ChorusError?
            for await event in events {
                if case .subscriptionEnded(let topic, let error) = event, topic == "chat.flood" {
                    ended = error
                    break
                }
            }
            #expect(ended == .bufferOverflow(limit: 5))
            var received: [JSONValue] = []
            for await message in subscription { received.append(message.data) }
            #expect(received == (1...5).map { ["n": .integer(Int64($0))] }, "the first five, in order, then the end")
            await client.close()
        }
    }

    @Test("a publish is acknowledged by the node's published reply with its messageId, and a repeated messageId is a duplicate")
    func acknowledgedPublish() async throws {
        try await withNodeProcess { node in
            let client = try ChorusClient(url: Self.url(node), token: node.token("alice"))
            let receipt = try await client.publish("chat.acks", ["n": 1], messageId: "key-1")
            #expect(receipt.acknowledged)
            #expect(receipt.messageId == "key-1")
            #expect(!receipt.duplicate)
            let again = try await client.publish("chat.acks", ["n": 1], messageId: "key-1")
            #expect(again.duplicate)
            await client.close()
        }
    }

    @Test("a wildcard subscription receives every topic it covers and nothing else")
    func wildcard() async throws {
        try await withNodeProcess { node in
            let client = try ChorusClient(url: Self.url(node), token: node.token("bob"), configuration: Self.configuration())
            let subscription = try await client.subscribe("chat.*")
            for topic in ["chat.lobby", "chat.lobby.typing", "news.today", "chat.random"] {
                try await client.publish(topic, ["topic": .string(topic)])
            }
            var messages = subscription.makeAsyncIterator()
            let firstCovered = await messages.next()
            #expect(firstCovered?.topic == "chat.lobby")
            let secondCovered = await messages.next()
            #expect(secondCovered?.topic == "chat.random", "chat.lobby.typing and news.today are not covered")
            await client.close()
        }
    }

    @Test("another user's private topic is refused with the node's 403 as a typed error, for subscribe and publish")
    func forbiddenTopic() async throws {
        try await withNodeProcess { node in
            let client = try ChorusClient(url: Self.url(node), token: node.token("alice"), configuration: Self.configuration())
            do {
                _ = try await client.subscribe("messages.user.bob")
                Issue.record("subscribing to bob's private topic succeeded")
            } catch let error as ChorusError {
                guard case .server(let code, let message, let details) = error else {
                    Issue.record("expected a server error, got \(error)")
                    return
                }
                #expect(code == 403)
                #expect(message.contains("messages.user.bob"))
                #expect(details?["topic"] == "messages.user.bob")
            }
            await #expect {
                try await client.publish("messages.user.bob", ["text": "hi"])
            } throws: { error in
                (error as? ChorusError)?.code == 403
            }
            // The connection is still usable.
            let own = try await client.subscribe("messages.user.alice")
            #expect(own.topic == "messages.user.alice")
            await client.close()
        }
    }

    @Test("a typing the token may not publish is refused (403) without ending the subscription: the topic's messages keep arriving")
    func typingRefusedKeepsSubscription() async throws {
        try await withNodeProcess { node in
            let grants = Grants(subscribe: [try TopicPattern("rooms.**")], publish: [try TopicPattern("rooms.chat")])
            let token = TokenMinter(secret: Array(Cluster.secret.utf8)).mint(subject: "kim", ttl: .seconds(3600), grants: grants)
            let client = try ChorusClient(url: Self.url(node), token: token, configuration: Self.configuration())
            let events = await client.events()
            let subscription = try await client.subscribe("rooms.announce")
            await client.typing("rooms.announce")
            let answer = await first(in: events) { event in
                switch event {
                case .error, .subscriptionEnded: true
                default: false
                }
            }
            guard case .error(let error)? = answer else { throw TestFailure("expected the typing's 403, got \(String(describing: answer))") }
            #expect(error.code == 403)
            let publisher = try ChorusClient(url: Self.url(node), token: node.token("lee"), configuration: Self.configuration())
            try await publisher.publish("rooms.announce", "still subscribed")
            var messages = subscription.makeAsyncIterator()
            #expect(await messages.next()?.data == "still subscribed")
            await publisher.close()
            await client.close()
        }
    }

    @Test("joining again with other data updates the member (one update, no leave); when that join ends the earlier data comes back")
    func presenceUpdateByJoin() async throws {
        try await withNodeProcess { node in
            let watcher = try ChorusClient(url: Self.url(node), token: node.token("wes"), configuration: Self.configuration())
            let watching = try await watcher.join("rooms.status", data: ["status": "watching"])
            let client = try ChorusClient(url: Self.url(node), token: node.token("zoe"), configuration: Self.configuration())
            var events = watching.presenceEvents.makeAsyncIterator()
            func next() async -> (ChorusSDK.PresenceEvent.Kind, ChorusSDK.JSONValue?)? {
                while let event = await events.next() {
                    if event.member?.userId == "zoe" { return (event.kind, event.member?.data?["status"]) }
                }
                return nil
            }
            let online = try await client.join("rooms.status", data: ["status": "online"])
            #expect(await next()! == (.join, "online"))
            let away = try await client.join("rooms.status", data: ["status": "away"])
            #expect(await next()! == (.update, "away"))
            away.cancel()
            #expect(await next()! == (.update, "online"), "the earlier join's data, without a leave")
            _ = online
            await client.close()
            await watcher.close()
        }
    }

    @Test("when the token expires the client gets a fresh one from its provider and keeps receiving")
    func tokenRefreshOnExpiry() async throws {
        try await withNodeProcess(["JWT_LEEWAY": "0"]) { node in
            let tokens = TokenGate(user: "carol", lifetimes: [.seconds(2)])
            let client = try ChorusClient(url: Self.url(node), configuration: Self.renewingOnExpiry(), getToken: tokens.provider)
            let events = await client.events()
            let subscription = try await client.subscribe("news")
            #expect(await first(in: events, where: { $0 == .tokenExpired }) != nil)
            #expect(await first(in: events, where: { $0 == .reauthenticated(userId: "carol") }) != nil)
            #expect(await tokens.calls == 2)
            let publisher = try ChorusClient(url: Self.url(node), token: node.token("dave"), configuration: Self.configuration())
            try await publisher.publish("news", "after the refresh")
            var messages = subscription.makeAsyncIterator()
            let afterRefresh = await messages.next()
            #expect(afterRefresh?.data == "after the refresh")
            #expect(await client.state == .connected(userId: "carol"), "the same connection, authenticated again")
            await publisher.close()
            await client.close()
        }
    }

    @Test("a provider that fails after the token expired is asked again on the same connection, and delivery resumes without waiting for the node's 4001 close")
    func providerFailsAfterExpiry() async throws {
        try await withNodeProcess(["JWT_LEEWAY": "0", "JWT_RENEWAL_GRACE": "600000"]) { node in
            let tokens = TokenGate(user: "carol", lifetimes: [.seconds(2)], failing: [2, 3])
            let client = try ChorusClient(url: Self.url(node), configuration: Self.renewingOnExpiry(), getToken: tokens.provider)
            let events = await client.events()
            let subscription = try await client.subscribe("news")
            let seen = await first(in: events) { event in
                switch event {
                case .reauthenticated, .subscribed(_, true, _, _): true
                default: false
                }
            }
            #expect(seen == .reauthenticated(userId: "carol"), "the same connection, not a reconnect")
            #expect(await tokens.calls == 4, "two failures, then a token")
            let publisher = try ChorusClient(url: Self.url(node), token: node.token("dave"), configuration: Self.configuration())
            try await publisher.publish("news", "after the retries")
            var messages = subscription.makeAsyncIterator()
            #expect(await messages.next()?.data == "after the retries")
            await publisher.close()
            await client.close()
        }
    }

    @Test("a provider that fails before the first connection is asked again after the backoff, as a node that is down would be: the client connects")
    func providerFailsFirst() async throws {
        try await withNodeProcess { node in
            var configuration = Self.configuration()
            configuration.minimumReconnectDelay = .milliseconds(50)
            let tokens = TokenGate(user: "erin", failing: [1, 2])
            let client = try ChorusClient(url: Self.url(node), configuration: configuration, getToken: tokens.provider)
            try await client.connect()
            #expect(await client.state == .connected(userId: "erin"))
            #expect(await tokens.calls == 3)
            await client.close()
        }
    }

    @Test("an upgrade refused with 404 (a wrong path) fails the client with upgradeRefused, once, instead of retrying forever without a word")
    func wrongPath() async throws {
        try await withNodeProcess { node in
            let client = try ChorusClient(
                url: "ws://127.0.0.1:\(node.port)/wrong", token: node.token("alice"), configuration: Self.configuration())
            do {
                try await client.connect()
                Issue.record("connected to /wrong")
            } catch let ChorusError.upgradeRefused(status, body) {
                #expect(status == 404)
                #expect(body.contains("/ws"), "\(body)")
            }
            guard case .failed(.upgradeRefused(404, _)) = await client.state else {
                throw TestFailure("expected failed(upgradeRefused(404)), got \(await client.state)")
            }
            await client.close()
        }
    }

    @Test("with a token provider the client renews ahead of the token's expiry: no tokenExpired, and every message published across the expiry arrives in order")
    func renewsAhead() async throws {
        try await withNodeProcess(["JWT_LEEWAY": "0"]) { node in
            // Lives 9-10 s (whole seconds): renewed half of that ahead, about 5 s, time enough
            // for the provider and the `auth` on a loaded machine (a fifth, 2 s, was not).
            let tokens = TokenGate(user: "hana", lifetimes: [.seconds(10)])
            let client = try ChorusClient(url: Self.url(node), configuration: Self.configuration(), getToken: tokens.provider)
            let events = await client.events()
            let subscription = try await client.subscribe("news.ahead")
            let publisher = try ChorusClient(url: Self.url(node), token: node.token("ivan"), configuration: Self.configuration())
            let expired = ContinuousClock.now + .seconds(11)
            let publishing = Task {
                var sent = 0
                while ContinuousClock.now < expired {
                    _ = try await publisher.publish("news.ahead", .integer(Int64(sent)))
                    sent += 1
                    try await Task.sleep(for: .milliseconds(100))
                }
                return sent
            }
            let renewal = await first(in: events, where: { $0 == .tokenExpired || $0 == .reauthenticated(userId: "hana") })
            #expect(renewal == .reauthenticated(userId: "hana"), "renewed before the token expired")
            let sent = try await withDeadline(.seconds(60), "the publishes") { try await publishing.value }
            var received: [String] = []
            for await message in subscription {
                received.append(message.data.jsonText)
                if received.count == sent { break }
            }
            #expect(received == (0..<sent).map(String.init))
            #expect(await tokens.calls == 2, "asked for the connection and once ahead of the expiry")
            #expect(await client.state == .connected(userId: "hana"))
            await publisher.close()
            await client.close()
        }
    }

    @Test("after a token renewed late (auth_expired), the messages published meanwhile still arrive, in order: the client asks for them with since")
    func catchUpAfterLateRenewal() async throws {
        try await withNodeProcess(["JWT_LEEWAY": "0"]) { node in
            let tokens = TokenGate(user: "mia", lifetimes: [.seconds(2)])
            let client = try ChorusClient(url: Self.url(node), configuration: Self.renewingOnExpiry(), getToken: tokens.provider)
            let events = await client.events()
            let subscription = try await client.subscribe("rooms.late")
            let publisher = try ChorusClient(url: Self.url(node), token: node.token("noa"), configuration: Self.configuration())
            try await publisher.publish("rooms.late", "before")
            await tokens.close()  // the renewal's provider call waits until open()
            #expect(await first(in: events, where: { $0 == .tokenExpired }) != nil)
            await tokens.waitForCalls(2)
            for text in ["during 1", "during 2"] { try await publisher.publish("rooms.late", .string(text)) }
            await tokens.open()
            #expect(await first(in: events, where: { $0 == .reauthenticated(userId: "mia") }) != nil)
            try await publisher.publish("rooms.late", "after")
            let received = try await withDeadline(.seconds(20), "the four messages") {
                var received: [String] = []
                for await message in subscription {
                    received.append(message.data.stringValue ?? "")
                    if received.count == 4 { break }
                }
                return received
            }
            #expect(received == ["before", "during 1", "during 2", "after"])
            await publisher.close()
            await client.close()
        }
    }

    @Test("a request made while the token is being renewed waits for the fresh one instead of failing")
    func requestWaitsForFreshToken() async throws {
        try await withNodeProcess(["JWT_LEEWAY": "0"]) { node in
            let tokens = TokenGate(user: "erin", lifetimes: [.seconds(2)])
            let client = try ChorusClient(url: Self.url(node), configuration: Self.renewingOnExpiry(), getToken: tokens.provider)
            let events = await client.events()
            try await client.connect()
            await tokens.close()  // the renewal's provider call waits until open()
            #expect(await first(in: events, where: { $0 == .tokenExpired }) != nil)
            let asking = Task { try await client.members("rooms.renewal") }
            await tokens.waitForCalls(2)
            await tokens.open()
            let state = try await asking.value
            #expect(state.count == 0, "answered after the renewal, not refused with disconnected")
            #expect(await client.state == .connected(userId: "erin"))
            await client.close()
        }
    }

    @Test("a refused token with no provider stops the client without a reconnect loop")
    func refusedTokenStops() async throws {
        try await withNodeProcess { node in
            let expired = TokenMinter(secret: Array(Cluster.secret.utf8))
                .mint(subject: "eve", ttl: .seconds(60), now: Date(timeIntervalSinceNow: -3600))
            let client = try ChorusClient(url: Self.url(node), token: expired)
            let states = await client.states()
            await #expect {
                try await client.connect()
            } throws: { error in
                if case .authenticationFailed(401, _) = error as? ChorusError { return true }
                return false
            }
            var seen: [ConnectionState] = []
            for await state in states {
                seen.append(state)
                if case .failed = state { break }
            }
            #expect(Array(seen.dropLast()) == [.disconnected, .connecting], "no reconnect attempt: \(seen)")
            await client.close()
        }
    }

    @Test("publishes made before the connection is up wait in the queue and are sent once it is")
    func offlineQueue() async throws {
        try await withNodeProcess { node in
            let tokens = TokenGate(user: "frank")
            await tokens.close()
            let client = try ChorusClient(url: Self.url(node), configuration: Self.configuration(), getToken: tokens.provider)
            let watcher = try ChorusClient(url: Self.url(node), token: node.token("watcher"), configuration: Self.configuration())
            let subscription = try await watcher.subscribe("chat.queue")
            // Three publishes, queued in this order while the client waits for its first token.
            var publishes: [Task<PublishReceipt, any Error>] = []
            for n in 1...3 {
                publishes.append(Task { try await client.publish("chat.queue", ["n": .integer(Int64(n))]) })
                let queued = await eventually { await client.queuedPublishes == n }
                #expect(queued)
            }
            await tokens.waitForCalls(1)
            #expect(await client.state == .connecting)
            await tokens.open()
            var receipts: [PublishReceipt] = []
            for publish in publishes { receipts.append(try await publish.value) }
            #expect(Set(receipts.map(\.messageId)).count == 3, "each publish has its own idempotency key")
            var messages = subscription.makeAsyncIterator()
            for n in 1...3 { 
                let queued = await messages.next()
                #expect(queued?.data == ["n": .integer(Int64(n))])
            }
            await client.close()
            await watcher.close()
        }
    }

    @Test("the offline queue is bounded: one publish past the limit throws queueFull")
    func offlineQueueLimit() async throws {
        try await withNodeProcess { node in
            let tokens = TokenGate(user: "grace")
            await tokens.close()
            var configuration = Self.configuration()
            configuration.offlineQueueLimit = 2
            let client = try ChorusClient(url: Self.url(node), configuration: configuration, getToken: tokens.provider)
            let queued = (0..<2).map { n in Task { try await client.publish("chat.q", ["n": .integer(Int64(n))]) } }
            await tokens.waitForCalls(1)
            let filled = await eventually { await client.queuedPublishes == 2 }
            #expect(filled)
            await #expect(throws: ChorusError.queueFull(limit: 2)) {
                try await client.publish("chat.q", ["n": 3])
            }
            await tokens.open()
            for task in queued { _ = try await task.value }
            await client.close()
        }
    }

    @Test("cancelling the task that iterates a subscription unsubscribes on the node")
    func cancellingUnsubscribes() async throws {
        try await withNodeProcess { node in
            let client = try ChorusClient(url: Self.url(node), token: node.token("heidi"), configuration: Self.configuration())
            let subscription = try await client.subscribe("chat.cancel")
            #expect(try await Self.subscriptions(on: node) == 1)
            let iterating = Task { for await _ in subscription {} }
            iterating.cancel()
            await iterating.value
            let gone = await eventually { (try? await Self.subscriptions(on: node)) == 0 }
            #expect(gone, "the node still holds the subscription")
            #expect(await client.state == .connected(userId: "heidi"))
            await client.close()
        }
    }

    @Test("closing the client closes its connection on the node")
    func closeReleasesConnection() async throws {
        try await withNodeProcess { node in
            let client = try ChorusClient(url: Self.url(node), token: node.token("ivan"))
            try await client.connect()
            #expect(try await Self.connections(on: node) == 1)
            await client.close()
            let closed = await eventually { (try? await Self.connections(on: node)) == 0 }
            #expect(closed)
        }
    }

    @Test("close() ends userMessages(); states() and events() carry on into the next connect()")
    func closeEndsUserMessages() async throws {
        try await withNodeProcess { node in
            let client = try ChorusClient(url: Self.url(node), token: node.token("ivan"))
            let userMessages = await client.userMessages()
            let watching = Task { for await _ in userMessages {} }
            var states = await client.states().makeAsyncIterator()
            #expect(await states.next() == .disconnected)
            try await client.connect()
            await client.close()
            await Self.ended(watching)
            try await client.connect()
            var seen: [ConnectionState] = []
            while let state = await states.next() {
                seen.append(state)
                if state == .connected(userId: "ivan"), seen.contains(.disconnected) { break }
            }
            #expect(seen.last == .connected(userId: "ivan"), "the states sequence ended at close(): \(seen)")
            await client.close()
        }
    }

    /// Returns once `watcher` (a task iterating a sequence) has ended: when its sequence
    /// finished, or when the test's time limit cancels it, so a sequence that never finishes
    /// fails the test instead of hanging the run.
    private static func ended(_ watcher: Task<Void, Never>) async {
        await withTaskCancellationHandler { await watcher.value } onCancel: { watcher.cancel() }
    }

    @Test("releasing the client ends its states(), events() and userMessages() sequences")
    func releaseEndsStreams() async throws {
        try await withNodeProcess { node in
            var watchers: [Task<Void, Never>] = []
            do {
                let client = try ChorusClient(url: Self.url(node), token: node.token("ivan"))
                let states = await client.states()
                let events = await client.events()
                let userMessages = await client.userMessages()
                watchers = [
                    Task { for await _ in states {} }, Task { for await _ in events {} },
                    Task { for await _ in userMessages {} },
                ]
                try await client.connect()
            }
            for watcher in watchers { await Self.ended(watcher) }
        }
    }

    @Test("releasing the client closes its connection on the node")
    func releaseClosesConnection() async throws {
        try await withNodeProcess { node in
            do {
                let client = try ChorusClient(url: Self.url(node), token: node.token("ivan"))
                _ = try await client.subscribe("chat.released")
                #expect(try await Self.connections(on: node) == 1)
            }
            let closed = await eventually { (try? await Self.connections(on: node)) == 0 }
            #expect(closed, "the released client's connection is still open")
        }
    }

    @Test("a subscribe cancelled while the client connects is not sent, and the connection carries on")
    func cancelledSubscribe() async throws {
        try await withNodeProcess { node in
            let tokens = TokenGate(user: "judy")
            await tokens.close()
            let client = try ChorusClient(url: Self.url(node), configuration: Self.configuration(), getToken: tokens.provider)
            let subscribing = Task { try await client.subscribe("chat.never") }
            await tokens.waitForCalls(1)
            subscribing.cancel()
            await #expect(throws: CancellationError.self) { try await subscribing.value }
            await tokens.open()
            try await client.connect()
            try await client.ping()  // the node has handled everything sent on connecting
            #expect(try await Self.subscriptions(on: node) == 0)
            await client.close()
        }
    }

    @Test("presence: a member joins with data, is listed by members(), others see the join, and cancelling leaves")
    func presence() async throws {
        try await withNodeProcess { node in
            let watcher = try ChorusClient(url: Self.url(node), token: node.token("judy"))
            let watching = try await watcher.join("rooms.lobby", data: ["status": "here"])
            let client = try ChorusClient(url: Self.url(node), token: node.token("ken"))
            let membership = try await client.join("rooms.lobby", data: ["status": "typing soon"])
            let join = await first(in: watching.presenceEvents, where: { $0.member?.userId == "ken" })
            #expect(join?.kind == .join)
            #expect(join?.member?.data == ["status": "typing soon"])
            let state = try await client.members("rooms.lobby")
            #expect(state.members.map(\.userId) == ["judy", "ken"])
            #expect(state.count == 2)
            #expect(state.scope == nil, "the whole cluster's members")
            membership.cancel()
            let leave = await first(in: watching.presenceEvents, where: { $0.member?.userId == "ken" })
            #expect(leave?.kind == .leave, "cancelling the membership's subscription leaves")
            await client.close()
            await watcher.close()
        }
    }

    @Test("presence: subscribe and join of one history topic at once both succeed (the second subscribe waits for the first's reply instead of meeting the node's 409)")
    func subscribeAndJoinAtOnce() async throws {
        try await withNodeProcess { node in
            let client = try ChorusClient(url: Self.url(node), token: node.token("nora"))
            try await client.connect()
            async let plain = client.subscribe("chat.both", replay: 10)
            async let membership = client.join("chat.both", data: ["status": "here"])
            let (subscription, joined) = try await (plain, membership)
            let state = try await client.members("chat.both")
            #expect(state.members.map(\.userId) == ["nora"], "the join reached the node")
            try await client.publish("chat.both", ["n": 1])
            var messages = subscription.makeAsyncIterator()
            #expect(await messages.next()?.data == ["n": 1], "the subscription is live")
            joined.cancel()
            await client.close()
        }
    }

    @Test("presence: ending a join while a plain subscription of the topic remains leaves presence and keeps the subscription")
    func joinEndsPlainStays() async throws {
        try await withNodeProcess { node in
            let watcher = try ChorusClient(url: Self.url(node), token: node.token("oscar"))
            let watching = try await watcher.join("rooms.mixed", data: ["status": "watching"])
            let client = try ChorusClient(url: Self.url(node), token: node.token("pia"))
            let plain = try await client.subscribe("rooms.mixed")
            let membership = try await client.join("rooms.mixed", data: ["status": "here"])
            let joined = await first(in: watching.presenceEvents, where: { $0.member?.userId == "pia" })
            #expect(joined?.kind == .join)
            membership.cancel()
            let left = await first(in: watching.presenceEvents, where: { $0.member?.userId == "pia" })
            #expect(left?.kind == .leave, "ending the join leaves")
            #expect(try await watcher.members("rooms.mixed").members.map(\.userId) == ["oscar"])
            try await watcher.publish("rooms.mixed", ["n": 1])
            var messages = plain.makeAsyncIterator()
            #expect(await messages.next()?.data == ["n": 1], "the plain subscription still receives")
            await client.close()
            await watcher.close()
        }
    }

    @Test("presence: members() of a room too large for one answer says truncated, with every member counted, and after gives the next pages")
    func presenceTruncated() async throws {
        try await withNodeProcess(["WEBSOCKET_MAX_PENDING_BYTES": "65536"]) { node in
            var clients: [ChorusClient] = []
            var memberships: [Subscription] = []
            for index in 1...8 {
                let client = try ChorusClient(url: Self.url(node), token: node.token("m\(index)"))
                memberships.append(try await client.join("rooms.large", data: ["blob": .string(String(repeating: "x", count: 3_000))]))
                clients.append(client)
            }
            let state = try await clients[0].members("rooms.large")
            #expect(state.truncated && state.count == 8 && state.members.count < 8)
            #expect(state.members.map(\.userId) == Array(["m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8"].prefix(state.members.count)))
            var listed = state.members.map(\.userId)
            var page = state
            while page.truncated, let last = listed.last, listed.count < 16 {
                page = try await clients[0].members("rooms.large", after: last)
                listed += page.members.map(\.userId)
            }
            #expect(listed == ["m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8"], "the next pages, with after")
            for membership in memberships { membership.cancel() }
            for client in clients { await client.close() }
        }
    }

    @Test("presence: members() says so when the node cannot reach Redis and lists its own members only")
    func presenceNodeScope() async throws {
        // Nothing listens on port 1: the node runs in fallback, its presence store unreachable.
        try await withNodeProcess(["PUBSUB_ADAPTER": "redis", "PUBSUB_REDIS_URL": "redis://127.0.0.1:1"]) { node in
            let client = try ChorusClient(url: Self.url(node), token: node.token("olga"))
            let membership = try await client.join("rooms.lobby", data: ["status": "here"])
            let state = try await client.members("rooms.lobby")
            #expect(state.scope == "node")
            #expect(state.members.map(\.userId) == ["olga"])
            membership.cancel()
            await client.close()
        }
    }

    @Test("typing: another member sees start, then stop")
    func typing() async throws {
        try await withNodeProcess { node in
            let watcher = try ChorusClient(url: Self.url(node), token: node.token("lena"))
            let watching = try await watcher.subscribe("rooms.lobby")
            let client = try ChorusClient(url: Self.url(node), token: node.token("mike"))
            try await client.connect()
            await client.typing("rooms.lobby")
            await client.typing("rooms.lobby")  // throttled: one start
            await client.stopTyping("rooms.lobby")
            var events = watching.typingEvents.makeAsyncIterator()
            let start = await events.next()
            #expect(start?.userId == "mike")
            #expect(start?.isTyping == true)
            // A second start may come when the throttle's 2 s passed between the two calls (a
            // loaded machine): the stop follows the starts.
            var stop = await events.next()
            while stop?.isTyping == true, stop?.userId == "mike" { stop = await events.next() }
            #expect(stop?.userId == "mike")
            #expect(stop?.isTyping == false)
            await client.close()
            await watcher.close()
        }
    }

    @Test("markRead records the read and the topic's subscribers receive message.read; the same read again is advanced: false")
    func readReceipt() async throws {
        try await withNodeProcess { node in
            let posted = try await HTTP.post(
                "\(node.baseURL)/api/messages", json: ["topic": "rooms.reads", "content": "read me"],
                headers: ["Authorization": "Bearer \(node.token("nina"))"])
            #expect(posted.status == 201)
            let messageId = try #require(try posted.json()["id"] as? String)
            let client = try ChorusClient(url: Self.url(node), token: node.token("oscar"), configuration: Self.configuration())
            let subscription = try await client.subscribe("rooms.reads")
            let receipt = try await client.markRead(messageId)
            #expect(!receipt.readAt.isEmpty)
            #expect(receipt.advanced)
            #expect(receipt.messageId == messageId)
            #expect(try await client.markRead(messageId).advanced == false, "the position was there already")
            var event: ChorusMessage?
            for await message in subscription where message.eventType == "message.read" {
                event = message
                break
            }
            #expect(event?.data["messageId"] == .string(messageId))
            #expect(event?.data["userId"] == "oscar")
            await client.close()
        }
    }

    /// `subscriptions.total` of the node's `/stats`.
    private static func subscriptions(on node: NodeProcess) async throws -> Int? {
        (try await node.stats()["subscriptions"] as? [String: Any])?["total"] as? Int
    }

    /// `connections.total` of the node's `/stats`.
    private static func connections(on node: NodeProcess) async throws -> Int? {
        (try await node.stats()["connections"] as? [String: Any])?["total"] as? Int
    }
}
