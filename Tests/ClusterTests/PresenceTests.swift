import ChorusClient
import Foundation
import Testing
import TestSupport

extension ClusterTests {
    /// Presence across nodes: one `join` and one `leave` per user and topic whatever the number
    /// of nodes and connections, and no member left behind by a node that dies.
    ///
    /// "Exactly once" is checked with a later event as a fence: events of one topic are
    /// published by one Redis server in the order its scripts ran, so when the watcher's next
    /// event is the fence, no duplicate came before it.
    @Suite("Presence across nodes")
    struct PresenceTests {
        /// A watcher of `topic` on node 1, and alice, a member of it on node 2, once the watcher
        /// has seen her join.
        static func aliceWatched(in cluster: Cluster, topic: String) async throws -> (watcher: WebSocketClient, alice: WebSocketClient) {
            let watcher = try await cluster.node(1).connect(as: "watcher")
            try await watcher.subscribe(topic, member: false, events: true)
            let alice = try await cluster.node(2).connect(as: "alice")
            try await alice.subscribe(topic, member: true, events: false)
            let join = try await watcher.nextPresence()
            #expect(join.event == "join" && join.userId == "alice")
            return (watcher, alice)
        }

        @Test("a user connected on two nodes joins once and leaves once, with the last connection")
        func oneUserOnTwoNodes() async throws {
            try await withCluster { cluster in
                let topic = "rooms.lobby"
                let watcher = try await cluster.node(3).connect(as: "watcher")
                try await watcher.subscribe(topic, member: false, events: true)

                let alice1 = try await cluster.node(1).connect(as: "alice")
                try await alice1.subscribe(topic, member: true, data: ["status": "available"], events: false)
                let join = try await watcher.nextPresence()
                #expect(join.event == "join" && join.userId == "alice" && join.status == "available")

                let alice2 = try await cluster.node(2).connect(as: "alice")
                try await alice2.subscribe(topic, member: true, events: false)
                let bob = try await cluster.node(2).connect(as: "bob")
                try await bob.subscribe(topic, member: true, data: ["status": "here"], events: false)
                let fence = try await watcher.nextPresence()
                #expect(fence.event == "join" && fence.userId == "bob", "no second join for alice before bob's: \(fence)")

                let state = try await watcher.presenceState(topic)
                #expect(state.count == 2)
                #expect(state.connections == ["alice": 2, "bob": 1])

                // Alice's first connection goes: she stays (one connection left), no event.
                await alice1.close()
                let down = await eventually(within: .seconds(30)) {
                    (try? await watcher.presenceState(topic))?.connections["alice"] == 1
                }
                #expect(down, "alice's count drops to 1")
                try await bob.subscribe(topic, member: true, data: ["status": "away"], events: false)
                let update = try await watcher.nextPresence()
                #expect(update.event == "update" && update.userId == "bob" && update.status == "away", "no leave for alice before: \(update)")

                // Her last connection goes: one leave.
                await alice2.close()
                let leave = try await watcher.nextPresence()
                #expect(leave.event == "leave" && leave.userId == "alice" && leave.status == "available")
                await bob.close()
                let last = try await watcher.nextPresence()
                #expect(last.event == "leave" && last.userId == "bob", "no second leave for alice: \(last)")
                #expect(try await watcher.presenceState(topic).count == 0)
            }
        }

        @Test(
            "a drained node's member who reconnects to another node within PRESENCE_DRAIN_GRACE is seen neither leaving nor joining; one who does not leaves once (also with PRESENCE_RECONNECT_GRACE on: the drain's grace decides)",
            arguments: ["0", "60000"])
        func drainKeepsReconnectingMembers(reconnectGrace: String) async throws {
            // A grace long enough for alice to reconnect on a loaded machine (at most half of DRAIN_TIMEOUT is used).
            let environment = ["PRESENCE_DRAIN_GRACE": "6000", "DRAIN_TIMEOUT": "15000", "PRESENCE_RECONNECT_GRACE": reconnectGrace]
            try await withCluster(nodes: 2, environment: environment) { cluster in
                let topic = "rooms.deploy"
                let watcher = try await cluster.node(1).connect(as: "watcher")
                try await watcher.subscribe(topic, member: false, events: true)
                let drained = cluster.node(2)
                let alice = try await drained.connect(as: "alice")
                try await alice.subscribe(topic, member: true, data: ["status": "here"], events: false)
                let bob = try await drained.connect(as: "bob")
                try await bob.subscribe(topic, member: true, events: false)
                for user in ["alice", "bob"] {
                    let join = try await watcher.nextPresence()
                    #expect(join.event == "join" && join.userId == user, "\(join)")
                }

                drained.terminate()
                #expect(try await alice.closeCode() == 1001)
                #expect(try await bob.closeCode() == 1001)
                await bob.close()  // bob does not come back
                await alice.close()
                let back = try await cluster.node(1).connect(as: "alice")
                try await back.subscribe(topic, member: true, data: ["status": "here"], events: false)

                // Bob's leave comes once node-2 withdraws its share; nothing of alice's before it.
                let next = try await watcher.nextPresence()
                #expect(next.event == "leave" && next.userId == "bob", "alice neither left nor joined again: \(next)")
                #expect(await drained.process.wait(timeout: .seconds(30)) == 0, "exit status of node-2")
                // A fence: events of one topic come in order, so none of alice's came after bob's leave either.
                let carol = try await cluster.node(1).connect(as: "carol")
                try await carol.subscribe(topic, member: true, events: false)
                let fence = try await watcher.nextPresence()
                #expect(fence.event == "join" && fence.userId == "carol", "alice neither left nor joined again: \(fence)")
                let state = try await watcher.presenceState(topic)
                #expect(state.connections == ["alice": 1, "carol": 1], "alice is a member through node-1 alone")
                await back.close()
                await carol.close()
            }
        }

        @Test("presence data nested as deep as a node accepts (124 levels) reaches a watcher on another node through Redis; one level deeper is refused with 400 (it was accepted, then dropped by every node as a too-deep Redis envelope)")
        func deepestPresenceData() async throws {
            try await withCluster { cluster in
                let topic = "rooms.deep"
                let watcher = try await cluster.node(1).connect(as: "watcher")
                try await watcher.subscribe(topic, member: false, events: true)
                let alice = try await cluster.node(2).connect(as: "alice")
                func nested(_ depth: Int) -> String { String(repeating: "[", count: depth) + String(repeating: "]", count: depth) }

                try await alice.send(text: #"{"type":"subscribe","topic":"rooms.deep","id":1,"presence":{"data":\#(nested(125))}}"#)
                let refused = try await alice.nextJSON()
                #expect(refused["type"] as? String == "error" && refused["code"] as? Int == 400, "\(refused)")
                #expect((refused["details"] as? [String: Any])?["field"] as? String == "presence")

                try await alice.send(text: #"{"type":"subscribe","topic":"rooms.deep","id":2,"presence":{"data":\#(nested(124))}}"#)
                let subscribed = try await alice.next(type: "subscribed", timeout: .seconds(20))
                #expect(subscribed["topic"] as? String == topic)
                let join = try await watcher.nextPresence()
                #expect(join.event == "join" && join.userId == "alice", "\(join)")
            }
        }

        @Test("a node killed with SIGKILL leaves no member behind: each of its members leaves once, after the TTL")
        func killedNodeIsReaped() async throws {
            // Live nodes renew every third of it: 6 s leaves a loaded machine's stalls of a
            // second or more no chance to lapse node 1's or node 2's lease (extra leaves).
            let ttl = 6_000
            try await withCluster(environment: ["PRESENCE_TTL": "\(ttl)"]) { cluster in
                let topic = "rooms.crash"
                let watchers = [try await cluster.node(1).connect(as: "watcher-1"), try await cluster.node(2).connect(as: "watcher-2")]
                for watcher in watchers { try await watcher.subscribe(topic, member: false, events: true) }

                // Bob and dave only on node 3; alice on node 3 and node 2; carol on node 2.
                var doomed: [WebSocketClient] = []
                for user in ["alice", "bob", "dave"] {
                    let client = try await cluster.node(3).connect(as: user)
                    try await client.subscribe(topic, member: true, events: false)
                    doomed.append(client)
                }
                let alice = try await cluster.node(2).connect(as: "alice")
                try await alice.subscribe(topic, member: true, events: false)
                let carol = try await cluster.node(2).connect(as: "carol")
                try await carol.subscribe(topic, member: true, events: false)
                for watcher in watchers {
                    let joins = [try await watcher.nextPresence(), try await watcher.nextPresence(), try await watcher.nextPresence(), try await watcher.nextPresence()]
                    #expect(joins.map(\.event) == ["join", "join", "join", "join"])
                    #expect(Set(joins.map(\.userId)) == ["alice", "bob", "dave", "carol"])
                }
                #expect(try await watchers[0].presenceState(topic).connections == ["alice": 2, "bob": 1, "carol": 1, "dave": 1])

                let killed = ContinuousClock.now
                await cluster.node(3).kill()
                var elapsed: [Duration] = []
                for watcher in watchers {
                    let leaves = [try await watcher.nextPresence(timeout: .seconds(60)), try await watcher.nextPresence(timeout: .seconds(60))]
                    elapsed.append(ContinuousClock.now - killed)
                    #expect(leaves.map(\.event) == ["leave", "leave"])
                    #expect(Set(leaves.map(\.userId)) == ["bob", "dave"], "alice still has a connection on node 2")
                }
                print("presence: node-3's members left \(elapsed[0]) after SIGKILL (PRESENCE_TTL \(ttl) ms)")

                try await carol.subscribe(topic, member: true, data: ["status": "fence"], events: false)
                for watcher in watchers {
                    let fence = try await watcher.nextPresence()
                    #expect(fence.event == "update" && fence.userId == "carol", "each leave once, and none for alice: \(fence)")
                }
                #expect(try await watchers[1].presenceState(topic).connections == ["alice": 1, "carol": 1])
            }
        }

        @Test("a node restarted with the same NODE_ID drops its old members at once and counts a returning user once")
        func restartedNodeDoesNotDoubleCount() async throws {
            // A TTL far longer than the test: only the restart itself can take the old members back.
            try await withCluster(nodes: 2, environment: ["PRESENCE_TTL": "600000"]) { cluster in
                let topic = "rooms.restart"
                let (watcher, alice) = try await Self.aliceWatched(in: cluster, topic: topic)

                await cluster.node(2).kill()
                let restarted = try await cluster.startNode(2, environment: ["PRESENCE_TTL": "600000"])
                do {
                    let leave = try await watcher.nextPresence()
                    #expect(leave.event == "leave" && leave.userId == "alice", "the old boot's member is reaped at start")
                    let back = try await restarted.connect(as: "alice")
                    try await back.subscribe(topic, member: true, events: false)
                    let join = try await watcher.nextPresence()
                    #expect(join.event == "join" && join.userId == "alice")
                    #expect(try await watcher.presenceState(topic).connections == ["alice": 1])
                    await back.close()
                    #expect(try await watcher.nextPresence().event == "leave")
                } catch {
                    await restarted.stop()
                    restarted.checkExit()
                    throw error
                }
                await restarted.stop()
                restarted.checkExit()
                withExtendedLifetime(alice) {}  // her first connection, on the killed node
            }
        }

        @Test("a second start of a running node's NODE_ID, on its taken port, exits without reaping the running node's members")
        func duplicateStartReapsNothing() async throws {
            try await withCluster(nodes: 2, environment: ["PRESENCE_TTL": "600000"]) { cluster in
                let topic = "rooms.duplicate"
                let (watcher, alice) = try await Self.aliceWatched(in: cluster, topic: topic)
                do {
                    let duplicate = try await cluster.startNode(2, environment: ["PRESENCE_TTL": "600000"], port: cluster.node(2).port)
                    await duplicate.stop()
                    Issue.record("a second node listened on a taken port")
                } catch let failure as NodeProcess.StartFailure {
                    #expect(failure.status == 78, "\(failure)")
                }
                // A topic's presence events arrive in order: a leave from the duplicate's reap
                // would come before bob's join.
                let bob = try await cluster.node(2).connect(as: "bob")
                try await bob.subscribe(topic, member: true, events: false)
                let next = try await watcher.nextPresence()
                #expect(next.event == "join" && next.userId == "bob", "alice was reaped by a node that never listened: \(next)")
                withExtendedLifetime(alice) {}  // still a member throughout
            }
        }

        @Test("typing crosses nodes, never reaches the typist's other device, and ends with a stop when the typist's node dies")
        func typingAcrossNodes() async throws {
            try await withCluster(nodes: 3, environment: ["TYPING_TIMEOUT": "1500"]) { cluster in
                let topic = "rooms.typing"
                let alice = try await cluster.node(1).connect(as: "alice")
                let aliceTablet = try await cluster.node(2).connect(as: "alice")
                let bob = try await cluster.node(2).connect(as: "bob")
                let carol = try await cluster.node(3).connect(as: "carol")
                for client in [alice, aliceTablet, bob, carol] { try await client.subscribe(topic) }
                try await alice.awaitRoute(to: [aliceTablet, bob, carol], topic: topic)

                try await alice.typing(topic, "start")
                try await alice.typing(topic, "stop")
                for receiver in [bob, carol] {
                    let start = try await receiver.next(type: "typing")
                    #expect(start["userId"] as? String == "alice" && start["state"] as? String == "start")
                    #expect(try await receiver.next(type: "typing")["state"] as? String == "stop")
                }
                try await bob.publish(topic: topic, data: ["fence": 1])
                #expect(try await aliceTablet.nextJSON()["type"] as? String == "message", "no typing on alice's tablet")

                // Alice starts again and her node dies: the other nodes end it themselves.
                try await alice.typing(topic, "start")
                #expect(try await carol.next(type: "typing")["state"] as? String == "start")
                await cluster.node(1).kill()
                let stop = try await carol.next(type: "typing", timeout: .seconds(30))
                #expect(stop["userId"] as? String == "alice" && stop["state"] as? String == "stop")
            }
        }

        @Test("while Redis is down presence.get answers with the node's own members; when Redis is back empty, every node's members are there again")
        func redisOutage() async throws {
            try await withCluster(nodes: 2, environment: ["PRESENCE_TTL": "1500"]) { cluster in
                let topic = "rooms.outage"
                let (watcher, alice) = try await Self.aliceWatched(in: cluster, topic: topic)

                await cluster.redis[0].kill()
                try await cluster.waitUntilAdapters(are: "fallback")
                let bob = try await cluster.node(1).connect(as: "bob")
                try await bob.subscribe(topic, member: true, events: false)
                let during = try await bob.presenceState(topic)
                #expect(during.scope == "node" && during.connections == ["bob": 1], "node 1 knows its own members only")
                let online = try await bob.presenceState("presence.user.bob")
                #expect(online.scope == "node" && online.connections == ["bob": 1], "and its own users' online topics")

                // Redis comes back with nothing in it: the nodes resend their shares.
                try await cluster.redis[0].start()
                try await cluster.waitUntilAdapters(are: "connected")
                let restored = await eventually(within: .seconds(30)) {
                    let state = try? await watcher.presenceState(topic)
                    return state?.scope == nil && state?.connections == ["alice": 1, "bob": 1]
                }
                #expect(restored, "alice (node 2) and bob (node 1) are members again")
                let aliceOnline = await eventually(within: .seconds(30)) {
                    let state = try? await alice.presenceState("presence.user.alice")
                    return state?.scope == nil && state?.connections == ["alice": 1]
                }
                #expect(aliceOnline, "alice is online again: the user topics' shares are resent too")
            }
        }

        @Test("a Redis that comes back with older data (restarted from a snapshot taken before a join and a leave, its leases still valid) is noticed: the member who left is not listed, the one who joined is")
        func redisRolledBack() async throws {
            try await withCluster(nodes: 2) { cluster in
                let topic = "rooms.rollback"
                let (watcher, alice) = try await Self.aliceWatched(in: cluster, topic: topic)
                _ = try await cluster.redis[0].command(["SAVE"])
                let bob = try await cluster.node(2).connect(as: "bob")
                try await bob.subscribe(topic, member: true, events: false)
                let join = try await watcher.nextPresence()
                #expect(join.event == "join" && join.userId == "bob")
                await alice.close()
                let leave = try await watcher.nextPresence()
                #expect(leave.event == "leave" && leave.userId == "alice")

                // Back from the snapshot: alice listed, bob not, node 2's lease still valid.
                await cluster.redis[0].kill()
                try await cluster.redis[0].start()
                try await cluster.waitUntilAdapters(are: "connected")
                let right = await eventually(within: .seconds(30)) {
                    let state = try? await watcher.presenceState(topic)
                    return state?.scope == nil && state?.connections == ["bob": 1]
                }
                #expect(right, "alice, who left, not listed; bob, who joined, listed")
                let aliceOffline = await eventually(within: .seconds(30)) {
                    let answer = try? await HTTP.get(
                        "\(cluster.node(1).baseURL)/api/users/alice/presence", headers: ["X-API-Key": Cluster.apiKey])
                    return (try? answer?.json())?["online"] as? Bool == false
                }
                #expect(aliceOffline, "alice is not online")
            }
        }

        @Test("a leave while Redis hangs (SIGSTOP) may reach no watcher, but once Redis answers every watcher hears `resync`, and a list read then from Redis, with the events after it, is right")
        func resyncAfterHang() async throws {
            try await withCluster(nodes: 2) { cluster in
                let topic = "rooms.hang"
                let (watcher, alice) = try await Self.aliceWatched(in: cluster, topic: topic)
                let reader = try await cluster.node(1).connect(as: "reader")

                let redis = cluster.redis[0]
                redis.pause()
                do {
                    try await cluster.waitUntilAdapters(are: "fallback", within: .seconds(20))
                    await alice.close()
                    // A change on node 1 too, failing, so that its presence store also marks
                    // Redis unreachable (and would answer a read from node 1's members alone).
                    try await reader.subscribe("rooms.other", member: true, events: false)
                    let failed = await eventually(within: .seconds(20)) {
                        let store = (try? await cluster.node(1).stats())?["presence"].flatMap { ($0 as? [String: Any])?["store"] }
                        return ((store as? [String: Any])?["failures"] as? Int ?? 0) > 0
                    }
                    #expect(failed, "node 1's presence store saw a command fail")
                } catch {
                    redis.resume()
                    throw error
                }
                redis.resume()
                try await cluster.waitUntilAdapters(are: "connected", within: .seconds(20))

                // Alice's leave may come before the resync or never; the resync comes.
                var event = try await watcher.nextPresence()
                while event.event != "resync" { event = try await watcher.nextPresence() }
                #expect(event.topic == topic)
                let state = try await reader.presenceState(topic)
                #expect(state.scope == nil, "read from Redis, not from node 1 alone")
                var members = Set(state.connections.keys)
                let deadline = ContinuousClock.now + .seconds(30)
                while members.contains("alice"), ContinuousClock.now < deadline {
                    let next = try await watcher.nextPresence()
                    if next.event == "leave" { members.remove(next.userId) } else if next.event == "join" { members.insert(next.userId) }
                }
                #expect(members.isEmpty, "the list read after the resync, with the events after it, has no alice")
            }
        }

        @Test("a change of a member's data that Redis did not take (it hung, SIGSTOP) is written once Redis answers: every node then lists the new data")
        func dataChangeAfterHang() async throws {
            try await withCluster(nodes: 2) { cluster in
                let topic = "rooms.status"
                let alice = try await cluster.node(1).connect(as: "alice")
                try await alice.subscribe(topic, member: true, data: ["status": "available"], events: false)
                let reader = try await cluster.node(2).connect(as: "reader")
                let listed = await eventually(within: .seconds(20)) {
                    (try? await reader.presenceState(topic))?.data["alice"] == #"{"status":"available"}"#
                }
                #expect(listed, "node 2 lists alice as available")

                let redis = cluster.redis[0]
                redis.pause()
                do {
                    try await cluster.waitUntilAdapters(are: "fallback", within: .seconds(20))
                    // A change on node 1 that fails first: its presence store then takes Redis
                    // for unreachable, and alice's change is kept for later, not sent.
                    let other = try await cluster.node(1).connect(as: "other")
                    try await other.subscribe("rooms.other", member: true, events: false)
                    let failed = await eventually(within: .seconds(20)) {
                        let store = (try? await cluster.node(1).stats())?["presence"].flatMap { ($0 as? [String: Any])?["store"] }
                        return ((store as? [String: Any])?["failures"] as? Int ?? 0) > 0
                    }
                    #expect(failed, "node 1's presence store saw a command fail")
                    try await alice.subscribe(topic, member: true, data: ["status": "away"], events: false)
                } catch {
                    redis.resume()
                    throw error
                }
                redis.resume()
                try await cluster.waitUntilAdapters(are: "connected", within: .seconds(20))
                var state: PresenceState?
                let updated = await eventually(within: .seconds(20)) {
                    state = try? await reader.presenceState(topic)
                    return state?.data["alice"] == #"{"status":"away"}"# && state?.scope == nil
                }
                #expect(updated, "node 2 lists alice as away, from Redis: \(String(describing: state?.data))")
            }
        }

        @Test("with two Redis servers, only the watchers of the topics on the server that came back hear `resync`")
        func resyncOnlyForTheServerBack() async throws {
            try await withCluster(nodes: 1, redisServers: 2) { cluster in
                let topics = (0..<20).map { "rooms.shard-\($0)" }
                let onFirst = try #require(topics.first { RedisPlacement.server(forKey: $0, among: 2) == 0 })
                let onSecond = try #require(topics.first { RedisPlacement.server(forKey: $0, among: 2) == 1 })
                let watcher = try await cluster.node(1).connect(as: "watcher")
                try await watcher.subscribe(onFirst, member: false, events: true)
                try await watcher.subscribe(onSecond, member: false, events: true)

                let second = cluster.redis[1]
                await second.kill()
                try await cluster.waitUntilAdapters(are: "fallback")
                try await second.start()
                try await cluster.waitUntilAdapters(are: "connected")
                let resync = try await watcher.nextPresence()
                #expect(resync.event == "resync" && resync.topic == onSecond)

                // A join on the first server's topic is the next event there: no resync before it.
                let ann = try await cluster.node(1).connect(as: "ann")
                try await ann.subscribe(onFirst, member: true, events: false)
                let next = try await watcher.nextPresence()
                #expect(next.event == "join" && next.topic == onFirst && next.userId == "ann", "\(next)")
            }
        }

        @Test("while Redis does not answer, one connection has at most 16 presence.get in flight: the 17th gets 429 at once, the 16 are answered, and the places come back")
        func getsInFlightBounded() async throws {
            try await withCluster(nodes: 1) { cluster in
                let redis = cluster.redis[0]
                let bob = try await cluster.node(1).connect(as: "bob")
                redis.pause()  // each presence.get waits on Redis until its deadline
                var refused: [String: Any] = [:]
                do {
                    for id in 1...17 { try await bob.send(json: ["type": "presence.get", "topic": "rooms.hung", "id": id]) }
                    refused = try await bob.nextJSON()
                } catch {
                    redis.resume()
                    throw error
                }
                redis.resume()
                #expect(refused["type"] as? String == "error" && refused["code"] as? Int == 429 && refused["id"] as? Int == 17)
                var answered: Set<Int> = []
                while answered.count < 16 {
                    let state = try await bob.next(type: "presence.state", timeout: .seconds(20))
                    answered.insert(try #require(state["id"] as? Int))
                }
                #expect(answered == Set(1...16))
                #expect(try await bob.presenceState("rooms.hung").count == 0, "a presence.get is allowed again")
            }
        }

        @Test("while Redis does not answer, one user has at most 4 presence reads in flight over HTTP (members and online state together): more get 429 at once, and the 4 are answered once it does")
        func httpReadsInFlightBounded() async throws {
            try await withCluster(nodes: 1, environment: ["PUBSUB_REDIS_TIMEOUT": "20000"]) { cluster in
                let node = cluster.node(1)
                let headers = ["Authorization": "Bearer \(node.token("bob"))"]
                let urls = ["\(node.baseURL)/api/presence/rooms.hung", "\(node.baseURL)/api/users/bob/presence"]
                #expect(try await HTTP.get(urls[0], headers: headers).status == 200)
                // Each read waits on the paused Redis; four are refused at once.
                let statuses = try await cluster.redis[0].statusesWhilePaused(
                    (0..<8).map { urls[$0 % 2] }, headers: headers, refusedAtOnce: 4)
                #expect(statuses.prefix(4).allSatisfy { $0 == 429 }, "\(statuses)")
                #expect(statuses.suffix(4).allSatisfy { $0 == 200 }, "\(statuses)")
                #expect(try await HTTP.get(urls[1], headers: headers).status == 200, "places free again")
            }
        }

        @Test("a join storm on three nodes reaches a watcher batched: every join once, in fewer frames")
        func joinStorm() async throws {
            try await withCluster(environment: ["WEBSOCKET_MAX_CONNECTIONS_PER_IP": "10000"]) { cluster in
                let topic = "rooms.storm"
                let watcher = try await cluster.node(1).connect(as: "watcher")
                try await watcher.subscribe(topic, member: false, events: true)
                let users = (0..<300).map { "user-\($0)" }
                var clients: [WebSocketClient] = []
                for (index, user) in users.enumerated() { clients.append(try await cluster.node(1 + index % 3).connect(as: user)) }
                // Everyone subscribes at once; the replies are awaited afterwards.
                let started = ContinuousClock.now
                for client in clients { try await client.send(json: ["type": "subscribe", "topic": topic, "presence": [:]]) }
                for client in clients { _ = try await client.next(type: "subscribed", timeout: .seconds(30)) }
                var joined: [String] = []
                var frames = 0
                while joined.count < users.count {
                    let message = try await watcher.next(type: "presence", timeout: .seconds(30))
                    frames += 1
                    let events = message["event"] as? String == "batch" ? message["events"] as? [[String: Any]] ?? [] : [message]
                    for event in events {
                        #expect(event["event"] as? String == "join")
                        joined.append((event["member"] as? [String: Any])?["userId"] as? String ?? "?")
                    }
                }
                print("presence: 300 joins on 3 nodes reached the watcher in \(frames) frames, \(ContinuousClock.now - started) after the first subscribe")
                #expect(joined.sorted() == users.sorted() && Set(joined).count == users.count, "each join once")
                #expect(try await watcher.presenceState(topic).count == users.count)
                for client in clients { await client.close() }
            }
        }
    }
}
