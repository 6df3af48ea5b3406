import struct Broker.TopicPattern
import ChorusSDK
import Foundation
import Synchronization
import Node
import Testing
import TestSupport

/// Presence, typing and read receipts through the SDK, against a real node or a scripted one.
@Suite("Swift SDK against a node: presence, typing, receipts", .timeLimit(.minutes(2)))
struct SDKPresenceTests {
    @Test("presence: ending a topic's last join while a plain subscription of it stays leaves in place (the node says presenceLeave): no longer a member, no resync (no presence event was missed), and the subscription misses none of the messages published around it on a topic without history")
    func leaveInPlace() async throws {
        try await withNodeProcess(["HISTORY_TOPICS": "rooms.**"]) { node in
            let topic = "live.mixed"  // no history: nothing would bring back a message missed
            let client = try ChorusClient(url: SDKNode.url(node), token: node.token("vic"), configuration: SDKNode.configuration())
            let membership = try await client.join(topic, data: ["status": "here"])
            let plain = try await client.subscribe(topic)
            let publisher = try await node.connect(as: "pia")
            // The route is the node's own: a message published after `subscribed` reaches it.
            // 80, within the publisher's message rate (100 a second), each after the last's answer.
            for n in 0..<80 {
                _ = try await publisher.publishAcknowledged(topic: topic, data: ["n": n])
                if n == 20 { membership.cancel() }
            }
            var messages = plain.makeAsyncIterator()
            var got: [JSONValue] = []
            for _ in 0..<80 { got.append(try #require(await messages.next(), "after \(got.count)").data) }
            #expect(got == (0..<80).map { ["n": .integer(Int64($0))] }, "every message, once, in order")
            let left = await eventually(within: .seconds(20)) { (try? await client.members(topic))?.members.isEmpty == true }
            #expect(left, "no longer a member")
            // Still watching, and no event was missed: the events up to Pia's join hold no
            // resync (leaving by unsubscribing and subscribing again brings one).
            try await publisher.subscribe(topic, member: true, events: false)
            var events: [ChorusSDK.PresenceEvent] = []
            for await event in plain.presenceEvents {
                events.append(event)
                if event.kind == .join, event.member?.userId == "pia" { break }
            }
            #expect(!events.contains { $0.kind == .resync }, "\(events.map(\.kind))")
            await publisher.close()
            await client.close()
        }
    }

    @Test("presence against a node without presenceLeave (a scripted node): ending a topic's last join while a plain subscription stays unsubscribes and subscribes again without presence, and the subscription hears resync (events between may be missed)")
    func resyncAfterLastJoinEndsOnAnOlderNode() async throws {
        let scripted = try await SDKNode.scriptedNode("leave-first")
        defer { scripted.process.signal(SIGKILL) }
        let client = try ChorusClient(url: "ws://127.0.0.1:\(scripted.port)/ws", token: "any", configuration: SDKNode.configuration())
        let membership = try await client.join("rooms.mixed", data: ["status": "here"])
        let plain = try await client.subscribe("rooms.mixed")
        membership.cancel()
        let resync = try await withDeadline(.seconds(30), "the resync") { await first(in: plain.presenceEvents) { $0.kind == .resync } }
        #expect(resync?.topic == "rooms.mixed")
        await client.close()
        #expect(await scripted.process.wait(timeout: .seconds(30)) == 0, "\(scripted.process.output())")
        let output = scripted.process.output()
        #expect(output.hasSuffix("unsubscribe rooms.mixed\nsubscribe 2 True -\n"), "\(output)")
    }

    @Test("on a node that says presenceLeave, a join of a live topic and the last join's end are subscribes without since (no history read; the node keeps the subscription's messages), the end with presence:false (a scripted node)")
    func presenceChangesWithoutSince() async throws {
        let scripted = try await SDKNode.scriptedNode("leave-in-place")
        defer { scripted.process.signal(SIGKILL) }
        let client = try ChorusClient(url: "ws://127.0.0.1:\(scripted.port)/ws", token: "any", configuration: SDKNode.configuration())
        let plain = try await client.subscribe("rooms.mixed")
        let membership = try await client.join("rooms.mixed", data: ["status": "here"])
        membership.cancel()
        #expect(await eventually { scripted.process.output().contains("subscribe 3 ") })
        _ = plain
        await client.close()
        #expect(await scripted.process.wait(timeout: .seconds(30)) == 0, "\(scripted.process.output())")
        let output = scripted.process.output()
        #expect(output.hasSuffix("subscribe 1 False -\nsubscribe 2 False {\"data\": {\"status\": \"here\"}}\nsubscribe 3 False false\n"), "\(output)")
    }

    @Test("a join storm past a subscription's presence buffer: the oldest events are dropped and the subscriber hears resync after them, to read the list again (a scripted node)")
    func presenceOverflowResyncs() async throws {
        let scripted = try await SDKNode.scriptedNode("presence-storm")
        defer { scripted.process.signal(SIGKILL) }
        let client = try ChorusClient(url: "ws://127.0.0.1:\(scripted.port)/ws", token: "any", configuration: SDKNode.configuration())
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

    @Test("joining again with other data updates the member (one update, no leave); when that join ends the earlier data comes back")
    func presenceUpdateByJoin() async throws {
        try await withNodeProcess { node in
            let watcher = try ChorusClient(url: SDKNode.url(node), token: node.token("wes"), configuration: SDKNode.configuration())
            let watching = try await watcher.join("rooms.status", data: ["status": "watching"])
            let client = try ChorusClient(url: SDKNode.url(node), token: node.token("zoe"), configuration: SDKNode.configuration())
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

    @Test("a join with messages: false stays a member past messageBufferLimit unread messages of its topic; a join whose messages nobody reads ends after them (and leaves)")
    func joinWithoutMessages() async throws {
        try await withNodeProcess { node in
            var configuration = SDKNode.configuration()
            configuration.messageBufferLimit = 5
            let member = try ChorusClient(url: SDKNode.url(node), token: node.token("lena"), configuration: configuration)
            let events = await member.events()
            let presenceOnly = try await member.join("rooms.busy", data: ["status": "here"], messages: false)
            let unread = try await member.join("rooms.other", data: ["status": "here"])
            let publisher = try ChorusClient(url: SDKNode.url(node), token: node.token("max"))
            for n in 1...8 {
                try await publisher.publish("rooms.busy", ["n": .integer(Int64(n))])
                try await publisher.publish("rooms.other", ["n": .integer(Int64(n))])
            }
            let ended = await first(in: events) { if case .subscriptionEnded = $0 { true } else { false } }
            #expect(ended == .subscriptionEnded(topic: "rooms.other", error: .bufferOverflow(limit: 5)))
            let busy = try await publisher.members("rooms.busy")
            #expect(busy.members.map(\.userId) == ["lena"], "still a member of the topic held for presence")
            _ = presenceOnly
            _ = unread
            for client in [member, publisher] { await client.close() }
        }
    }

    @Test("new join data the node refuses (413, over PRESENCE_MAX_DATA_SIZE) ends the topic on the client and on the node: the user is no longer a member")
    func refusedJoinDataLeaves() async throws {
        try await withNodeProcess(["PRESENCE_MAX_DATA_SIZE": "64"]) { node in
            let member = try ChorusClient(url: SDKNode.url(node), token: node.token("nora"), configuration: SDKNode.configuration())
            let first = try await member.join("rooms.small", data: ["status": "here"])
            let watcher = try ChorusClient(url: SDKNode.url(node), token: node.token("otto"))
            #expect(try await watcher.members("rooms.small").members.map(\.userId) == ["nora"])
            await #expect(throws: ChorusError.self) {
                try await member.join("rooms.small", data: ["status": .string(String(repeating: "x", count: 200))])
            }
            let left = await eventually { (try? await watcher.members("rooms.small"))?.members.isEmpty == true }
            #expect(left, "the node let the membership go")
            _ = first
            for client in [member, watcher] { await client.close() }
        }
    }

    @Test("presence: a member joins with data, is listed by members(), others see the join, and cancelling leaves")
    func presence() async throws {
        try await withNodeProcess { node in
            let watcher = try ChorusClient(url: SDKNode.url(node), token: node.token("judy"))
            let watching = try await watcher.join("rooms.lobby", data: ["status": "here"])
            let client = try ChorusClient(url: SDKNode.url(node), token: node.token("ken"))
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
            let client = try ChorusClient(url: SDKNode.url(node), token: node.token("nora"))
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
            let watcher = try ChorusClient(url: SDKNode.url(node), token: node.token("oscar"))
            let watching = try await watcher.join("rooms.mixed", data: ["status": "watching"])
            let client = try ChorusClient(url: SDKNode.url(node), token: node.token("pia"))
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
                let client = try ChorusClient(url: SDKNode.url(node), token: node.token("m\(index)"))
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
            let client = try ChorusClient(url: SDKNode.url(node), token: node.token("olga"))
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
            let watcher = try ChorusClient(url: SDKNode.url(node), token: node.token("lena"))
            let watching = try await watcher.subscribe("rooms.lobby")
            let client = try ChorusClient(url: SDKNode.url(node), token: node.token("mike"))
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

    @Test("a typing the token may not publish is refused (403) without ending the subscription: the topic's messages keep arriving")
    func typingRefusedKeepsSubscription() async throws {
        try await withNodeProcess { node in
            let grants = Grants(subscribe: [try TopicPattern("rooms.**")], publish: [try TopicPattern("rooms.chat")])
            let token = TokenMinter(secret: Array(Cluster.secret.utf8)).mint(subject: "kim", ttl: .seconds(3600), grants: grants)
            let client = try ChorusClient(url: SDKNode.url(node), token: token, configuration: SDKNode.configuration())
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
            let publisher = try ChorusClient(url: SDKNode.url(node), token: node.token("lee"), configuration: SDKNode.configuration())
            try await publisher.publish("rooms.announce", "still subscribed")
            var messages = subscription.makeAsyncIterator()
            #expect(await messages.next()?.data == "still subscribed")
            await publisher.close()
            await client.close()
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
            let client = try ChorusClient(url: SDKNode.url(node), token: node.token("oscar"), configuration: SDKNode.configuration())
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

    @Test("a join of a live topic dropped past the node's message rate (429 with retryAfter) is sent again and returns (a scripted node)")
    func joinOfLiveTopicRetried() async throws {
        let scripted = try await SDKNode.scriptedNode("join-refused")
        defer { scripted.process.signal(SIGKILL) }
        let client = try ChorusClient(url: "ws://127.0.0.1:\(scripted.port)/ws", token: "any", configuration: SDKNode.configuration())
        let plain = try await client.subscribe("rooms.a")
        let membership = try await withDeadline(.seconds(20), "the join, sent again after the 429") {
            try await client.join("rooms.a", data: ["status": "here"])
        }
        _ = (plain, membership)
        await client.close()
        #expect(await scripted.process.wait(timeout: .seconds(30)) == 0, "\(scripted.process.output())")
        #expect(scripted.process.output().contains("subscribe 3 True"), "the join went again: \(scripted.process.output())")
    }
}
