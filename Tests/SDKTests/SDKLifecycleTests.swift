import struct Broker.TopicPattern
import ChorusSDK
import Foundation
import Synchronization
import Node
import Testing
import TestSupport

/// Connecting, losing and closing the connection, and releasing the client, through the SDK.
@Suite("Swift SDK against a node: connection lifecycle", .timeLimit(.minutes(2)))
struct SDKLifecycleTests {
    @Test("a publish on a connection that stops answering (the node frozen with SIGSTOP: the TCP connection stays open) is not failed: the missing pong drops the connection and the publish goes out again once the node answers")
    func publishOnAHalfOpenConnection() async throws {
        try await withNodeProcess { node in
            var configuration = SDKNode.configuration()
            // After the thaw the publish, sent again, must be answered within the request
            // timeout (the node answering the ping then would fail it): 5 s for a node just
            // thawed on a loaded machine, where 1 s was tight.
            configuration.requestTimeout = .seconds(5)
            configuration.pongTimeout = .seconds(1)
            configuration.pingInterval = nil
            configuration.connectTimeout = .seconds(2)
            let client = try ChorusClient(url: SDKNode.url(node), token: node.token("tess"), configuration: configuration)
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

    @Test("a connect timeout with a fraction of a second (900 ms) bounds the WebSocket upgrade by all of it: the client connects (the fraction was once dropped, a deadline of zero, and no attempt could succeed)")
    func subSecondConnectTimeout() async throws {
        try await withNodeProcess { node in
            var configuration = SDKNode.configuration()
            configuration.connectTimeout = .milliseconds(900)
            // An attempt a loaded machine takes longer than 900 ms over is tried again; with a
            // deadline of zero none would ever succeed.
            configuration.minimumReconnectDelay = .milliseconds(50)
            let client = try ChorusClient(url: SDKNode.url(node), token: node.token("tess"), configuration: configuration)
            try await withDeadline(.seconds(60), "a connection") {
                let subscription = try await client.subscribe("chat.fraction")
                var messages = subscription.makeAsyncIterator()
                try await client.publish("chat.fraction", ["n": 1])
                #expect(await messages.next()?.data == ["n": 1])
            }
            await client.close()
        }
    }

    @Test("a subscribe never answered is sent 6 times, then throws timeout and sends unsubscribe, since an earlier attempt may still succeed on the node (a scripted node)")
    func unsubscribeOnGivingUp() async throws {
        let scripted = try await SDKNode.scriptedNode("subscribes-unanswered")
        defer { scripted.process.signal(SIGKILL) }
        var configuration = SDKNode.configuration()
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
        let scripted = try await SDKNode.scriptedNode("closes-on-publish")
        defer { scripted.process.signal(SIGKILL) }
        var configuration = SDKNode.configuration()
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
        let scripted = try await SDKNode.scriptedNode("slow-auth")
        defer { scripted.process.signal(SIGKILL) }
        var configuration = SDKNode.configuration()
        configuration.pingInterval = .milliseconds(100)
        let client = try ChorusClient(url: "ws://127.0.0.1:\(scripted.port)/ws", token: "any", configuration: configuration)
        try await withDeadline(.seconds(20), "the first connection") { try await client.connect() }
        await client.close()
        #expect(await scripted.process.wait(timeout: .seconds(30)) == 0, "\(scripted.process.output())")
        #expect(!scripted.process.output().contains("upgrades 2"), "\(scripted.process.output())")
    }

    @Test("without pings, a connection the node never authenticates is dropped after connectTimeout + pongTimeout and the client connects again (a scripted node)")
    func silentAuthentication() async throws {
        let scripted = try await SDKNode.scriptedNode("silent-auth")
        defer { scripted.process.signal(SIGKILL) }
        var configuration = SDKNode.configuration()
        configuration.pingInterval = nil
        configuration.connectTimeout = .milliseconds(300)
        configuration.pongTimeout = .milliseconds(200)
        let client = try ChorusClient(url: "ws://127.0.0.1:\(scripted.port)/ws", token: "any", configuration: configuration)
        try await withDeadline(.seconds(20), "a connection that authenticates") { try await client.connect() }
        #expect(scripted.process.output().contains("upgrades 2"), "\(scripted.process.output())")
        #expect(await eventually { scripted.process.output().contains("first connection dropped") }, "\(scripted.process.output())")
        await client.close()
        #expect(await scripted.process.wait(timeout: .seconds(30)) == 0, "\(scripted.process.output())")
    }

    @Test("close() ends the connection with a close handshake (1000), also when the client is released at once: ten in a row (a scripted node)")
    func closeHandshake() async throws {
        let scripted = try await SDKNode.scriptedNode("close-codes")
        defer { scripted.process.signal(SIGKILL) }
        for _ in 0..<10 {
            let client = try ChorusClient(url: "ws://127.0.0.1:\(scripted.port)/ws", token: "any", configuration: SDKNode.configuration())
            try await withDeadline(.seconds(20), "the connection") { try await client.connect() }
            await client.close()
        }
        #expect(await scripted.process.wait(timeout: .seconds(30)) == 0, "\(scripted.process.output())")
        #expect(scripted.process.output().contains("close codes 1000 1000 1000 1000 1000 1000 1000 1000 1000 1000"), "\(scripted.process.output())")
    }

    @Test("an upgrade refused with 404 (a wrong path) fails the client with upgradeRefused, once, instead of retrying forever without a word")
    func wrongPath() async throws {
        try await withNodeProcess { node in
            let client = try ChorusClient(
                url: "ws://127.0.0.1:\(node.port)/wrong", token: node.token("alice"), configuration: SDKNode.configuration())
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

    @Test("a failed client stays failed when the app asks members(), markRead() or ping(): each throws the failure at once, and nothing connects again")
    func failedStaysFailed() async throws {
        try await withNodeProcess { node in
            let client = try ChorusClient(
                url: "ws://127.0.0.1:\(node.port)/wrong", token: node.token("alice"), configuration: SDKNode.configuration())
            await #expect(throws: ChorusError.self) { try await client.connect() }
            guard case .failed(.upgradeRefused(404, _)) = await client.state else {
                throw TestFailure("expected failed(upgradeRefused(404)), got \(await client.state)")
            }
            let states = await client.states()
            for _ in 1...3 {
                await #expect(throws: ChorusError.self) { _ = try await client.members("rooms.lobby") }
                await #expect(throws: ChorusError.self) { _ = try await client.markRead("m-1") }
                await #expect(throws: ChorusError.self) { try await client.ping() }
            }
            await client.close()
            var seen: [ConnectionState] = []
            _ = await first(in: states) { state in
                seen.append(state)
                return state == .disconnected
            }
            #expect(!seen.contains { state in
                switch state {
                case .connecting, .reconnecting: true
                default: false
                }
            }, "no attempt after the failure: \(seen)")
        }
    }

    @Test("cancelling the task that iterates a subscription unsubscribes on the node")
    func cancellingUnsubscribes() async throws {
        try await withNodeProcess { node in
            let client = try ChorusClient(url: SDKNode.url(node), token: node.token("heidi"), configuration: SDKNode.configuration())
            let subscription = try await client.subscribe("chat.cancel")
            #expect(try await SDKNode.subscriptions(on: node) == 1)
            let iterating = Task { for await _ in subscription {} }
            iterating.cancel()
            await iterating.value
            let gone = await eventually { (try? await SDKNode.subscriptions(on: node)) == 0 }
            #expect(gone, "the node still holds the subscription")
            #expect(await client.state == .connected(userId: "heidi"))
            await client.close()
        }
    }

    @Test("closing the client closes its connection on the node")
    func closeReleasesConnection() async throws {
        try await withNodeProcess { node in
            let client = try ChorusClient(url: SDKNode.url(node), token: node.token("ivan"))
            try await client.connect()
            #expect(try await SDKNode.connections(on: node) == 1)
            await client.close()
            let closed = await eventually { (try? await SDKNode.connections(on: node)) == 0 }
            #expect(closed)
        }
    }

    @Test("close() ends userMessages(); states() and events() carry on into the next connect()")
    func closeEndsUserMessages() async throws {
        try await withNodeProcess { node in
            let client = try ChorusClient(url: SDKNode.url(node), token: node.token("ivan"))
            let userMessages = await client.userMessages()
            let watching = Task { for await _ in userMessages {} }
            var states = await client.states().makeAsyncIterator()
            #expect(await states.next() == .disconnected)
            try await client.connect()
            await client.close()
            await SDKNode.ended(watching)
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

    @Test("releasing the client ends its states(), events() and userMessages() sequences")
    func releaseEndsStreams() async throws {
        try await withNodeProcess { node in
            var watchers: [Task<Void, Never>] = []
            do {
                let client = try ChorusClient(url: SDKNode.url(node), token: node.token("ivan"))
                let states = await client.states()
                let events = await client.events()
                let userMessages = await client.userMessages()
                watchers = [
                    Task { for await _ in states {} }, Task { for await _ in events {} },
                    Task { for await _ in userMessages {} },
                ]
                try await client.connect()
            }
            // Bounded, so a sequence the release leaves open fails the test, naming it, instead
            // of running into the suite's time limit.
            for (name, watcher) in zip(["states()", "events()", "userMessages()"], watchers) {
                try await withDeadline(.seconds(30), "the end of \(name) once the client is released") {
                    await SDKNode.ended(watcher)
                }
            }
        }
    }

    @Test("releasing the client closes its connection on the node")
    func releaseClosesConnection() async throws {
        try await withNodeProcess { node in
            do {
                let client = try ChorusClient(url: SDKNode.url(node), token: node.token("ivan"))
                _ = try await client.subscribe("chat.released")
                #expect(try await SDKNode.connections(on: node) == 1)
            }
            let closed = await eventually { (try? await SDKNode.connections(on: node)) == 0 }
            #expect(closed, "the released client's connection is still open")
        }
    }

    @Test("a subscribe cancelled while the client connects is not sent, and the connection carries on")
    func cancelledSubscribe() async throws {
        try await withNodeProcess { node in
            let tokens = TokenGate(user: "judy")
            await tokens.close()
            let client = try ChorusClient(url: SDKNode.url(node), configuration: SDKNode.configuration(), getToken: tokens.provider)
            let subscribing = Task { try await client.subscribe("chat.never") }
            await tokens.waitForCalls(1)
            subscribing.cancel()
            await #expect(throws: CancellationError.self) { try await subscribing.value }
            await tokens.open()
            try await client.connect()
            try await client.ping()  // the node has handled everything sent on connecting
            #expect(try await SDKNode.subscriptions(on: node) == 0)
            await client.close()
        }
    }

    @Test("publishes made before the connection is up wait in the queue and are sent once it is")
    func offlineQueue() async throws {
        try await withNodeProcess { node in
            let tokens = TokenGate(user: "frank")
            await tokens.close()
            let client = try ChorusClient(url: SDKNode.url(node), configuration: SDKNode.configuration(), getToken: tokens.provider)
            let watcher = try ChorusClient(url: SDKNode.url(node), token: node.token("watcher"), configuration: SDKNode.configuration())
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
}
