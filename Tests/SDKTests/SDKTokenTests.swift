import struct Broker.TopicPattern
import ChorusSDK
import Foundation
import Synchronization
import Node
import Testing
import TestSupport

/// Token expiry and renewal through the SDK's token provider, against a real node or a scripted one (`scripts/lib/scripted_node.py`).
@Suite("Swift SDK against a node: tokens", .timeLimit(.minutes(2)))
struct SDKTokenTests {
    @Test("a publish that crosses the token's expiry (auth_expired, then 401 for it) is sent again with the fresh token and succeeds, with the same messageId (a scripted node)")
    func publishCrossingExpiry() async throws {
        let scripted = try await SDKNode.scriptedNode("expiry-crossing")
        defer { scripted.process.signal(SIGKILL) }
        let tokens = TokenGate(user: "bob")
        let client = try ChorusClient(url: "ws://127.0.0.1:\(scripted.port)/ws", configuration: SDKNode.configuration(), getToken: tokens.provider)
        let receipt = try await client.publish("chat.expiry", "across", messageId: "m-1")
        #expect(receipt.acknowledged)
        #expect(receipt.messageId == "m-1")
        #expect(await tokens.calls == 2, "a fresh token for the renewal")
        let output = scripted.process.output()
        #expect(output.contains("publishes 1 m-1\n") && output.contains("publishes 2 m-1\n"), "\(output)")
        await client.close()
        #expect(await scripted.process.wait(timeout: .seconds(30)) == 0, "\(scripted.process.output())")
    }

    @Test("setToken with another user's token on a live connection connects again as that user (the node answers the auth with 409), also without a token provider")
    func setTokenOfAnotherUser() async throws {
        try await withNodeProcess { node in
            let client = try ChorusClient(url: SDKNode.url(node), token: node.token("alice"), configuration: SDKNode.configuration())
            let states = await client.states()
            try await client.connect()
            #expect(await client.state == .connected(userId: "alice"))
            await client.setToken(node.token("bob"))
            let bob = await first(in: states) { state in
                if case .failed = state { return true }
                return state == .connected(userId: "bob")
            }
            #expect(bob == .connected(userId: "bob"))
            await client.close()
        }
    }

    @Test("a setToken while the provider is being asked wins: the provider's answer, older, is dropped and the connection uses the application's token")
    func setTokenBeatsTheProvider() async throws {
        try await withNodeProcess { node in
            let tokens = TokenGate(user: "bob")
            await tokens.close()
            let client = try ChorusClient(url: SDKNode.url(node), configuration: SDKNode.configuration(), getToken: tokens.provider)
            let connecting = Task { try await client.connect() }
            await tokens.waitForCalls(1)
            await client.setToken(node.token("carol"))
            await tokens.open()
            try await connecting.value
            #expect(await client.state == .connected(userId: "carol"), "the application's token, not the provider's older answer")
            await client.close()
        }
    }

    @Test("connect() after close(), once the kept token has expired, asks the provider first: the expired token is never presented (no refused attempt on the way)")
    func expiredTokenAfterClose() async throws {
        // No leeway: the node's expiry (`expiresIn`) is the token's own.
        try await withNodeProcess(["JWT_LEEWAY": "0"]) { node in
            let tokens = TokenGate(user: "bob", lifetimes: [.seconds(3)])
            var configuration = SDKNode.configuration()
            configuration.renewBefore = .milliseconds(100)
            let client = try ChorusClient(url: SDKNode.url(node), configuration: configuration, getToken: tokens.provider)
            try await client.connect()
            await client.close()
            try await Task.sleep(for: .seconds(4))  // the token's lifetime, not a synchronisation
            let states = await client.states()
            try await client.connect()
            var seen: [ConnectionState] = []
            for await state in states {
                seen.append(state)
                if state.isConnected { break }
            }
            let calls = await tokens.calls
            #expect(calls == 2, "asked again for the second connection: \(calls) calls, states \(seen)")
            let retried = seen.contains { if case .reconnecting(let attempt, _) = $0 { attempt > 0 } else { false } }
            #expect(!retried, "connected at the first attempt: \(seen)")
            await client.close()
        }
    }

    @Test("a catch-up after a late renewal that the node refuses is a recoveryFailed, and the subscription goes on live, not ended (a scripted node)")
    func catchUpRefused() async throws {
        let scripted = try await SDKNode.scriptedNode("catch-up-refused")
        defer { scripted.process.signal(SIGKILL) }
        let tokens = TokenGate(user: "bob")
        let client = try ChorusClient(url: "ws://127.0.0.1:\(scripted.port)/ws", configuration: SDKNode.configuration(), getToken: tokens.provider)
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

    @Test("a join made while the token is expired goes after the renewal in place of the topic's catch-up, with since; refused past the rate, its retry keeps since (a node with presenceLeave would otherwise take it as a plain presence change, and what was published during the expiry would never come) (a scripted node)")
    func standInKeepsSince() async throws {
        let scripted = try await SDKNode.scriptedNode("stand-in-refused")
        defer { scripted.process.signal(SIGKILL) }
        let tokens = TokenGate(user: "bob")
        let client = try ChorusClient(url: "ws://127.0.0.1:\(scripted.port)/ws", configuration: SDKNode.configuration(), getToken: tokens.provider)
        let subscription = try await client.subscribe("rooms.a")
        var messages = subscription.makeAsyncIterator()
        await tokens.close()  // the renewal waits until the join is made
        #expect(await messages.next()?.position?.offset == 6)
        await tokens.waitForCalls(2)
        let joining = Task { try await client.join("rooms.a", data: ["status": "here"]) }
        await tokens.open()
        #expect(await eventually(within: .seconds(20)) { scripted.process.output().contains("subscribe 3 ") }, "\(scripted.process.output())")
        _ = try? await joining.value
        await client.close()
        #expect(await scripted.process.wait(timeout: .seconds(30)) == 0, "\(scripted.process.output())")
        let output = scripted.process.output()
        #expect(output.contains("subscribe 2 True True\nsubscribe 3 True True\n"), "\(output)")
    }

    @Test("a catch-up answered 401 (the fresh token expired too before the node read it) is sent again after the next renewal from the same position: every message once, no recoveryFailed (a scripted node)")
    func catchUpExpired() async throws {
        let scripted = try await SDKNode.scriptedNode("catch-up-expired")
        defer { scripted.process.signal(SIGKILL) }
        let tokens = TokenGate(user: "bob")
        let client = try ChorusClient(url: "ws://127.0.0.1:\(scripted.port)/ws", configuration: SDKNode.configuration(), getToken: tokens.provider)
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

    @Test("close() while the provider is asked for a renewal ahead of the expiry is no error: the app hears none before its next subscription")
    func closeDuringRenewalAhead() async throws {
        try await withNodeProcess { node in
            // Renewed half its life ahead, about 3 s in; the provider then holds the call.
            let tokens = TokenGate(user: "pia", lifetimes: [.seconds(6)])
            let client = try ChorusClient(url: SDKNode.url(node), configuration: SDKNode.configuration(), getToken: tokens.provider)
            let events = await client.events()
            try await client.connect()
            await tokens.close()
            await tokens.waitForCalls(2)
            await client.close()  // ends the renewal's wait for the provider
            await tokens.open()
            _ = try await client.subscribe("rooms.after")  // connects again: the marker
            let seen = await first(in: events) { event in
                if case .subscribed = event { return true }
                if case .error = event { return true }
                return false
            }
            if case .subscribed(let topic, _, _, _)? = seen {
                #expect(topic == "rooms.after")
            } else {
                Issue.record("an event before the subscription: \(String(describing: seen))")
            }
            await client.close()
        }
    }

    @Test("a token the provider hands out ahead of the expiry that the node refuses leaves the connection as it is: an error event, still connected")
    func refusedRenewalAhead() async throws {
        try await withNodeProcess(["JWT_LEEWAY": "0"]) { node in
            let minter = TokenMinter(secret: Array(Cluster.secret.utf8))
            let calls = Mutex(0)
            // The connection's token lives 29-30 s (renewed about 15 s ahead: the whole suite
            // starting its nodes at once on two cores took more than 5); the one asked for ahead
            // of its end is refused, and any later one (a loaded machine may reach the expiry
            // first) is good.
            let provider: @Sendable () async throws -> String = {
                let call = calls.withLock { count in
                    count += 1
                    return count
                }
                return call == 2 ? "not-a-token" : minter.mint(subject: "ola", ttl: .seconds(call == 1 ? 30 : 3600))
            }
            let client = try ChorusClient(url: SDKNode.url(node), configuration: SDKNode.configuration(), getToken: provider)
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
            let client = try ChorusClient(url: SDKNode.url(node), configuration: SDKNode.renewingOnExpiry(), getToken: tokens.provider)
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

    @Test("when the token expires the client gets a fresh one from its provider and keeps receiving")
    func tokenRefreshOnExpiry() async throws {
        try await withNodeProcess(["JWT_LEEWAY": "0"]) { node in
            let tokens = TokenGate(user: "carol", lifetimes: [.seconds(2)])
            let client = try ChorusClient(url: SDKNode.url(node), configuration: SDKNode.renewingOnExpiry(), getToken: tokens.provider)
            let events = await client.events()
            let subscription = try await client.subscribe("news")
            #expect(await first(in: events, where: { $0 == .tokenExpired }) != nil)
            #expect(await first(in: events, where: { $0 == .reauthenticated(userId: "carol") }) != nil)
            #expect(await tokens.calls == 2)
            let publisher = try ChorusClient(url: SDKNode.url(node), token: node.token("dave"), configuration: SDKNode.configuration())
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
            let client = try ChorusClient(url: SDKNode.url(node), configuration: SDKNode.renewingOnExpiry(), getToken: tokens.provider)
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
            let publisher = try ChorusClient(url: SDKNode.url(node), token: node.token("dave"), configuration: SDKNode.configuration())
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
            var configuration = SDKNode.configuration()
            configuration.minimumReconnectDelay = .milliseconds(50)
            let tokens = TokenGate(user: "erin", failing: [1, 2])
            let client = try ChorusClient(url: SDKNode.url(node), configuration: configuration, getToken: tokens.provider)
            try await client.connect()
            #expect(await client.state == .connected(userId: "erin"))
            #expect(await tokens.calls == 3)
            await client.close()
        }
    }

    @Test("with a token provider the client renews ahead of the token's expiry: no tokenExpired, and every message published across the expiry arrives in order")
    func renewsAhead() async throws {
        try await withNodeProcess(["JWT_LEEWAY": "0"]) { node in
            // Lives 29-30 s (whole seconds): renewed half of that ahead, about 15 s, time enough
            // for the provider and the `auth` while the whole suite starts its nodes at once on
            // two cores (a fifth of 10 s, then half of it, were not).
            let tokens = TokenGate(user: "hana", lifetimes: [.seconds(30)])
            let client = try ChorusClient(url: SDKNode.url(node), configuration: SDKNode.configuration(), getToken: tokens.provider)
            let events = await client.events()
            let subscription = try await client.subscribe("news.ahead")
            let publisher = try ChorusClient(url: SDKNode.url(node), token: node.token("ivan"), configuration: SDKNode.configuration())
            let expired = ContinuousClock.now + .seconds(31)
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
            let client = try ChorusClient(url: SDKNode.url(node), configuration: SDKNode.renewingOnExpiry(), getToken: tokens.provider)
            let events = await client.events()
            let subscription = try await client.subscribe("rooms.late")
            let publisher = try ChorusClient(url: SDKNode.url(node), token: node.token("noa"), configuration: SDKNode.configuration())
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
            let client = try ChorusClient(url: SDKNode.url(node), configuration: SDKNode.renewingOnExpiry(), getToken: tokens.provider)
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

    @Test("a setToken while the node reads the upgrade's token is sent on the connection once it is authenticated: the application's token is the one in use (a scripted node)")
    func setTokenWhileAuthenticating() async throws {
        let scripted = try await SDKNode.scriptedNode("slow-auth")
        defer { scripted.process.signal(SIGKILL) }
        let client = try ChorusClient(url: "ws://127.0.0.1:\(scripted.port)/ws", token: "old", configuration: SDKNode.configuration())
        let events = await client.events()
        let connecting = Task { try await client.connect() }
        #expect(await eventually { scripted.process.output().contains("upgrades 1") }, "\(scripted.process.output())")
        await client.setToken("new")
        try await withDeadline(.seconds(20), "the connection") { try await connecting.value }
        let renewed = try await withDeadline(.seconds(20), "the new token's auth") {
            await first(in: events, where: { $0 == .reauthenticated(userId: "bob") })
        }
        #expect(renewed != nil)
        #expect(scripted.process.output().contains("auth new\n"), "\(scripted.process.output())")
        await client.close()
        #expect(await scripted.process.wait(timeout: .seconds(30)) == 0, "\(scripted.process.output())")
    }

    @Test("a token provider that never answers is given up after connectTimeout and asked again after the backoff: the client connects")
    func providerNeverAnswers() async throws {
        try await withNodeProcess { node in
            let calls = Mutex(0)
            let provider: @Sendable () async throws -> String = {
                let call = calls.withLock { count in
                    count += 1
                    return count
                }
                if call == 1 {
                    // A provider stuck for good: it ignores cancellation and never returns.
                    await withUnsafeContinuation { (_: UnsafeContinuation<Void, Never>) in }
                }
                return node.token("pia")
            }
            var configuration = SDKNode.configuration()
            configuration.connectTimeout = .seconds(1)
            configuration.minimumReconnectDelay = .milliseconds(50)
            let client = try ChorusClient(url: SDKNode.url(node), configuration: configuration, getToken: provider)
            let events = await client.events()
            let states = await client.states()
            try await withDeadline(.seconds(60), "the connection") { try await client.connect() }
            #expect(await first(in: states, where: { $0 == .connected(userId: "pia") }) != nil)
            #expect(calls.withLock { $0 } >= 2, "asked again")
            let failure = await first(in: events) { if case .error(.tokenUnavailable) = $0 { true } else { false } }
            #expect(failure != nil, "the provider's silence is reported")
            await client.close()
        }
    }

    @Test("a refused token with no provider stops the client without a reconnect loop")
    func refusedTokenStops() async throws {
        try await withNodeProcess { node in
            let expired = TokenMinter(secret: Array(Cluster.secret.utf8))
                .mint(subject: "eve", ttl: .seconds(60), now: Date(timeIntervalSinceNow: -3600))
            let client = try ChorusClient(url: SDKNode.url(node), token: expired)
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

    @Test("a client that fails (its token refused on reconnect) fails a subscribe of a topic it had, made while it waited to reconnect, instead of leaving it waiting (a scripted node)")
    func failureEndsWaitingSubscribe() async throws {
        let scripted = try await SDKNode.scriptedNode("refuses-reconnect")
        defer { scripted.process.signal(SIGKILL) }
        var configuration = SDKNode.configuration()
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
}
