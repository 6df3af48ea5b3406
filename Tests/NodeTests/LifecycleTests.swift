import ChorusClient
import Foundation
import Testing
import TestSupport

#if canImport(Glibc)
import Glibc
#endif

@Suite("Connection lifecycle: limits, keep-alive, expiry, shutdown")
struct LifecycleTests {
    @Test("the connection past WEBSOCKET_MAX_CONNECTIONS_PER_IP is refused with HTTP 429 and a clear error")
    func perIPLimit() async throws {
        try await withNode(["WEBSOCKET_MAX_CONNECTIONS_PER_IP": "2"]) { node in
            let first = try await node.connect()
            let second = try await node.connect()
            await #expect(throws: WebSocketClient.Failure.self) { _ = try await node.connect() }
            do {
                _ = try await node.connect()
            } catch WebSocketClient.Failure.upgradeRefused(let status, let body) {
                #expect(status == 429)
                #expect(body.contains("too many connections from 127.0.0.1"))
            }
            // Closing one frees a slot, once the node has seen the close: tried for 20 s.
            await first.close()
            let admitted = await eventually(within: .seconds(20), every: .milliseconds(20)) { (try? await node.connect()) != nil }
            #expect(admitted)
            _ = second
        }
    }

    @Test("X-Forwarded-For counts only from a trusted proxy")
    func forwardedFor() async throws {
        try await withNode(["WEBSOCKET_MAX_CONNECTIONS_PER_IP": "1", "TRUSTED_PROXIES": "127.0.0.1"]) { node in
            let a = try await node.connect(headers: [("X-Forwarded-For", "203.0.113.1")])
            let b = try await node.connect(headers: [("X-Forwarded-For", "203.0.113.2")])
            await #expect(throws: WebSocketClient.Failure.self) {
                _ = try await node.connect(headers: [("X-Forwarded-For", "203.0.113.1")])
            }
            let stats = try await HTTP.get("\(node.baseURL)/stats").json()
            let top = ((stats["connections"] as? [String: Any])?["topIPs"] as? [[String: Any]])?.compactMap { $0["ip"] as? String }
            #expect(Set(top ?? []) == ["203.0.113.1", "203.0.113.2"])
            _ = (a, b)
        }
        try await withNode(["WEBSOCKET_MAX_CONNECTIONS_PER_IP": "1"]) { node in
            let a = try await node.connect(headers: [("X-Forwarded-For", "203.0.113.1")])
            await #expect(throws: WebSocketClient.Failure.self, "an untrusted peer cannot dodge the limit") {
                _ = try await node.connect(headers: [("X-Forwarded-For", "203.0.113.2")])
            }
            _ = a
        }
    }

    @Test("a client that stops answering pings is closed with 4000; one that answers stays")
    func pingTimeout() async throws {
        // A timeout that a test process busy with a hundred other suites on two cores cannot
        // exceed for a client that answers (5 s once did, in CI).
        try await withNode(["WEBSOCKET_PING_INTERVAL": "200", "WEBSOCKET_PING_TIMEOUT": "15000"]) { node in
            let silent = try await node.connect(autoPong: false)
            let alive = try await node.connect()
            #expect(try await silent.closeCode(timeout: .seconds(30)) == 4000)
            // Several ping rounds later the answering client is still served.
            for _ in 0..<3 { #expect(try await alive.next(timeout: .seconds(15)) == .ping) }
            #expect(try await alive.request(["type": "ping"])["type"] as? String == "pong")
        }
    }

    @Test("a token given at the upgrade authenticates; a bad one is refused with 401")
    func tokenAtUpgrade() async throws {
        try await withNode { node in
            let byQuery = try await node.connect(path: "/ws?token=\(node.token("q"))")
            #expect(try await byQuery.nextJSON()["userId"] as? String == "q")
            let byHeader = try await node.connect(headers: [("Authorization", "Bearer \(node.token("h"))")])
            #expect(try await byHeader.nextJSON()["userId"] as? String == "h")
            do {
                _ = try await node.connect(path: "/ws?token=bad")
                Issue.record("a bad token must be refused")
            } catch WebSocketClient.Failure.upgradeRefused(let status, let body) {
                #expect(status == 401)
                #expect(body.contains("malformed token"))
            }
        }
    }

    @Test("past WEBSOCKET_MAX_CONNECTIONS the node answers upgrades with 503 and a clear error, and takes them again once one closes")
    func nodeLimit() async throws {
        try await withNode(["WEBSOCKET_MAX_CONNECTIONS": "2"]) { node in
            let first = try await node.connect(as: "a")
            let second = try await node.connect(as: "b")
            do {
                _ = try await node.connect()
                Issue.record("a third connection was accepted")
            } catch WebSocketClient.Failure.upgradeRefused(let status, let body) {
                #expect(status == 503)
                #expect(body.contains("node at its connection limit (2)"))
            }
            #expect(try await second.request(["type": "ping"])["type"] as? String == "pong")
            let stats = try await HTTP.get("\(node.baseURL)/stats").json()
            let connections = try #require(stats["connections"] as? [String: Any])
            #expect(connections["refusedNodeFull"] as? Int == 1, "counted as the node's limit: \(connections)")
            #expect(connections["refusedByIPLimit"] as? Int == 0, "not as the per-IP limit")
            let metrics = try await HTTP.get("\(node.baseURL)/metrics").text
            #expect(metrics.contains(#"chorus_websocket_refused_total{reason="node_full"} 1"#))
            #expect(metrics.contains(#"chorus_websocket_refused_total{reason="ip_limit"} 0"#))
            await first.close()
            // Tried until the node has seen the close, for 20 s however slow the tries.
            let admitted = await eventually(within: .seconds(20), every: .milliseconds(20)) { (try? await node.connect()) != nil }
            #expect(admitted)
        }
    }

    @Test("when the token expires the client is told and receives nothing until it authenticates again")
    func tokenExpiry() async throws {
        try await withNode(["JWT_LEEWAY": "0"]) { node in
            let client = try await Self.subscribedBeforeExpiry(node, as: "e", to: "news")
            let expired = try await client.next(type: "auth_expired", timeout: .seconds(40))
            #expect(expired["code"] as? Int == 401)
            let witness = try await node.connect(as: "w")
            _ = try await witness.request(["type": "subscribe", "topic": "news"])
            let publisher = try await node.connect(as: "p")
            try await publisher.send(json: ["type": "message", "topic": "news", "data": "missed"])
            // Once a subscriber has it, the node has handed "missed" to every event loop, so it
            // reaches the expired client's loop before the requests below. Arriving there at any
            // time it would show up as the reply below or as the first message after
            // authenticating again, where "again" (published later, from the same connection)
            // must come first.
            #expect(try await witness.next(type: "message")["data"] as? String == "missed")
            #expect(try await client.request(["type": "subscribe", "topic": "x"])["code"] as? Int == 401)
            #expect(try await client.request(["type": "auth", "token": node.token("e")])["type"] as? String == "auth_success")
            try await publisher.send(json: ["type": "message", "topic": "news", "data": "again"])
            #expect(try await client.nextJSON()["data"] as? String == "again", "the first message after authenticating again")
        }
    }

    @Test("a presence watcher whose token expired hears resync for its watched topics once it authenticates again (events meanwhile were not delivered)")
    func resyncAfterExpiry() async throws {
        try await withNode(["JWT_LEEWAY": "0"]) { node in
            let watcher = try await LifecycleTests.withLongerLifetimes { scale -> WebSocketClient? in
                let client = try await node.connect()
                let auth = try await client.request(["type": "auth", "token": node.token("v", ttl: .seconds(2 * scale))])
                // On a loaded machine the token may expire before the subscribe is answered:
                // then again with a longer one.
                let subscribed = try await client.request(["type": "subscribe", "topic": "rooms.v", "presenceEvents": true])
                guard auth["type"] as? String == "auth_success", subscribed["type"] as? String == "subscribed" else {
                    await client.close()
                    return nil
                }
                return client
            }
            _ = try await watcher.next(type: "auth_expired", timeout: .seconds(40))
            let alice = try await node.connect(as: "alice")
            try await alice.subscribe("rooms.v", member: true, events: false)
            #expect(try await watcher.request(["type": "auth", "token": node.token("v")])["type"] as? String == "auth_success")
            let resync = try await watcher.next(type: "presence")
            #expect(resync["event"] as? String == "resync" && resync["topic"] as? String == "rooms.v", "\(resync)")
        }
    }

    /// A client authenticated with a token of 2 s and subscribed to `topic` before the token
    /// expired; on a machine too loaded to do both in time, again with a longer lifetime.
    static func subscribedBeforeExpiry(_ node: TestNode, as user: String, to topic: String) async throws -> WebSocketClient {
        try await withLongerLifetimes { scale in
            let client = try await node.connect()
            let auth = try await client.request(["type": "auth", "token": node.token(user, ttl: .seconds(2 * scale))])
            if auth["type"] as? String == "auth_success",
                try await client.request(["type": "subscribe", "topic": topic])["type"] as? String == "subscribed"
            {
                return client
            }
            await client.close()
            return nil
        }
    }

    /// `attempt`'s first result with token lifetimes scaled by 1, then 2, 4 and 8: a test of
    /// expiries needs its tokens accepted before they expire, which a loaded machine may not do
    /// with the shortest; the scale keeps their order.
    static func withLongerLifetimes<T>(_ attempt: (_ scale: Int) async throws -> T?) async throws -> T {
        for scale in [1, 2, 4, 8] {
            if let result = try await attempt(scale) { return result }
        }
        throw TestFailure("no token lived long enough to be accepted")
    }

    @Test("authenticating again with a later token moves the expiry: the earlier one no longer applies")
    func tokenRenewed() async throws {
        try await withNode(["JWT_LEEWAY": "0"]) { node in
            let renewed = try await node.connect()
            _ = try await renewed.request(["type": "auth", "token": node.token("r", ttl: .seconds(4))])
            // Replies are awaited by type: on a machine loaded enough to answer the renewal after
            // the first token's 4 s, an `auth_expired` comes first (the renewal then moves the
            // expiry all the same).
            try await renewed.send(json: ["type": "auth", "token": node.token("r")])
            #expect(try await renewed.next(type: "auth_success")["type"] as? String == "auth_success")
            try await renewed.send(json: ["type": "subscribe", "topic": "news"])
            #expect(try await renewed.next(type: "subscribed")["type"] as? String == "subscribed")
            // A token that expires after the first one did: once it has, so has the first.
            let later = try await node.connect()
            _ = try await later.request(["type": "auth", "token": node.token("l", ttl: .seconds(8))])
            _ = try await later.next(type: "auth_expired", timeout: .seconds(30))
            let publisher = try await node.connect(as: "p")
            try await publisher.send(json: ["type": "message", "topic": "news", "data": "still subscribed"])
            let next = try await renewed.nextJSON()
            #expect(next["type"] as? String == "message")
            #expect(next["data"] as? String == "still subscribed")
        }
    }

    @Test("a connection whose token expired and was not renewed within JWT_RENEWAL_GRACE is closed with 4001, and /stats and /metrics count both")
    func tokenNotRenewed() async throws {
        // The grace is long beside a loaded machine's delays: `renewing` has 8 s to answer.
        try await withNode(["JWT_LEEWAY": "0", "JWT_RENEWAL_GRACE": "8000"]) { node in
            // `renewing` expires first and authenticates again at once; `lapsed` never does. By
            // the time `lapsed` is closed (3 + 8 s), `renewing`'s grace (1 + 8 s) has ended: it
            // must not count.
            // Lifetimes 1 s and 3 s, or, on a machine too loaded to answer both `auth`s before the
            // first expired, 2 and 6 s, and so on: the order of the expiries is what counts.
            let (renewing, lapsed) = try await Self.withLongerLifetimes { scale -> (WebSocketClient, WebSocketClient)? in
                let (first, second) = (try await node.connect(), try await node.connect())
                let one = try await first.request(["type": "auth", "token": node.token("r", ttl: .seconds(scale))])
                let other = try await second.request(["type": "auth", "token": node.token("l", ttl: .seconds(3 * scale))])
                if one["type"] as? String == "auth_success", other["type"] as? String == "auth_success" { return (first, second) }
                await first.close()
                await second.close()
                return nil
            }
            _ = try await renewing.next(type: "auth_expired", timeout: .seconds(40))
            #expect(try await renewing.request(["type": "auth", "token": node.token("r")])["type"] as? String == "auth_success")
            _ = try await lapsed.next(type: "auth_expired", timeout: .seconds(40))
            #expect(try await lapsed.closeCode(timeout: .seconds(20)) == 4001)
            #expect(try await renewing.request(["type": "ping"])["type"] as? String == "pong")
            // Both were paused with `auth_expired`; only `lapsed` was closed. (At least 2: a
            // discarded attempt's client may have expired before it was closed.)
            let stats = try await HTTP.get("\(node.baseURL)/stats").json()
            let connections = try #require(stats["connections"] as? [String: Any])
            let paused = try #require(connections["authExpired"] as? Int, "\(connections)")
            #expect(paused >= 2, "\(connections)")
            #expect(connections["closedTokenExpired"] as? Int == 1, "\(connections)")
            let metrics = MetricsTests.samples(try await HTTP.get("\(node.baseURL)/metrics").text)
            #expect((metrics["chorus_websocket_auth_expired_total"] ?? 0) >= Double(paused), "read after /stats: as many or more")
            #expect(metrics[#"chorus_websocket_closed_total{code="4001"}"#] == 1)
        }
    }

    @Test("auth_success tells how long the token has left (expiresIn, ms), so that a client can renew it before delivery pauses")
    func expiresInReported() async throws {
        try await withNode(["JWT_LEEWAY": "0", "JWT_REQUIRE_EXP": "false"]) { node in
            let client = try await node.connect()
            let first = try await client.request(["type": "auth", "token": node.token("e", ttl: .seconds(600))])
            let expiresIn = try #require(first["expiresIn"] as? Int)
            // The token's `exp` has whole seconds (rounded up): up to one more than the lifetime.
            #expect(expiresIn > 500_000 && expiresIn <= 601_000)
            let renewed = try await client.request(["type": "auth", "token": node.token("e", ttl: .seconds(1_200))])
            #expect(try #require(renewed["expiresIn"] as? Int) > 600_000)
            // No `exp` within a year: nothing to renew ahead of.
            let far = try await client.request(["type": "auth", "token": node.token("e", ttl: .seconds(1_000_000_000))])
            #expect(far["type"] as? String == "auth_success")
            #expect(far["expiresIn"] == nil)
            let never = try await client.request(["type": "auth", "token": node.token("e", ttl: nil)])
            #expect(never["type"] as? String == "auth_success")
            #expect(never["expiresIn"] == nil)
        }
    }

    @Test("a token that expires in thousands of years is accepted and the node keeps serving")
    func farFutureExpiry() async throws {
        try await withNode { node in
            let client = try await node.connect()
            let reply = try await client.request(["type": "auth", "token": node.token("far", ttl: .seconds(1_000_000_000_000))])
            #expect(reply["type"] as? String == "auth_success")
            #expect(try await client.request(["type": "subscribe", "topic": "news"])["type"] as? String == "subscribed")
        }
    }

    @Test("graceful shutdown closes every WebSocket with 1001 and /ready turns 503 first")
    func shutdownCloseCode() async throws {
        try await withNode { node in
            let clients = [try await node.connect(as: "a"), try await node.connect(as: "b")]
            #expect(try await HTTP.get("\(node.baseURL)/ready").status == 200)
            // The first client does not read, so it cannot answer the close: the node keeps
            // draining until it does (or the drain's budget runs out, seconds later).
            clients[0].pauseReading()
            let shutdown = Task { await node.node.shutdown() }
            #expect(try await clients[1].closeCode() == 1001)
            await clients[1].close(code: 1001)
            // The close frames are out, so /ready turned 503 before them; new WebSockets are refused.
            #expect(try await HTTP.get("\(node.baseURL)/ready").status == 503)
            do {
                _ = try await node.connect()
                Issue.record("a WebSocket was admitted while the node drains")
            } catch WebSocketClient.Failure.upgradeRefused(let status, _) {
                #expect(status == 503)
            }
            clients[0].resumeReading()
            #expect(try await clients[0].closeCode() == 1001)
            await clients[0].close(code: 1001)
            await shutdown.value
        }
    }

    @Test("a node that cannot bind its port is reported with the reason, not waited for")
    func portTaken() async throws {
        // A listening socket holds a port; the node is told to bind it.
        let (holder, port) = try LoopbackPort.taken()
        defer { close(holder) }
        do {
            _ = try await withNode(["HTTP_PORT": "\(port)"], startTimeout: .seconds(30)) { _ in
                Issue.record("the node started on a taken port")
            }
            Issue.record("withNode returned for a node that cannot bind")
        } catch let failure as TestFailure {
            #expect(failure.description.contains("stopped before it listened"), "\(failure)")
        }
    }

    @Test("a subscriber that pauses reading, short of the pending limit, gets every message intact and in order, before and after its socket filled")
    func pausedReaderCatchesUp() async throws {
        try await withNode([
            "WEBSOCKET_MAX_PENDING_BYTES": "16777216", "WEBSOCKET_MAX_MESSAGES_PER_SECOND": "100000",
            "WEBSOCKET_MAX_MESSAGE_SIZE": "200000",
        ]) { node in
            // The node writes to the socket directly until it is full, then queues in NIO, then
            // writes directly again once NIO has sent everything: the order must hold across both.
            let paused = try await node.connect(as: "paused", receiveBufferSize: 16384)
            _ = try await paused.request(["type": "subscribe", "topic": "feed"])
            paused.pauseReading()
            let publisher = try await node.connect(as: "pub")
            let padding = String(repeating: "y", count: 20_000)
            func publish(_ indices: Range<Int>) async throws {
                for index in indices {
                    _ = try await publisher.request(
                        ["type": "message", "topic": "feed", "id": index + 1, "data": ["pad": padding, "i": index]])
                }
            }
            try await publish(0..<400)  // 8 MB: past what the kernel's socket buffers take (4 MiB at most here), within the limit
            paused.resumeReading()
            try await publish(400..<410)
            for index in 0..<410 {
                let text = try await paused.nextText()
                guard text.contains(#""i":\#(index)}"#) || text.contains(#""i":\#(index),"#), text.contains(padding) else {
                    Issue.record("message \(index) missing, damaged or out of order: \(text.prefix(120))")
                    return
                }
            }
            // Caught up: later messages go straight to the socket again.
            try await publish(410..<420)
            for index in 410..<420 {
                let text = try await paused.nextText()
                #expect(text.contains(#""i":\#(index)}"#) || text.contains(#""i":\#(index),"#), "message \(index)")
            }
            let stats = try await HTTP.get("\(node.baseURL)/stats").json()
            #expect((stats["connections"] as? [String: Any])?["closedSlowConsumer"] as? Int == 0)
        }
    }

    @Test("a subscriber that stops reading is closed with 4008 while the others get everything")
    func slowConsumer() async throws {
        try await withNode([
            "WEBSOCKET_MAX_PENDING_BYTES": "1048576", "WEBSOCKET_MAX_MESSAGES_PER_SECOND": "100000",
            "WEBSOCKET_MAX_MESSAGE_SIZE": "200000",
        ]) { node in
            let slow = try await node.connect(as: "slow", receiveBufferSize: 16384)
            let fast = try await node.connect(as: "fast")
            _ = try await slow.request(["type": "subscribe", "topic": "firehose"])
            _ = try await fast.request(["type": "subscribe", "topic": "firehose"])
            slow.pauseReading()
            let publisher = try await node.connect(as: "pub")
            // Batches the fast client can take (it must never be 1 MiB behind), until the node gives
            // up on the slow one: far more than the slow client's 16 KiB socket buffer holds.
            // Frames are built and checked as text so the test's own JSON work stays small.
            let padding = String(repeating: "x", count: 50_000)
            var flagged = false
            for batch in 0..<40 where !flagged {
                for index in batch * 10..<(batch + 1) * 10 {
                    try await publisher.send(
                        text: #"{"type":"message","topic":"firehose","data":{"pad":"\#(padding)","i":\#(index)}}"#)
                }
                for index in batch * 10..<(batch + 1) * 10 {
                    // nextText skips the node's keep-alive pings (a loaded run outlasts their interval).
                    let text = try await fast.nextText()
                    guard text.contains(#""i":\#(index)}"#) || text.contains(#""i":\#(index),"#) else {
                        Issue.record("fast subscriber missed message \(index)")
                        return
                    }
                }
                let stats = try await HTTP.get("\(node.baseURL)/stats").json()
                flagged = (stats["connections"] as? [String: Any])?["closedSlowConsumer"] as? Int == 1
            }
            #expect(flagged, "the node closes a subscriber that does not read")
            // Reading again, the slow client drains what was queued and then finds the close frame.
            slow.resumeReading()
            #expect(try await slow.closeCode(timeout: .seconds(20)) == 4008)
        }
    }
}
