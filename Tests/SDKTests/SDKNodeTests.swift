import struct Broker.TopicPattern
import ChorusSDK
import Foundation
import Synchronization
import Node
import Testing
import TestSupport

/// The Swift SDK against one real `chorus` node (a child process, see `withNodeProcess`): publishing, receiving and what arrives.
@Suite("Swift SDK against a node: messaging", .timeLimit(.minutes(2)))
struct SDKNodeTests {
    @Test("a publish that only the node's own subscribers received (its Redis unreachable) says so: nodeOnly")
    func nodeOnlyReceipt() async throws {
        try await withNodeProcess(["PUBSUB_ADAPTER": "redis", "PUBSUB_REDIS_URL": "redis://127.0.0.1:1"]) { node in
            let client = try ChorusClient(url: SDKNode.url(node), token: node.token("alice"), configuration: SDKNode.configuration())
            try await client.connect()
            let receipt = try await client.publish("chat.lobby", ["n": 1])
            #expect(receipt.acknowledged && receipt.nodeOnly)
            await client.close()
        }
    }

    @Test("a client connects, subscribes, publishes and receives what it published")
    func roundTrip() async throws {
        try await withNodeProcess { node in
            let client = try ChorusClient(url: SDKNode.url(node), token: node.token("alice"), configuration: SDKNode.configuration())
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

    @Test("a message the application addresses to a user reaches userMessages() on each of that user's clients, unchanged, and no one else's")
    func messagesAddressedToUser() async throws {
        try await withNodeProcess { node in
            let phone = try ChorusClient(url: SDKNode.url(node), token: node.token("alice"), configuration: SDKNode.configuration())
            let laptop = try ChorusClient(url: SDKNode.url(node), token: node.token("alice"), configuration: SDKNode.configuration())
            let bob = try ChorusClient(url: SDKNode.url(node), token: node.token("bob"), configuration: SDKNode.configuration())
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

    @Test("a message whose data or metadata holds a number no Double holds (1e400, 1e-400) still arrives: rawData exactly as published, that member null in the typed view and the other kept")
    func numbersPastDouble() async throws {
        try await withNodeProcess { node in
            let client = try ChorusClient(url: SDKNode.url(node), token: node.token("bob"), configuration: SDKNode.configuration())
            let subscription = try await client.subscribe("chat.huge")
            for body in [
                #"{"topic":"chat.huge","data":{"e":1e400,"z":-0,"tiny":1e-400},"metadata":{"m":-1e400}}"#,
                #"{"topic":"chat.huge","data":{"e":1e400},"metadata":{"k":"kept"}}"#,
                #"{"topic":"chat.huge","data":{"after":true}}"#,
            ] {
                let published = try await HTTP.post("\(node.baseURL)/api/publish", body: Data(body.utf8), headers: ["X-API-Key": Cluster.apiKey])
                #expect(published.status == 202, "\(published.text)")
            }
            var messages = subscription.makeAsyncIterator()
            let huge = try #require(await messages.next())
            #expect(huge.rawData == #"{"e":1e400,"z":-0,"tiny":1e-400}"#)
            #expect(huge.data == .null)
            // Only the member that holds such a number is null: the other one (here metadata,
            // with the senderId the node vouches for) is kept.
            let hugeData = try #require(await messages.next())
            #expect(hugeData.data == .null && hugeData.metadata["k"] == "kept", "\(hugeData.metadata)")
            #expect(try #require(await messages.next()).data == ["after": true])
            await client.close()
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
            let client = try ChorusClient(url: SDKNode.url(node), token: node.token("alice"), configuration: SDKNode.configuration())
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

    @Test("a publish is acknowledged by the node's published reply with its messageId, and a repeated messageId is a duplicate")
    func acknowledgedPublish() async throws {
        try await withNodeProcess { node in
            let client = try ChorusClient(url: SDKNode.url(node), token: node.token("alice"))
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
            let client = try ChorusClient(url: SDKNode.url(node), token: node.token("bob"), configuration: SDKNode.configuration())
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
            let client = try ChorusClient(url: SDKNode.url(node), token: node.token("alice"), configuration: SDKNode.configuration())
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

    @Test("on a topic without history, a messageId the node delivers again (a publish sent again, a retried post) reaches each subscription once")
    func repeatsWithoutHistory() async throws {
        try await withNodeProcess(["HISTORY_SIZE": "0"]) { node in
            let alice = try ChorusClient(url: SDKNode.url(node), token: node.token("alice"), configuration: SDKNode.configuration())
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
}
