import struct Broker.TopicPattern
@testable import ChorusSDK
import Foundation
import Synchronization
import Node
import Testing
import TestSupport

/// History on subscribe, recovery with `since`, and gaps, through the SDK.
@Suite("Swift SDK against a node: history and recovery", .timeLimit(.minutes(2)))
struct SDKHistoryTests {
    @Test("a first subscribe with replay or since receives the history it asked for, then live messages")
    func historyOnFirstSubscribe() async throws {
        try await withNodeProcess { node in
            let publisher = try ChorusClient(url: SDKNode.url(node), token: node.token("alice"), configuration: SDKNode.configuration())
            var receipts: [PublishReceipt] = []
            for n in 1...5 { receipts.append(try await publisher.publish("chat.history", ["n": .integer(Int64(n))])) }
            let second = try #require(receipts[1].position)

            let bob = try ChorusClient(url: SDKNode.url(node), token: node.token("bob"), configuration: SDKNode.configuration())
            let carol = try ChorusClient(url: SDKNode.url(node), token: node.token("carol"), configuration: SDKNode.configuration())
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

    @Test("replay or since on a topic without history subscribes live instead of failing, and a since that was sent is a recoveryFailed (as in the JavaScript SDK)")
    func noHistoryFallsBackToLive() async throws {
        try await withNodeProcess(["HISTORY_TOPICS": "chat.**"]) { node in
            let client = try ChorusClient(url: SDKNode.url(node), token: node.token("alice"), configuration: SDKNode.configuration())
            let events = await client.events()
            let replayed = try await client.subscribe("live.replay", replay: 5)
            let since = StreamPosition(offset: 3, epoch: "gone")
            let recovered = try await client.subscribe("live.since", since: since)
            let failure = await first(in: events) { if case .recoveryFailed = $0 { true } else { false } }
            #expect(failure == .recoveryFailed(topic: "live.since", since: since))
            try await client.publish("live.replay", ["n": 1])
            try await client.publish("live.since", ["n": 2])
            var replayedMessages = replayed.makeAsyncIterator()
            var recoveredMessages = recovered.makeAsyncIterator()
            #expect(await replayedMessages.next()?.data == ["n": 1], "live after all")
            #expect(await recoveredMessages.next()?.data == ["n": 2], "live after all")
            // A later subscriber of the live topic with since hears at once that nothing is recovered.
            let later = StreamPosition(offset: 1, epoch: "gone")
            _ = try await client.subscribe("live.replay", since: later)
            let laterFailure = await first(in: events) { if case .recoveryFailed = $0 { true } else { false } }
            #expect(laterFailure == .recoveryFailed(topic: "live.replay", since: later))
            await client.close()
        }
    }

    @Test("the position of a topic stays known after its subscription ends (cancelled, or close()): a later subscribe with since from position(of:) gets what was published in between")
    func positionAfterUnsubscribe() async throws {
        try await withNodeProcess { node in
            let publisher = try ChorusClient(url: SDKNode.url(node), token: node.token("alice"), configuration: SDKNode.configuration())
            let reader = try ChorusClient(url: SDKNode.url(node), token: node.token("bob"), configuration: SDKNode.configuration())
            let subscription = try await reader.subscribe("chat.left")
            try await publisher.publish("chat.left", ["n": 1])
            var messages = subscription.makeAsyncIterator()
            #expect(await messages.next()?.data == ["n": 1])
            subscription.cancel()
            try #require(await eventually { await reader.position(of: "chat.left") != nil }, "kept after the unsubscribe")
            await reader.close()
            let left = try #require(await reader.position(of: "chat.left"), "kept after close()")
            try await publisher.publish("chat.left", ["n": 2])

            let again = try await reader.subscribe("chat.left", since: left)
            var resumed = again.makeAsyncIterator()
            #expect(await resumed.next()?.data == ["n": 2], "what came between, not a live start")
            for client in [publisher, reader] { await client.close() }
        }
    }

    @Test("a second subscription of a live topic with since behind the topic's position starts live and reports recoveryFailed; one at the position does not")
    func sinceOnALiveTopic() async throws {
        try await withNodeProcess { node in
            let publisher = try ChorusClient(url: SDKNode.url(node), token: node.token("alice"), configuration: SDKNode.configuration())
            let bob = try ChorusClient(url: SDKNode.url(node), token: node.token("bob"), configuration: SDKNode.configuration())
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

    @Test("a subscription with since, made while the topic's first subscribe is unanswered, starts live: recoveryFailed when its since is behind the reply's position, none when level; nothing more is sent (a scripted node)")
    func sinceWhileUnanswered() async throws {
        let scripted = try await SDKNode.scriptedNode("late-since")
        defer { scripted.process.signal(SIGKILL) }
        let client = try ChorusClient(url: "ws://127.0.0.1:\(scripted.port)/ws", token: "any", configuration: SDKNode.configuration())
        let events = await client.events()
        let first = Task { try await client.subscribe("chat.late") }
        try #require(await eventually { scripted.process.output().contains("subscribe chat.late\n") }, "\(scripted.process.output())")
        let behind = StreamPosition(offset: 1, epoch: "E")
        let late = Task { try await client.subscribe("chat.late", since: behind) }
        let level = Task { try await client.subscribe("chat.late", since: StreamPosition(offset: 3, epoch: "E")) }
        try #require(await eventually { await client.subscriberCount(of: "chat.late") == 3 }, "both are the client's before the answer")
        try await client.ping()  // the node answers the subscribe after it
        for subscription in [try await first.value, try await late.value, try await level.value] {
            var messages = subscription.makeAsyncIterator()
            #expect(await messages.next()?.data == ["n": 4], "live from the reply on")
        }
        var failures: [ClientEvent] = []
        for await event in events {
            if case .recoveryFailed = event { failures.append(event) }
            if case .gap = event { break }  // the node's marker, after the reply
        }
        #expect(failures == [.recoveryFailed(topic: "chat.late", since: behind)], "one, for the subscription behind")
        #expect(!scripted.process.output().contains("subscribes"), "one subscribe: \(scripted.process.output())")
        await client.close()
        #expect(await scripted.process.wait(timeout: .seconds(30)) == 0, "\(scripted.process.output())")
    }

    @Test("a topic's history page arrives in full after a pattern of the same client delivered that topic's newest message, and the pattern gets no repeats")
    func historyAfterPattern() async throws {
        try await withNodeProcess { node in
            let bob = try ChorusClient(url: SDKNode.url(node), token: node.token("bob"), configuration: SDKNode.configuration())
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
        let (scripted, port) = try await SDKNode.scriptedNode("pattern-before-page")
        defer { scripted.signal(SIGKILL) }
        let client = try ChorusClient(url: "ws://127.0.0.1:\(port)/ws", token: "any", configuration: SDKNode.configuration())
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

    @Test("a subscribe refused with 409 more often than the retries of other refusals (an earlier subscribe of the topic still reads its history) is sent again until answered (a scripted node)")
    func stillReadingIsRetried() async throws {
        let scripted = try await SDKNode.scriptedNode("still-reading")
        defer { scripted.process.signal(SIGKILL) }
        var configuration = SDKNode.configuration()
        configuration.minimumReconnectDelay = .milliseconds(50)
        let client = try ChorusClient(url: "ws://127.0.0.1:\(scripted.port)/ws", token: "fixed", configuration: configuration)
        let subscription = try await client.subscribe("rooms.a")
        _ = subscription
        await client.close()
        #expect(await scripted.process.wait(timeout: .seconds(30)) == 0, "\(scripted.process.output())")
        #expect(scripted.process.output().contains("subscribe 9\n"), "\(scripted.process.output())")
    }

    @Test("subscribed says resubscribed only for a reconnect's first confirmation, also one the node confirms after a 409 retry; a subscribe sent again on the same connection (a join of the live topic, new member data, the last join ending) says false (a scripted node)")
    func resubscribedOnlyAfterReconnect() async throws {
        let scripted = try await SDKNode.scriptedNode("resubscribed")
        defer { scripted.process.signal(SIGKILL) }
        var configuration = SDKNode.configuration()
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
        let scripted = try await SDKNode.scriptedNode("gap")
        defer { scripted.process.signal(SIGKILL) }
        let client = try ChorusClient(url: "ws://127.0.0.1:\(scripted.port)/ws", token: "any", configuration: SDKNode.configuration())
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
}

