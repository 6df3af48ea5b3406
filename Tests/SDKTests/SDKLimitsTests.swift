import struct Broker.TopicPattern
import ChorusSDK
import Foundation
import Synchronization
import Node
import Testing
import TestSupport

/// The node's limits met through the SDK: message rates (429 with retryAfter), message sizes, buffers and the offline queue.
@Suite("Swift SDK against a node: rates and sizes", .timeLimit(.minutes(2)))
struct SDKLimitsTests {
    @Test("a burst past the node's message rate: subscribes and publishes the node drops with 429 and retryAfter are sent again, and every one succeeds; each message arrives once")
    func burstPastTheRateLimit() async throws {
        try await withNodeProcess(["WEBSOCKET_MAX_MESSAGES_PER_SECOND": "10"]) { node in
            let reader = try ChorusClient(url: SDKNode.url(node), token: node.token("rhea"), configuration: SDKNode.configuration())
            let watched = try await reader.subscribe("chat.burst")
            let client = try ChorusClient(url: SDKNode.url(node), token: node.token("sam"), configuration: SDKNode.configuration())
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

    @Test("publishing faster than the node takes: every message arrives once, in the order published (a refused publish holds later ones back, and the queue drains paced)")
    func publishOrderPastTheRate() async throws {
        try await withNodeProcess(["WEBSOCKET_MAX_MESSAGES_PER_SECOND": "1"]) { node in
            let reader = try ChorusClient(url: SDKNode.url(node), token: node.token("rhea"), configuration: SDKNode.configuration())
            let watched = try await reader.subscribe("chat.order")
            let client = try ChorusClient(url: SDKNode.url(node), token: node.token("sam"), configuration: SDKNode.configuration())
            try await client.connect()
            // 10 publishes sent, in order, to the node frozen (SIGSTOP): thawed, it reads them in
            // one go and takes what its budget of 1 a second allows (one at most), refusing the
            // rest at once. Sent while it ran, the one reordering the SDK cannot prevent could
            // happen: a publish already on the wire when its predecessor's refusal came back,
            // accepted because the budget refilled meanwhile (on a loaded machine even at 1 a
            // second: [0, 2, 3, 1, ...]). From the refusals on, the order is the SDK's to keep.
            node.process.signal(SIGSTOP)
            let receipts = try await withThrowingTaskGroup(of: PublishReceipt.self) { group in
                for n in 0..<10 {
                    group.addTask { try await client.publish("chat.order", ["n": .integer(Int64(n))]) }
                    // Orders the calls: the next starts only once this one is in the client's
                    // queue (none is answered while the node is frozen).
                    let queued = await eventually { await client.queuedPublishes == n + 1 }
                    #expect(queued, "publish \(n) queued")
                }
                node.process.signal(SIGCONT)
                return try await group.reduce(into: [PublishReceipt]()) { $0.append($1) }
            }
            #expect(receipts.count == 10 && receipts.allSatisfy { $0.acknowledged && !$0.duplicate })
            var messages = watched.makeAsyncIterator()
            var seen: [Int64] = []
            while seen.count < 10, let message = await messages.next() {
                if case .integer(let n)? = message.data["n"] { seen.append(n) }
            }
            #expect(seen == Array(0..<10), "in the order published")
            await client.close()
            await reader.close()
        }
    }

    @Test("a burst of 900 subscribes at a message rate of 100 drains: the ones the node drops are sent again spaced to its limit, not closed for flooding (1008)")
    func subscribeBurstDrains() async throws {
        try await withNodeProcess(["WEBSOCKET_MAX_MESSAGES_PER_SECOND": "100", "WEBSOCKET_MAX_SUBSCRIPTIONS": "2000"]) { node in
            let client = try ChorusClient(url: SDKNode.url(node), token: node.token("uma"), configuration: SDKNode.configuration())
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

    @Test("subscribes the node refuses for its message rate (429 with retryAfter) are sent again until they are answered: every subscription goes live")
    func subscribesPastTheRate() async throws {
        try await withNodeProcess(["WEBSOCKET_MAX_MESSAGES_PER_SECOND": "5"]) { node in
            var configuration = SDKNode.configuration()
            // The refusals are answered, so no timeout is needed to find them; a short one only
            // spends the retries of a subscribe a loaded machine answers late (failed a full run).
            configuration.requestTimeout = .seconds(10)
            configuration.minimumReconnectDelay = .milliseconds(100)
            let client = try ChorusClient(url: SDKNode.url(node), token: node.token("many"), configuration: configuration)
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

    @Test("unsubscribes the node drops past its message rate are sent again: once the subscriptions are cancelled, the node holds none (it went on delivering them, and counting them against the subscription limit)")
    func unsubscribesPastTheRate() async throws {
        try await withNodeProcess(["WEBSOCKET_MAX_MESSAGES_PER_SECOND": "5"]) { node in
            var configuration = SDKNode.configuration()
            configuration.requestTimeout = .seconds(10)
            configuration.minimumReconnectDelay = .milliseconds(100)
            let client = try ChorusClient(url: SDKNode.url(node), token: node.token("leaver"), configuration: configuration)
            var subscriptions: [Subscription] = []
            for n in 1...10 { subscriptions.append(try await client.subscribe("rooms.u\(n)")) }
            #expect(try await SDKNode.subscriptions(on: node) == 10)
            // Ten at once: past the five a second the node takes, the rest are dropped (429).
            for subscription in subscriptions { subscription.cancel() }
            let none = await eventually(within: .seconds(30)) { (try? await SDKNode.subscriptions(on: node)) == 0 }
            #expect(none, "subscriptions left on the node")
            await client.close()
        }
    }

    @Test("joins ended past the node's message rate while plain subscriptions of the same topics stay: the memberships end all the same (each subscribe with presence:false goes again), and the subscriptions stay")
    func leavesPastTheRate() async throws {
        try await withNodeProcess(["WEBSOCKET_MAX_MESSAGES_PER_SECOND": "5"]) { node in
            var configuration = SDKNode.configuration()
            configuration.requestTimeout = .seconds(10)
            configuration.minimumReconnectDelay = .milliseconds(100)
            let client = try ChorusClient(url: SDKNode.url(node), token: node.token("lena"), configuration: configuration)
            var plain: [Subscription] = []
            var joins: [Subscription] = []
            for n in 1...6 {
                plain.append(try await client.subscribe("rooms.l\(n)"))
                joins.append(try await client.join("rooms.l\(n)", data: ["n": .integer(Int64(n))], events: false))
            }
            let memberships = { (try? await node.stats()["presence"] as? [String: Any])?["memberships"] as? Int }
            #expect(await memberships() == 6)
            // Six leaves at once, each a subscribe with presence:false: past the five a second the node takes.
            for join in joins { join.cancel() }
            let left = await eventually(within: .seconds(30)) { await memberships() == 0 }
            #expect(left, "memberships left on the node")
            #expect(try await SDKNode.subscriptions(on: node) == 6, "the plain subscriptions stay")
            withExtendedLifetime(plain) {}
            await client.close()
        }
    }

    @Test("a setToken whose auth the node drops past its message rate (behind a burst of publishes) is sent again: the connection authenticates with it")
    func authPastTheRate() async throws {
        try await withNodeProcess(["WEBSOCKET_MAX_MESSAGES_PER_SECOND": "5"]) { node in
            var configuration = SDKNode.configuration()
            configuration.requestTimeout = .seconds(20)
            let client = try ChorusClient(url: SDKNode.url(node), token: node.token("ray"), configuration: configuration)
            try await client.connect()
            let events = await client.events()
            // Ten publishes at once spend the second's budget; the auth right behind them is dropped.
            let acknowledged = Counter()
            let publishing = Task {
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for n in 1...10 {
                        group.addTask {
                            _ = try await client.publish("rooms.rate", ["n": .integer(Int64(n))])
                            acknowledged.value.add(1, ordering: .relaxed)
                        }
                    }
                    try await group.waitForAll()
                }
            }
            // All ten handed to the client (queued, or acknowledged already: the first few
            // may be answered before the last is queued).
            #expect(
                await eventually { await client.queuedPublishes + acknowledged.value.load(ordering: .relaxed) == 10 }, "the publishes go first")
            await client.setToken(node.token("ray"))
            let renewed = try await withDeadline(.seconds(30), "the new token's auth") {
                await first(in: events) { event in
                    if case .reauthenticated = event { return true }
                    return false
                }
            }
            #expect(renewed == .reauthenticated(userId: "ray"))
            try await publishing.value
            await client.close()
        }
    }

    @Test("a publish or join over the node's maxMessageSize (from auth_success) throws messageTooLarge (413) unsent, at once; the connection stays and the next publish goes (a scripted node)")
    func messageOverAnnouncedLimit() async throws {
        let scripted = try await SDKNode.scriptedNode("max-message-size")
        defer { scripted.process.signal(SIGKILL) }
        let client = try ChorusClient(url: "ws://127.0.0.1:\(scripted.port)/ws", token: "any", configuration: SDKNode.configuration())
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
        let scripted = try await SDKNode.scriptedNode("max-message-size")
        defer { scripted.process.signal(SIGKILL) }
        var configuration = SDKNode.configuration()
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
        let scripted = try await SDKNode.scriptedNode("closes-too-big")
        defer { scripted.process.signal(SIGKILL) }
        var configuration = SDKNode.configuration()
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

    @Test("a subscription whose consumer falls behind its buffer ends with bufferOverflow after the messages it holds")
    func bufferOverflow() async throws {
        try await withNodeProcess { node in
            var configuration = SDKNode.configuration()
            configuration.messageBufferLimit = 5
            let client = try ChorusClient(url: SDKNode.url(node), token: node.token("slow"), configuration: configuration)
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

    @Test("the offline queue is bounded: one publish past the limit throws queueFull")
    func offlineQueueLimit() async throws {
        try await withNodeProcess { node in
            let tokens = TokenGate(user: "grace")
            await tokens.close()
            var configuration = SDKNode.configuration()
            configuration.offlineQueueLimit = 2
            let client = try ChorusClient(url: SDKNode.url(node), configuration: configuration, getToken: tokens.provider)
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
}

/// A count shared with child tasks.
private final class Counter: Sendable {
    let value = Atomic<Int>(0)
}
