import ChorusSDK
import Foundation
import Testing
import TestSupport

/// The Swift SDK against two real nodes behind nginx (see `withCluster`).
@Suite("Swift SDK against a cluster", .timeLimit(.minutes(3)))
struct SDKClusterTests {
    /// Reconnects wait about 10 minutes: a test ends the wait itself (``ChorusClient/connect()``).
    static var longBackoff: ChorusClient.Configuration {
        var configuration = ChorusClient.Configuration()
        configuration.minimumReconnectDelay = .seconds(600)
        configuration.maximumReconnectDelay = .seconds(600)
        configuration.random = { 0.99 }
        return configuration
    }

    /// Stops the cluster's node 1 and returns once the client (its `states`) waits out a long backoff.
    static func stopAndWaitOutBackoff(_ cluster: Cluster, _ states: AsyncStream<ConnectionState>) async throws {
        #expect(await cluster.node(1).stop() == 0)
        // The first attempt after a drain goes at once and fails; the next waits ~10 minutes.
        let waiting = await first(in: states) { state in
            if case .reconnecting(_, let delay) = state { return delay > .seconds(60) }
            return false
        }
        try #require(waiting != nil, "the client waits out a long backoff")
    }

    @Test("connect() while the client waits out a long reconnect backoff tries at once: it connects to the node that is back, and the publish queued meanwhile goes out")
    func connectCutsBackoffShort() async throws {
        try await withCluster(nodes: 1) { cluster in
            let port = cluster.node(1).port
            let client = try ChorusClient(url: "ws://127.0.0.1:\(port)/ws", token: cluster.node(1).token("uma"), configuration: Self.longBackoff)
            let states = await client.states()
            try await client.connect()
            try await Self.stopAndWaitOutBackoff(cluster, states)
            let queued = Task { try await client.publish("chat.back", ["n": 1]) }
            let back = try await cluster.startNode(1, port: port)
            try await client.connect()
            #expect(try await queued.value.acknowledged)
            await client.close()
            #expect(await back.stop() == 0)
        }
    }

    @Test("a setToken while the client waits out a reconnect backoff is the token of the next attempt: the provider is not asked to replace it")
    func setTokenDuringBackoff() async throws {
        try await withCluster(nodes: 1) { cluster in
            let port = cluster.node(1).port
            let tokens = TokenGate(user: "bob")
            let client = try ChorusClient(url: "ws://127.0.0.1:\(port)/ws", configuration: Self.longBackoff, getToken: tokens.provider)
            let states = await client.states()
            try await client.connect()
            #expect(await client.state == .connected(userId: "bob"))
            try await Self.stopAndWaitOutBackoff(cluster, states)
            let asked = await tokens.calls
            await client.setToken(cluster.node(1).token("carol"))
            let back = try await cluster.startNode(1, port: port)
            try await client.connect()
            #expect(await client.state == .connected(userId: "carol"), "the application's token, not the provider's")
            #expect(await tokens.calls == asked, "the provider was not asked to replace it")
            await client.close()
            #expect(await back.stop() == 0)
        }
    }

    @Test("when its node drains (SIGTERM, close 1001) the client reconnects through nginx to the other node and resubscribes; with history nothing is missed")
    func drainAndReconnect() async throws {
        try await withCluster(nodes: 2) { cluster in
            let tokens = TokenGate(user: "olivia")
            let configuration = ChorusClient.Configuration()
            let client = try ChorusClient(
                url: "ws://127.0.0.1:\(cluster.nginx.port)/ws", configuration: configuration, getToken: tokens.provider)
            let events = await client.events()
            let subscription = try await client.subscribe("chat.lobby")
            var messages = subscription.makeAsyncIterator()
            #expect(try await cluster.publishThroughNginx(topic: "chat.lobby", data: ["n": 0]) == 202)
            let beforeDrain = await messages.next()
            #expect(beforeDrain?.data == ["n": 0])

            let home = try await Self.node(holdingOneClientIn: cluster)
            let other = cluster.nodes.first { $0.id != home.id }!
            // The client asks for a token before it reconnects: holding it there keeps the
            // client away while the test publishes what it must not miss.
            await tokens.close()
            home.terminate()
            await tokens.waitForCalls(2)
            #expect(await home.process.wait(timeout: .seconds(30)) == 0)
            #expect(await client.state != .connected(userId: "olivia"))
            for n in 1...3 {
                let response = try await HTTP.post(
                    "\(other.baseURL)/api/publish", json: ["topic": "chat.lobby", "data": ["n": n]],
                    headers: ["X-API-Key": Cluster.apiKey])
                #expect(response.status == 202)
            }
            await tokens.open()

            let resubscribed = await first(in: events) { event in
                if case .subscribed("chat.lobby", true, _, _) = event { return true }
                return false
            }
            guard case .subscribed(_, _, let recovered, _)? = resubscribed else {
                Issue.record("no resubscription")
                return
            }
            #expect(await client.state == .connected(userId: "olivia"))
            #expect(try await Self.authenticatedConnections(on: other) == 1, "the client is on the other node")
            #expect(recovered == true)
            for n in 1...3 {
                let missed = await messages.next()
                #expect(missed?.data == ["n": .integer(Int64(n))], "missed message \(n)")
            }
            try await client.publish("chat.lobby", ["n": 4])
            let live = await messages.next()
            #expect(live?.data == ["n": 4], "live after the resubscription")
            await client.close()
        }
    }

    @Test("a presence watcher whose node drains hears resync once it is subscribed again on the other node (events meanwhile are lost), and none on its first subscribe")
    func presenceResyncAfterReconnect() async throws {
        try await withCluster(nodes: 2) { cluster in
            let tokens = TokenGate(user: "quinn")
            let client = try ChorusClient(url: "ws://127.0.0.1:\(cluster.nginx.port)/ws", getToken: tokens.provider)
            // A bound on the waits below: closing the client finishes the event stream.
            let watchdog = Task {
                try await Task.sleep(for: .seconds(60))
                await client.close()
            }
            defer { watchdog.cancel() }
            let lobby = try await client.join("rooms.lobby", data: ["status": "here"])
            let home = try await Self.node(holdingOneClientIn: cluster)
            let away = cluster.nodes.first { $0.id != home.id }!
            // Live now: another member's join (on the other node) comes, and no resync before
            // it. (The own join may come first or not: it was published before the subscription
            // was live.)
            let other = try ChorusClient(url: "ws://127.0.0.1:\(away.port)/ws", token: away.token("rosa"))
            let rosaInLobby = try await other.join("rooms.lobby")
            let opening = await first(in: lobby.presenceEvents) { $0.member?.userId != "quinn" }
            #expect(opening?.kind == .join && opening?.member?.userId == "rosa", "no resync on the first subscribe: \(String(describing: opening))")

            await tokens.close()
            home.terminate()
            await tokens.waitForCalls(2)
            #expect(await home.process.wait(timeout: .seconds(30)) == 0)
            await tokens.open()

            let resync = await first(in: lobby.presenceEvents) { $0.kind == .resync }
            #expect(resync?.topic == "rooms.lobby" && resync?.member == nil)
            #expect(resync?.timestamp.hasSuffix("Z") == true, "an ISO 8601 UTC timestamp, as the node writes: \(resync?.timestamp ?? "none")")
            let state = try await client.members("rooms.lobby")
            #expect(state.members.map(\.userId) == ["quinn", "rosa"], "the list read after the resync")
            withExtendedLifetime(rosaInLobby) {}
            await other.close()
            await client.close()
        }
    }

    @Test("when more was published during a drain than the history keeps, the client reports recoveryFailed and carries on live")
    func recoveryFails() async throws {
        try await withCluster(nodes: 2, environment: ["HISTORY_SIZE": "2"]) { cluster in
            let tokens = TokenGate(user: "peggy")
            let client = try ChorusClient(url: "ws://127.0.0.1:\(cluster.nginx.port)/ws", getToken: tokens.provider)
            let events = await client.events()
            let subscription = try await client.subscribe("chat.lobby")
            var messages = subscription.makeAsyncIterator()
            try await client.publish("chat.lobby", ["n": 0])
            let beforeDrain = await messages.next()
            #expect(beforeDrain?.data == ["n": 0])
            let seen = await client.position(of: "chat.lobby")
            #expect(seen != nil)

            let home = try await Self.node(holdingOneClientIn: cluster)
            let other = cluster.nodes.first { $0.id != home.id }!
            await tokens.close()
            home.terminate()
            await tokens.waitForCalls(2)
            #expect(await home.process.wait(timeout: .seconds(30)) == 0)
            for n in 1...5 {
                let response = try await HTTP.post(
                    "\(other.baseURL)/api/publish", json: ["topic": "chat.lobby", "data": ["n": n]],
                    headers: ["X-API-Key": Cluster.apiKey])
                #expect(response.status == 202)
            }
            await tokens.open()

            let failed = await first(in: events) { event in
                if case .recoveryFailed = event { return true }
                return false
            }
            #expect(failed == .recoveryFailed(topic: "chat.lobby", since: seen!))
            try await client.publish("chat.lobby", ["n": 6])
            let live = await messages.next()
            #expect(live?.data == ["n": 6], "after a failed recovery the client continues with live messages")
            await client.close()
        }
    }

    /// The node that holds the test's one client connection.
    private static func node(holdingOneClientIn cluster: Cluster) async throws -> NodeProcess {
        for node in cluster.nodes where try await authenticatedConnections(on: node) == 1 { return node }
        throw TestFailure("no node reports the client's connection")
    }

    private static func authenticatedConnections(on node: NodeProcess) async throws -> Int? {
        (try await node.stats()["connections"] as? [String: Any])?["authenticated"] as? Int
    }
}
