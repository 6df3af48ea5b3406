import Foundation
import Testing

@testable import Broker

/// One node cut off from Redis while the others are not: what it publishes meanwhile reaches its
/// own subscribers only. Once back, it announces each channel it published on, and the other
/// nodes hear which topics and users missed messages (``PeerGap``).
@Suite("Redis adapter: gaps another node announces")
struct RedisPeerGapTests {
    @Test("a node cut off from Redis announces, once back, the topics and users it published to meanwhile; the other node hears them, the node itself does not, and no announcement is delivered as a message")
    func partitionedNodeAnnounces() async throws {
        try await RedisTest.withServers { servers in
            let proxy = try await RedisFaultProxy.start(to: servers[0].url)
            defer { Task { await proxy.stop() } }
            let a = RedisTestNode("a", urls: [proxy.url], timeout: .seconds(10))
            let b = RedisTestNode("b", urls: [servers[0].url])
            try await RedisTest.shuttingDown([a, b]) {
                for node in [a, b] { node.subscribe(RedisTest.topic("part.t"), .user("u1"), RedisTest.pattern("part.*")) }
                try await RedisTest.settle([a, b])

                // Node a alone loses Redis: its connections are cut and refused.
                for name in ["chorus:a:pub", "chorus:a:sub"] {
                    proxy.refuse(clientNamed: name)
                    proxy.cut(clientNamed: name)
                }
                #expect(await RedisTest.eventually { a.status.state == .fallback })
                let lost = [a.publish(topic: "part.t"), a.publish(topic: nil, userId: "u1"), a.publish(topic: "part.t")]
                #expect(await RedisTest.eventually { a.ids().count == 3 }, "delivered on node a")
                #expect(b.ids().isEmpty, "node b cannot have them")
                #expect(b.peerGaps.isEmpty, "nothing announced while cut off")

                for name in ["chorus:a:pub", "chorus:a:sub"] { proxy.admit(clientNamed: name) }
                #expect(await RedisTest.eventually { !b.peerGaps.isEmpty })
                let heard = b.peerGaps.reduce(into: PeerGap()) { $0.formUnion($1) }
                #expect(heard == PeerGap(topics: [try Topic("part.t")], users: ["u1"], origins: ["a"]))

                // Later messages flow as usual; announcements never arrive as messages.
                try await RedisTest.settle([a, b])
                let after = a.publish(topic: "part.t")
                #expect(await RedisTest.eventually { b.ids() == [after.id] })
                // (Node a hears its own message from Redis independently of b.)
                #expect(await RedisTest.eventually { a.ids().count > lost.count })
                #expect(a.ids() == lost.map(\.id) + [after.id], "node a: its own messages once, no announcement")
                #expect(a.peerGaps.isEmpty, "a node ignores its own announcements")
                #expect(b.envelopes.allSatisfy { $0.kind == nil })
            }
        }
    }

    @Test("what a node publishes while it first connects (Redis unreachable at its start) is announced once it connects")
    func publishedWhileConnecting() async throws {
        try await RedisTest.withServers { servers in
            let proxy = try await RedisFaultProxy.start(to: servers[0].url)
            defer { Task { await proxy.stop() } }
            let b = RedisTestNode("b", urls: [servers[0].url])
            // Node a's first connections stall (a slow start of Redis, say): it stays connecting.
            for name in ["chorus:a:pub", "chorus:a:sub"] { proxy.stall(clientNamed: name) }
            let a = RedisTestNode("a", urls: [proxy.url], timeout: .seconds(30))
            try await RedisTest.shuttingDown([a, b]) {
                b.subscribe(RedisTest.topic("start.t"))
                try await RedisTest.settle([b])
                #expect(await RedisTest.eventually { proxy.count(clientNamed: "chorus:a:sub") == 1 })
                a.publish(topic: "start.t")
                #expect(await RedisTest.eventually { a.ids().count == 1 }, "delivered on node a alone")
                #expect(a.status.state == .connecting)
                for name in ["chorus:a:pub", "chorus:a:sub"] { proxy.release(clientNamed: name) }
                #expect(await RedisTest.eventually { !b.peerGaps.isEmpty })
                #expect(b.peerGaps == [PeerGap(topics: [try Topic("start.t")], origins: ["a"])])
            }
        }
    }

    @Test("a node that came back from its own fallback after another node's last publish there hears no announcement of it (its own notice covered it); a publish after its return is announced")
    func announcementCoveredByOwnReturn() async throws {
        try await RedisTest.withServers { servers in
            let proxy = try await RedisFaultProxy.start(to: servers[0].url)
            defer { Task { await proxy.stop() } }
            let a = RedisTestNode("a", urls: [proxy.url], timeout: .seconds(10))
            let b = RedisTestNode("b", urls: [proxy.url], timeout: .seconds(10))
            let names = ["a", "b"].flatMap { ["chorus:\($0):pub", "chorus:\($0):sub"] }
            try await RedisTest.shuttingDown([a, b]) {
                for node in [a, b] { node.subscribe(RedisTest.pattern("cover.*")) }
                try await RedisTest.settle([a, b])

                // Redis lost by both (a restart, say).
                for name in names {
                    proxy.refuse(clientNamed: name)
                    proxy.cut(clientNamed: name)
                }
                #expect(await RedisTest.eventually { a.status.state == .fallback && b.status.state == .fallback })
                a.publish(topic: "cover.early")
                #expect(await RedisTest.eventually { a.ids().count == 1 })
                // Time passes before node b is back, as it does when a publish comes long before
                // the return: more than the announcement will take to reach node b, which would
                // make the publish look later than it was (and keep the notice).
                try await Task.sleep(for: .seconds(3))
                for name in names where name.hasPrefix("chorus:b") { proxy.admit(clientNamed: name) }
                #expect(await RedisTest.eventually { b.status.state == .connected })
                a.publish(topic: "cover.late")  // after node b's own notice: it needs node a's
                #expect(await RedisTest.eventually { a.ids().count == 2 })
                for name in names where name.hasPrefix("chorus:a") { proxy.admit(clientNamed: name) }

                #expect(await RedisTest.eventually { !b.peerGaps.isEmpty })
                try await RedisTest.settle([a, b])
                let after = a.publish(topic: "cover.after")  // behind the announcements
                #expect(await RedisTest.eventually { b.ids().contains(after.id) })
                #expect(b.peerGaps == [PeerGap(topics: [try Topic("cover.late")], origins: ["a"])])
            }
        }
    }

    @Test("what a node records in fallback: one announcement per channel of a message, none for presence or typing, at most the limit")
    func fallbackChannels() throws {
        func outgoing(_ channel: String, topic: String? = nil, userId: String? = nil, kind: Envelope.Kind? = nil) throws -> RedisOutgoing {
            var envelope = Envelope(id: UUID().uuidString, origin: "a", topic: try topic.map { try Topic($0) }, userId: userId, data: .null)
            envelope.kind = kind
            return RedisOutgoing(channel: channel, envelope: envelope, payload: [])
        }
        var recorded = RedisFallbackChannels(limit: 3)
        recorded.record(try outgoing("p:t1", topic: "t1"))
        recorded.record(try outgoing("p:t1", topic: "t1"))
        recorded.record(try outgoing("p:t2", topic: "t2", kind: .presence))
        recorded.record(try outgoing("p:t3", topic: "t3", kind: .typing))
        recorded.record(try outgoing("p:@user:u", topic: "label", userId: "u"))
        recorded.record(try outgoing("p:t4", topic: "t4", kind: .gap))
        recorded.record(try outgoing("p:t5", topic: "t5"))
        recorded.record(try outgoing("p:t6", topic: "t6"))

        let later = Envelope(id: "late", origin: "a", topic: try Topic("t1"), data: .null, timestamp: Date().addingTimeInterval(60))
        recorded.record(RedisOutgoing(channel: "p:t1", envelope: later, payload: []))

        // Taken an hour after the last message on t1: its age, in milliseconds.
        let (announcements, unannounced) = recorded.takeAnnouncements(origin: "a", now: later.timestamp.addingTimeInterval(3_600))
        #expect(announcements.first { $0.channel == "p:t1" }?.envelope.data == RawJSON(.object(["ago": .number(JSONNumber(3_600_000))])))
        #expect(unannounced == 2, "t5 and t6 are past the limit of 3 channels")
        #expect(Set(announcements.map(\.channel)) == ["p:t1", "p:@user:u", "p:t4"])
        #expect(announcements.allSatisfy { $0.envelope.kind == .gap && $0.envelope.origin == "a" })
        #expect(Set(announcements.map(\.envelope.id)).count == 3, "unique ids")
        let user = try #require(announcements.first { $0.channel == "p:@user:u" })
        #expect(user.envelope.userId == "u" && user.envelope.topic == nil, "a user's channel is announced for the user")
        #expect(PeerGap(announcements: announcements.map(\.envelope)) == PeerGap(topics: [try Topic("t1"), try Topic("t4")], users: ["u"], origins: ["a"]))
        for announcement in announcements {
            let decoded = try EnvelopeCodec.decode(announcement.payload)  // the timestamp in milliseconds
            #expect(
                decoded.kind == .gap && decoded.id == announcement.envelope.id && decoded.topic == announcement.envelope.topic
                    && decoded.userId == announcement.envelope.userId, "travels as an envelope")
        }
        #expect(recorded.isEmpty, "taken")
    }

    @Test("an announcement is covered by the receiver's own return when its last message, placed on the receiver's clock by its age, came before that return")
    func coveredByOwnNotice() throws {
        let now = Date()
        func announcement(ago: Int?) throws -> Envelope {
            var envelope = Envelope(
                id: "x", origin: "a", topic: try Topic("t"), data: ago.map { RawJSON(.object(["ago": .number(JSONNumber($0))])) } ?? .null)
            envelope.kind = .gap
            return envelope
        }
        let returned = now.addingTimeInterval(-2)
        #expect(RedisServerLink.coveredByOwnNotice(try announcement(ago: 3_000), receivedAt: now, returnedAt: returned))
        #expect(!RedisServerLink.coveredByOwnNotice(try announcement(ago: 1_000), receivedAt: now, returnedAt: returned), "published after the return")
        #expect(!RedisServerLink.coveredByOwnNotice(try announcement(ago: 3_000), receivedAt: now, returnedAt: nil), "never fell back")
        #expect(!RedisServerLink.coveredByOwnNotice(try announcement(ago: nil), receivedAt: now, returnedAt: returned), "no age: kept")
        // The announcement's own timestamp (the sender's clock, maybe far off) plays no part.
        var skewed = try announcement(ago: 1_000)
        skewed.timestamp = now.addingTimeInterval(-3_600)
        #expect(!RedisServerLink.coveredByOwnNotice(skewed, receivedAt: now, returnedAt: returned))
    }

    @Test("a peer gap affects the subscriptions of its topics, the patterns matching them, and its users")
    func affects() throws {
        let gap = PeerGap(topics: [try Topic("rooms.a")], users: ["u1"])
        #expect(gap.affects(.topic(try Topic("rooms.a"))))
        #expect(!gap.affects(.topic(try Topic("rooms.b"))))
        #expect(gap.affects(.pattern(try TopicPattern("rooms.*"))))
        #expect(!gap.affects(.pattern(try TopicPattern("other.*"))))
        #expect(gap.affects(.user("u1")))
        #expect(!gap.affects(.user("u2")))
    }
}
