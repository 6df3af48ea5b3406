import Broker
import ChorusClient
import Foundation
@testable import Node
import Testing
import TestSupport

/// Presence and typing on one node with the memory adapter (the node is the whole cluster),
/// and the rules that guard them. The cluster's side is in ClusterTests' PresenceTests.
@Suite("Presence and typing on one node")
struct PresenceTests {
    static let environment = ["API_KEY": "presence-test-key"]

    @Test("memory adapter: a user with two connections joins once and leaves once; presence.get and the HTTP API agree")
    func membersOnOneNode() async throws {
        try await withNode(Self.environment) { node in
            let topic = "rooms.lobby"
            let watcher = try await node.connect(as: "watcher")
            try await watcher.subscribe(topic, member: false, events: true)
            let alice1 = try await node.connect(as: "alice")
            try await alice1.subscribe(topic, member: true, data: ["status": "available"], events: false)
            let join = try await watcher.nextPresence()
            #expect(join.event == "join" && join.userId == "alice" && join.status == "available")
            let alice2 = try await node.connect(as: "alice")
            try await alice2.subscribe(topic, member: true, events: false)
            let bob = try await node.connect(as: "bob")
            try await bob.subscribe(topic, member: true, events: true)
            #expect(try await watcher.nextPresence().userId == "bob", "no second join for alice")

            let state = try await watcher.presenceState(topic)
            #expect(state.connections == ["alice": 2, "bob": 1] && state.count == 2 && state.scope == nil)
            let key = ["X-API-Key": "presence-test-key"]
            let http = try await HTTP.get("\(node.baseURL)/api/presence/\(topic)", headers: key)
            #expect(http.status == 200)
            let members = try http.json()["members"] as? [[String: Any]] ?? []
            #expect(members.map { $0["userId"] as? String } == ["alice", "bob"])
            #expect((members.first?["data"] as? [String: Any])?["status"] as? String == "available")
            #expect(try await HTTP.get("\(node.baseURL)/api/presence/\(topic)?countOnly=true", headers: key).json()["count"] as? Int == 2)
            let online = try await HTTP.get("\(node.baseURL)/api/users/alice/presence", headers: key).json()
            #expect(online["online"] as? Bool == true)
            let stats = try await HTTP.get("\(node.baseURL)/stats").json()["presence"] as? [String: Any] ?? [:]
            #expect(stats["memberships"] as? Int == 2 && stats["topics"] as? Int == 1)
            #expect((stats["topTopics"] as? [[String: Any]])?.first?["members"] as? Int == 2)
            #expect((stats["store"] as? [String: Any])?["eventsPublished"] as? Int ?? 0 >= 2)

            await alice1.close()
            try await bob.subscribe(topic, member: true, data: ["status": "fence"], events: false)
            let fence = try await watcher.nextPresence()
            #expect(fence.event == "update" && fence.userId == "bob", "alice keeps her second connection: \(fence)")
            await alice2.close()
            let leave = try await watcher.nextPresence()
            #expect(leave.event == "leave" && leave.userId == "alice")
            let offline = try await HTTP.get("\(node.baseURL)/api/users/alice/presence", headers: key).json()
            #expect(offline["online"] as? Bool == false)
            #expect(offline["lastSeenAt"] as? String != nil)
        }
    }

    @Test("subscribe with presence:false on a subscribed topic ends the membership (watchers see one leave) and presenceEvents:false the events, while the subscription goes on: no message published around it is missed; auth_success says the node does this (presenceLeave)")
    func leaveInPlace() async throws {
        try await withNode(Self.environment) { node in
            let topic = "rooms.stay"
            let raw = try await node.connect()
            let success = try await raw.request(["type": "auth", "token": node.token("carol")])
            #expect(success["type"] as? String == "auth_success" && success["presenceLeave"] as? Bool == true, "\(success)")
            let watcher = try await node.connect(as: "watcher")
            try await watcher.subscribe(topic, member: false, events: true)
            let alice = try await node.connect(as: "alice")
            try await alice.subscribe(topic, member: true, events: true)
            #expect(try await watcher.nextPresence().event == "join")
            #expect(try await alice.nextPresence().userId == "alice", "her own join, watched")

            // Alice stops being a member and watching, between two runs of messages.
            let publisher = try await node.connect(as: "publisher")
            for seq in 1...10 { try await publisher.publish(topic: topic, data: ["seq": seq]) }
            try await alice.send(json: ["type": "subscribe", "topic": topic, "presence": false, "presenceEvents": false, "id": "leave"])
            for seq in 11...20 { try await publisher.publish(topic: topic, data: ["seq": seq]) }
            var seqs: [Int] = []
            var others: [String] = []
            // The answer may come after the last message: those published before the node read
            // the position are written ahead of it.
            var answered = false
            while seqs.last != 20 || !answered {
                let frame = try await alice.nextJSON()
                if frame["type"] as? String == "message", let seq = (frame["data"] as? [String: Any])?["seq"] as? Int {
                    seqs.append(seq)
                } else if frame["type"] as? String == "subscribed" && frame["id"] as? String == "leave" {
                    answered = true
                } else {
                    others.append("\(frame)")
                }
            }
            #expect(seqs == Array(1...20), "every message, once, in order")
            #expect(others.isEmpty, "nothing but the messages and the subscribe's answer: \(others)")
            let leave = try await watcher.nextPresence()
            #expect(leave.event == "leave" && leave.userId == "alice", "\(leave)")

            // No longer watching: Bob's join reaches the watcher, not Alice.
            let bob = try await node.connect(as: "bob")
            try await bob.subscribe(topic, member: true, events: false)
            let join = try await watcher.nextPresence()
            #expect(join.event == "join" && join.userId == "bob", "\(join)")
            let marker = try await publisher.publishMarker(topic: topic)
            let extra = try await alice.messages(before: marker)
            #expect(extra.isEmpty, "no presence event for Alice: \(extra)")
            #expect(try await watcher.presenceState(topic).connections == ["bob": 1])

            // On a pattern, or a topic not subscribed yet, presence:false asks nothing.
            try await alice.send(json: ["type": "subscribe", "topic": "rooms.*", "presence": false, "id": "pattern"])
            let answer = try await alice.next(type: "subscribed")
            #expect(answer["id"] as? String == "pattern", "\(answer)")
        }
    }

    @Test("with PRESENCE_RECONNECT_GRACE a member whose connection ends silently and who comes back within it neither leaves nor joins for watchers; one who does not come back leaves after it")
    func reconnectGrace() async throws {
        try await withNode(["PRESENCE_RECONNECT_GRACE": "10000"]) { node in
            let topic = "rooms.flaky"
            let watcher = try await node.connect(as: "watcher")
            try await watcher.subscribe(topic, member: false, events: true)
            let alice = try await node.connect(as: "alice")
            try await alice.subscribe(topic, member: true, events: false)
            let joined = try await watcher.nextPresence()
            #expect(joined.event == "join" && joined.userId == "alice")

            // Alice's network drops (no close frame) and she is back within the grace.
            await alice.drop()
            let back = try await node.connect(as: "alice")
            try await back.subscribe(topic, member: true, events: false)
            let bob = try await node.connect(as: "bob")
            try await bob.subscribe(topic, member: true, events: false)
            let fence = try await watcher.nextPresence()
            #expect(fence.event == "join" && fence.userId == "bob", "no leave or join of alice before bob's join: \(fence)")

            // Bob's drops and he does not come back: he leaves once the grace is over.
            await bob.drop()
            let left = try await watcher.nextPresence()
            #expect(left.event == "leave" && left.userId == "bob", "\(left)")
            #expect(try await watcher.presenceState(topic).connections == ["alice": 1])
            await back.close()
        }
    }

    @Test("PRESENCE_RECONNECT_GRACE holds the leaves of at most 8 dropped connections per user: the 9th leaves at once (a client dropping connections in a loop cannot keep shares alive without bound)")
    func reconnectGraceIsBoundedPerUser() async throws {
        try await withNode(["PRESENCE_RECONNECT_GRACE": "600000"]) { node in
            let topics = (1...9).map { "rooms.cap-\($0)" }
            let watcher = try await node.connect(as: "watcher")
            for topic in topics { try await watcher.subscribe(topic, member: false, events: true) }
            var connections: [WebSocketClient] = []
            for topic in topics {
                let connection = try await node.connect(as: "mallory")
                try await connection.subscribe(topic, member: true, events: false)
                #expect(try await watcher.nextPresence().event == "join")
                connections.append(connection)
            }
            for connection in connections { await connection.drop() }
            // Eight wait ten minutes: one leaves at once. Which one is the node's order of the
            // closes, which two event loops may take in any order.
            let left = try await watcher.nextPresence()
            #expect(left.event == "leave" && topics.contains(left.topic), "\(left)")
            // The next event is a later join, not a second leave.
            let fence = try await node.connect(as: "fence")
            try await fence.subscribe(left.topic, member: true, events: false)
            let next = try await watcher.nextPresence()
            #expect(next.event == "join" && next.userId == "fence", "one leave only: \(next)")
        }
    }

    @Test("with PRESENCE_RECONNECT_GRACE a member whose client closes with a close frame (it is leaving) leaves at once, not after the grace")
    func closeFrameLeavesAtOnce() async throws {
        try await withNode(["PRESENCE_RECONNECT_GRACE": "600000"]) { node in
            let topic = "rooms.clean"
            let watcher = try await node.connect(as: "watcher")
            try await watcher.subscribe(topic, member: false, events: true)
            let alice = try await node.connect(as: "alice")
            try await alice.subscribe(topic, member: true, events: false)
            #expect(try await watcher.nextPresence().event == "join")
            await alice.close()
            // Within the default 30 s wait: a held leave would come after 10 minutes.
            let left = try await watcher.nextPresence()
            #expect(left.event == "leave" && left.userId == "alice", "\(left)")
        }
    }

    @Test("presence follows the topic's subscribe rules: private topics and other users' online topics are refused")
    func authorization() async throws {
        try await withNode(Self.environment) { node in
            let bob = try await node.connect(as: "bob")
            try await bob.send(json: ["type": "subscribe", "topic": "messages.user.alice", "presence": [:], "id": 1])
            var reply = try await bob.nextJSON()
            #expect(reply["type"] as? String == "error" && reply["code"] as? Int == 403)
            try await bob.send(json: ["type": "presence.get", "topic": "messages.user.alice", "id": 2])
            reply = try await bob.nextJSON()
            #expect(reply["type"] as? String == "error" && reply["code"] as? Int == 403)
            try await bob.send(json: ["type": "subscribe", "topic": "presence.user.alice", "presenceEvents": true, "id": 3])
            reply = try await bob.nextJSON()
            #expect(reply["type"] as? String == "error" && reply["code"] as? Int == 403, "alice's online state is hers: \(reply)")
            try await bob.send(json: ["type": "typing", "topic": "messages.user.alice", "state": "start", "id": 4])
            reply = try await bob.nextJSON()
            #expect(reply["type"] as? String == "error" && reply["code"] as? Int == 403)
            let bobToken = ["Authorization": "Bearer \(node.token("bob"))"]
            #expect(try await HTTP.get("\(node.baseURL)/api/users/alice/presence", headers: bobToken).status == 403)
            #expect(try await HTTP.get("\(node.baseURL)/api/presence/messages.user.alice", headers: bobToken).status == 403)
            #expect(try await HTTP.get("\(node.baseURL)/api/presence/rooms.lobby").status == 401)

            // Presence needs a concrete topic, and data within PRESENCE_MAX_DATA_SIZE.
            try await bob.send(json: ["type": "subscribe", "topic": "rooms.*", "presence": [:], "id": 5])
            reply = try await bob.nextJSON()
            #expect(reply["code"] as? Int == 400)
            try await bob.send(json: [
                "type": "subscribe", "topic": "rooms.big", "presence": ["data": ["blob": String(repeating: "x", count: 5000)]], "id": 6,
            ])
            reply = try await bob.nextJSON()
            #expect(reply["code"] as? Int == 413)

            // A contact with a grant sees alice go online and offline.
            let contact = try await WebSocketClient.connect(port: node.port)
            let token = node.token("carol", grants: .init(subscribe: [try .init("presence.user.alice")], publish: []))
            try await contact.send(json: ["type": "auth", "token": token])
            _ = try await contact.next(type: "auth_success")
            try await contact.subscribe("presence.user.alice", member: false, events: true)
            let alice = try await node.connect(as: "alice")
            let online = try await contact.nextPresence()
            #expect(online.event == "join" && online.userId == "alice")
            await alice.close()
            #expect(try await contact.nextPresence().event == "leave")
        }
    }

    @Test("typing: one start per second reaches the others (never the typist's devices), and a stop follows after TYPING_TIMEOUT")
    func typingCoalescedAndTimedOut() async throws {
        try await withNode(["TYPING_TIMEOUT": "1000"]) { node in
            let topic = "rooms.typing"
            let alice = try await node.connect(as: "alice")
            let aliceTablet = try await node.connect(as: "alice")
            let bob = try await node.connect(as: "bob")
            for client in [alice, aliceTablet, bob] { try await client.subscribe(topic) }
            for _ in 0..<5 { try await alice.typing(topic, "start") }
            let start = try await bob.next(type: "typing")
            #expect(start["userId"] as? String == "alice" && start["state"] as? String == "start")
            #expect(start["timestamp"] as? String != nil)
            let stop = try await bob.nextJSON(timeout: .seconds(30))
            #expect(stop["type"] as? String == "typing" && stop["state"] as? String == "stop", "the starts after the first were coalesced: \(stop)")

            try await bob.publish(topic: topic, data: ["fence": true])
            let first = try await aliceTablet.nextJSON()
            #expect(first["type"] as? String == "message", "alice's own devices get no typing: \(first)")
        }
    }

    /// A typing start for a new topic from `client`: nil when accepted (no reply; the ping
    /// after it answers), else the error's code.
    private static func typingRefusal(_ client: WebSocketClient, _ topic: String) async throws -> Int? {
        try await client.send(json: ["type": "typing", "topic": topic, "state": "start", "id": "t"])
        let reply = try await client.request(["type": "ping", "id": "p"])
        if reply["type"] as? String == "pong" { return nil }
        _ = try await client.next(type: "pong")
        return reply["code"] as? Int
    }

    @Test("presence changes are 10 a second per connection in bursts of 20: of 30 joins sent at once, the burst and what the budget refilled meanwhile are taken, the rest answered 429 with retryAfter and limit; the connection's other requests are not held back, and leaving is never refused")
    func presenceChangesBounded() async throws {
        try await withNode([:]) { node in
            let alice = try await node.connect(as: "alice")
            let started = ContinuousClock.now
            for n in 0..<30 {
                try await alice.send(json: ["type": "subscribe", "topic": "rooms.p\(n)", "presence": ["data": ["n": n]], "id": "j\(n)"])
            }
            var joined = 0
            var refused = 0
            while joined + refused < 30 {
                let reply = try await alice.nextJSON()
                if reply["type"] as? String == "subscribed" { joined += 1 }
                if reply["type"] as? String == "error" {
                    let details = reply["details"] as? [String: Any]
                    #expect(reply["code"] as? Int == 429 && details?["retryAfter"] as? Int != nil && details?["limit"] as? Int == 10, "\(reply)")
                    refused += 1
                }
            }
            // The budget refills 10 a second: what it may have taken besides the burst depends on
            // how long the 30 took on this machine, not on a guess of it.
            let elapsed = ContinuousClock.now - started
            let refill = Int((elapsed / .seconds(1)) * 10) + 1
            #expect(joined >= 20 && joined <= 20 + refill, "joins taken: \(joined) of 30 in \(elapsed) (a burst of 20, 10 more a second)")
            if refill < 10 { #expect(refused > 0, "past the burst and its refill, refused") }
            #expect(try await alice.request(["type": "ping", "id": "p"])["type"] as? String == "pong", "other requests pass")
            for n in 0..<30 { try await alice.send(json: ["type": "unsubscribe", "topic": "rooms.p\(n)", "id": "u\(n)"]) }
            var left = 0
            while left < 30 {
                let reply = try await alice.nextJSON()
                try #require(reply["type"] as? String != "error", "an unsubscribe refused: \(reply)")
                if reply["type"] as? String == "unsubscribed" { left += 1 }
            }

            let bob = try await node.connect(as: "bob")
            for n in 0..<30 { try await bob.send(json: ["type": "subscribe", "topic": "rooms.s\(n)", "id": "s\(n)"]) }
            var subscribed = 0
            while subscribed < 30 {
                let reply = try await bob.nextJSON()
                try #require(reply["type"] as? String != "error", "a plain subscribe refused: \(reply)")
                if reply["type"] as? String == "subscribed" { subscribed += 1 }
            }
        }
    }

    @Test("typing in more topics at once than a connection may hold: 429 past 32, until a stop")
    func typingTopicsBounded() async throws {
        try await withNode(["TYPING_TIMEOUT": "600000"]) { node in
            let alice = try await node.connect(as: "alice")
            for n in 0..<SessionPresence.maxTypingTopics { try await alice.typing("rooms.t\(n)", "start") }
            #expect(try await Self.typingRefusal(alice, "rooms.extra-1") == 429, "the 33rd topic")
            #expect(try await Self.typingRefusal(alice, "rooms.t5") == nil, "a topic it is typing in already")
            try await alice.typing("rooms.t1", "stop")
            #expect(try await Self.typingRefusal(alice, "rooms.extra-1") == nil, "after a stop")
            #expect(try await Self.typingRefusal(alice, "rooms.extra-2") == 429)
        }
    }

    @Test("a typing topic whose start timed out frees its place among the 32")
    func typingTopicTimedOut() async throws {
        try await withNode(["TYPING_TIMEOUT": "1000"]) { node in
            let alice = try await node.connect(as: "alice")
            let bob = try await node.connect(as: "bob")
            try await bob.subscribe("rooms.t0")
            try await alice.typing("rooms.t0", "start")
            #expect(try await bob.next(type: "typing")["state"] as? String == "start")
            for n in 1..<SessionPresence.maxTypingTopics { try await alice.typing("rooms.t\(n)", "start") }
            // rooms.t0's start times out (bob is shown the node's stop): its place is free again.
            #expect(try await bob.next(type: "typing", timeout: .seconds(30))["state"] as? String == "stop")
            #expect(try await Self.typingRefusal(alice, "rooms.extra") == nil)
        }
    }

    @Test("typing: a typist that disconnects ends with a stop at once")
    func typingStopsOnDisconnect() async throws {
        try await withNode(["TYPING_TIMEOUT": "600000"]) { node in
            let topic = "rooms.typing"
            let alice = try await node.connect(as: "alice")
            let bob = try await node.connect(as: "bob")
            for client in [alice, bob] { try await client.subscribe(topic) }
            try await alice.typing(topic, "start")
            #expect(try await bob.next(type: "typing")["state"] as? String == "start")
            await alice.close()
            let stop = try await bob.next(type: "typing", timeout: .seconds(30))
            #expect(stop["state"] as? String == "stop" && stop["userId"] as? String == "alice")
        }
    }

    @Test("a join storm past PRESENCE_BATCH_RATE arrives batched: fewer frames, every join once, in order")
    func stormIsBatched() async throws {
        try await withNode(["PRESENCE_BATCH_RATE": "2"]) { node in
            let topic = "rooms.storm"
            let watcher = try await node.connect(as: "watcher")
            try await watcher.subscribe(topic, member: false, events: true)
            let users = (0..<30).map { "user-\($0)" }
            var clients: [WebSocketClient] = []
            for user in users {
                let client = try await node.connect(as: user)
                try await client.subscribe(topic, member: true, events: false)
                clients.append(client)
            }
            var joined: [String] = []
            var frames = 0
            var batches = 0
            while joined.count < users.count {
                let message = try await watcher.next(type: "presence", timeout: .seconds(30))
                frames += 1
                if message["event"] as? String == "batch" {
                    batches += 1
                    for event in message["events"] as? [[String: Any]] ?? [] {
                        #expect(event["event"] as? String == "join" && event["timestamp"] as? String != nil)
                        joined.append((event["member"] as? [String: Any])?["userId"] as? String ?? "?")
                    }
                } else {
                    #expect(message["event"] as? String == "join")
                    joined.append((message["member"] as? [String: Any])?["userId"] as? String ?? "?")
                }
            }
            #expect(joined == users, "each join once, in the order they happened")
            #expect(batches > 0 && frames < users.count, "\(frames) frames, \(batches) batches")
        }
    }

    @Test("a room's member list stops at a page: presence.get at a quarter of WEBSOCKET_MAX_PENDING_BYTES with truncated:true and the full count, and the connection stays open; both lists continue with after")
    func memberListsBounded() async throws {
        try await withNode(Self.environment.merging(["WEBSOCKET_MAX_PENDING_BYTES": "65536"]) { $1 }) { node in
            let topic = "rooms.big"
            let blob = String(repeating: "x", count: 3_000)
            var members: [WebSocketClient] = []
            for index in 1...8 {
                let member = try await node.connect(as: "u\(index)")
                try await member.subscribe(topic, member: true, data: ["blob": blob], events: false)
                members.append(member)
            }
            let reader = try await node.connect(as: "reader")
            try await reader.send(json: ["type": "presence.get", "topic": topic, "id": 1])
            let state = try await reader.next(type: "presence.state")
            let listed = try #require(state["members"] as? [[String: Any]])
            #expect(state["count"] as? Int == 8 && state["truncated"] as? Bool == true)
            #expect((1...5).contains(listed.count), "about 16 KiB of 3 KB members: \(listed.count)")
            #expect(try await reader.request(["type": "ping", "id": 2])["type"] as? String == "pong", "the reader is still connected")
            // The rest, page by page with after: every member once, in order.
            var seen = listed.compactMap { $0["userId"] as? String }
            var pages = 1
            while pages < 10, let last = seen.last {
                try await reader.send(json: ["type": "presence.get", "topic": topic, "after": last, "id": 10 + pages])
                let page = try await reader.next(type: "presence.state")
                seen += (page["members"] as? [[String: Any]] ?? []).compactMap { $0["userId"] as? String }
                pages += 1
                if page["truncated"] as? Bool != true { break }
            }
            #expect(seen == (1...8).map { "u\($0)" } && pages > 1)

            let key = ["X-API-Key": "presence-test-key"]
            let all = try await HTTP.get("\(node.baseURL)/api/presence/\(topic)", headers: key).json()
            #expect((all["members"] as? [[String: Any]])?.count == 8 && all["truncated"] == nil, "8 x 3 KB fit in an HTTP page")
            let rest = try await HTTP.get("\(node.baseURL)/api/presence/\(topic)?after=u3", headers: key).json()
            #expect((rest["members"] as? [[String: Any]])?.compactMap { $0["userId"] as? String } == ["u4", "u5", "u6", "u7", "u8"])
            #expect(rest["count"] as? Int == 8)
            for member in members { await member.close() }
        }
    }

    @Test("decoding: presence fields, presence.get and typing")
    func decoding() throws {
        let subscribe = try ClientMessage.decode(Array(#"{"type":"subscribe","topic":"a.b","presence":{"data":{"s":1}},"presenceEvents":true}"#.utf8))
        #expect(subscribe.presence?.member == true && subscribe.presence?.events == true)
        #expect(subscribe.presence?.data?.description == #"{"s":1}"#)
        #expect(try ClientMessage.decode(Array(#"{"type":"subscribe","topic":"a.b"}"#.utf8)).presence == nil)
        #expect(try ClientMessage.decode(Array(#"{"type":"presence.get","topic":"a.b","id":7}"#.utf8)).kind == .presenceGet(try Topic("a.b"), after: nil))
        #expect(try ClientMessage.decode(Array(#"{"type":"presence.get","topic":"a.b","after":"u3"}"#.utf8)).kind == .presenceGet(try Topic("a.b"), after: "u3"))
        #expect(try ClientMessage.decode(Array(#"{"type":"typing","topic":"a.b","state":"stop"}"#.utf8)).kind == .typing(try Topic("a.b"), start: false))
        #expect(throws: ClientMessageError.self) { try ClientMessage.decode(Array(#"{"type":"typing","topic":"a.b","state":"maybe"}"#.utf8)) }
        #expect(throws: ClientMessageError.self) { try ClientMessage.decode(Array(#"{"type":"subscribe","topic":"a.b","presence":5}"#.utf8)) }
    }
}
