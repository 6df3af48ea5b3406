import ChorusClient
import Foundation
import Node
import Testing
import TestSupport

/// The defences of docs/security.md, each against a real node on a loopback port.
@Suite("Security: tokens, keys, admission order, stats, browsers")
struct SecurityTests {
    // MARK: Tokens

    @Test("a token without exp is refused at the upgrade and in auth, unless JWT_REQUIRE_EXP=false")
    func tokenWithoutExpiry() async throws {
        try await withNode { node in
            do {
                _ = try await node.connect(path: "/ws?token=\(node.token("forever", ttl: nil))")
                Issue.record("a token without exp must be refused")
            } catch WebSocketClient.Failure.upgradeRefused(let status, let body) {
                #expect(status == 401)
                #expect(body.contains("no 'exp' claim"))
            }
            let client = try await node.connect()
            let reply = try await client.request(["type": "auth", "token": node.token("forever", ttl: nil)])
            #expect(reply["type"] as? String == "auth_error")
            #expect((reply["message"] as? String)?.contains("no 'exp' claim") == true)
        }
        try await withNode(["JWT_REQUIRE_EXP": "false"]) { node in
            let client = try await node.connect()
            let reply = try await client.request(["type": "auth", "token": node.token("forever", ttl: nil)])
            #expect(reply["type"] as? String == "auth_success")
        }
    }

    @Test("with JWT_ISSUER and JWT_AUDIENCE, foreign tokens are refused and the node's own login tokens work")
    func issuerAndAudience() async throws {
        try await withNode(["JWT_ISSUER": "https://auth.example", "JWT_AUDIENCE": "chorus"]) { node in
            let client = try await node.connect()
            let foreign = try await client.request(["type": "auth", "token": node.token("mallory")])
            #expect(foreign["type"] as? String == "auth_error")
            #expect((foreign["message"] as? String)?.contains("'iss'") == true)

            let registered = try await HTTP.post(
                "\(node.baseURL)/api/auth/register", json: ["username": "alice", "password": "correct horse"])
            #expect(registered.status == 201)
            let token = try #require(try registered.json()["token"] as? String)
            let reply = try await client.request(["type": "auth", "token": token])
            #expect(reply["type"] as? String == "auth_success")
        }
    }

    // MARK: API key

    @Test("X-API-Key to a node without API_KEY is told so, with 401")
    func apiKeyNotConfigured() async throws {
        try await withNode { node in
            let response = try await HTTP.post(
                "\(node.baseURL)/api/publish", json: ["topic": "a", "data": 1], headers: ["X-API-Key": "anything"])
            #expect(response.status == 401)
            let error = try response.json()
            #expect(error["type"] as? String == "error")
            #expect(error["code"] as? Int == 401)
            #expect(error["message"] as? String == "this node has no API_KEY configured: send Authorization: Bearer <token>")
        }
    }

    @Test(
        "a wrong X-API-Key of any length is refused with 401 'invalid API key', never parsed as a token",
        arguments: ["", "x", "server-kez", "server-key-and-more", String(repeating: "k", count: 4000), "a.b.c"])
    func wrongAPIKey(key: String) async throws {
        try await withNode(["API_KEY": "server-key"]) { node in
            let response = try await HTTP.post(
                "\(node.baseURL)/api/publish", json: ["topic": "a", "data": 1], headers: ["X-API-Key": key])
            #expect(response.status == 401)
            #expect(try response.json()["message"] as? String == "invalid API key")
        }
    }

    // MARK: Admission order

    @Test("past the per-IP limit an upgrade is refused with 429 before its token is looked at")
    func perIPLimitBeforeToken() async throws {
        try await withNode(["WEBSOCKET_MAX_CONNECTIONS_PER_IP": "1"]) { node in
            let holder = try await node.connect()
            // A bad token would be 401 if it were verified; 429 shows it was not.
            do {
                _ = try await node.connect(path: "/ws?token=not.a.token")
                Issue.record("a client over the per-IP limit was admitted")
            } catch WebSocketClient.Failure.upgradeRefused(let status, _) {
                #expect(status == 429)
            }
            await holder.close()
            // A refused token gives its slot back: a good client then gets in. Tried until the
            // node has seen the close (429 until then), for at most 20 s however slow the tries.
            var refusedToken: Int?
            _ = try await eventually(within: .seconds(20), every: .milliseconds(20)) {
                do {
                    _ = try await node.connect(path: "/ws?token=not.a.token")
                } catch WebSocketClient.Failure.upgradeRefused(let status, _) {
                    refusedToken = status
                }
                return refusedToken != nil && refusedToken != 429
            }
            #expect(refusedToken == 401)
            let admitted = try await node.connect(path: "/ws?token=\(node.token("ok"))")
            #expect(try await admitted.nextJSON()["userId"] as? String == "ok")
        }
    }

    // MARK: Client addresses

    @Test("TRUSTED_PROXIES as a CIDR range: X-Forwarded-For from a peer inside it is believed")
    func trustedProxyRange() async throws {
        try await withNode(["WEBSOCKET_MAX_CONNECTIONS_PER_IP": "1", "TRUSTED_PROXIES": "127.0.0.0/8, fd00::/8"]) { node in
            let a = try await node.connect(headers: [("X-Forwarded-For", "203.0.113.1")])
            let b = try await node.connect(headers: [("X-Forwarded-For", "203.0.113.2, 127.0.0.9")])
            await #expect(throws: WebSocketClient.Failure.self, "203.0.113.2 is at its limit") {
                _ = try await node.connect(headers: [("X-Forwarded-For", "203.0.113.2")])
            }
            _ = (a, b)
        }
    }

    @Test("registrations from addresses rotating within one IPv6 /64 share one budget")
    func registrationThrottlePer64() async throws {
        try await withNode(["AUTH_LOGIN_ATTEMPTS_PER_MINUTE": "2", "TRUSTED_PROXIES": "127.0.0.1"]) { node in
            var statuses: [Int] = []
            for index in 1...4 {
                statuses.append(try await HTTP.post(
                    "\(node.baseURL)/api/auth/register", json: ["username": "rotor\(index)", "password": "correct horse"],
                    headers: ["X-Forwarded-For": "2001:db8:7:7::\(index)"]).status)
            }
            #expect(statuses == [201, 201, 429, 429])
            let elsewhere = try await HTTP.post(
                "\(node.baseURL)/api/auth/register", json: ["username": "other64", "password": "correct horse"],
                headers: ["X-Forwarded-For": "2001:db8:7:8::1"])
            #expect(elsewhere.status == 201, "another /64 has its own budget")
        }
    }

    // MARK: Operator data

    @Test("with STATS_TOKEN, /stats and /metrics answer 401 without it and 200 with it")
    func statsToken() async throws {
        try await withNode(["STATS_TOKEN": "ops-secret"]) { node in
            for path in ["/stats", "/stats?scope=cluster", "/metrics"] {
                for headers in [[:], ["Authorization": "Bearer wrong"], ["Authorization": "ops-secret"]] as [[String: String]] {
                    let refused = try await HTTP.get("\(node.baseURL)\(path)", headers: headers)
                    #expect(refused.status == 401, "\(path) \(headers)")
                    #expect(try refused.json()["message"] as? String == "this endpoint needs Authorization: Bearer <STATS_TOKEN>")
                }
                let allowed = try await HTTP.get("\(node.baseURL)\(path)", headers: ["Authorization": "Bearer ops-secret"])
                #expect(allowed.status == 200, "\(path)")
            }
            // Health and readiness stay open for load balancers.
            #expect(try await HTTP.get("\(node.baseURL)/health").status == 200)
            #expect(try await HTTP.get("\(node.baseURL)/ready").status == 200)
        }
    }

    // MARK: Browsers

    @Test("with WEBSOCKET_ALLOWED_ORIGINS, an upgrade from an unlisted origin gets 403; listed and origin-less ones connect")
    func websocketOrigins() async throws {
        try await withNode(["WEBSOCKET_ALLOWED_ORIGINS": "https://chat.example"]) { node in
            do {
                _ = try await node.connect(headers: [("Origin", "https://evil.example")])
                Issue.record("an unlisted origin was upgraded")
            } catch WebSocketClient.Failure.upgradeRefused(let status, let body) {
                #expect(status == 403)
                #expect(body.contains("WEBSOCKET_ALLOWED_ORIGINS"))
            }
            let listed = try await node.connect(headers: [("Origin", "https://chat.example")])
            #expect(try await listed.request(["type": "ping"])["type"] as? String == "pong")
            let server = try await node.connect()
            #expect(try await server.request(["type": "ping"])["type"] as? String == "pong")
        }
        try await withNode { node in
            let anyOrigin = try await node.connect(headers: [("Origin", "https://evil.example")])
            #expect(try await anyOrigin.request(["type": "ping"])["type"] as? String == "pong", "unset: any origin")
        }
    }

    @Test("an upgrade to another path than /ws is answered 404, and a handshake of another version than 13 426, in the error shape: not a connection closed without a word")
    func upgradeElsewhere() async throws {
        try await withNode { node in
            for (path, headers, status, words) in [
                ("/wrong", [(String, String)](), 404, "the endpoint is /ws"),
                ("/ws", [("Sec-WebSocket-Version", "8")], 426, "use 13"),
            ] {
                do {
                    _ = try await node.connect(path: path, headers: headers)
                    Issue.record("\(path) was upgraded")
                } catch WebSocketClient.Failure.upgradeRefused(let refused, let body) {
                    #expect(refused == status)
                    #expect(body.contains(words), "\(body)")
                }
            }
            let client = try await node.connect()
            #expect(try await client.request(["type": "ping"])["type"] as? String == "pong")
        }
    }

    @Test("with CORS_ALLOWED_ORIGINS, a page from a listed origin can register, log in and post; an unlisted one gets no CORS headers")
    func cors() async throws {
        let app = "https://chat.example"
        try await withNode(["CORS_ALLOWED_ORIGINS": app]) { node in
            for path in ["/api/auth/register", "/api/auth/login", "/api/messages"] {
                let preflight = try await HTTP.request("OPTIONS", "\(node.baseURL)\(path)", headers: [
                    "Origin": app, "Access-Control-Request-Method": "POST",
                    "Access-Control-Request-Headers": "authorization, content-type",
                ])
                #expect(preflight.status == 204, "\(path)")
                #expect(preflight.headers["access-control-allow-origin"] == app)
                #expect(preflight.headers["access-control-allow-methods"]?.contains("POST") == true)
                let allowedHeaders = preflight.headers["access-control-allow-headers"]?.lowercased() ?? ""
                #expect(allowedHeaders.contains("authorization") && allowedHeaders.contains("content-type"))
                #expect(!allowedHeaders.contains("x-api-key"))
                #expect(preflight.headers["access-control-allow-credentials"] == nil)
                #expect(preflight.headers["vary"]?.contains("Origin") == true)
            }
            let registered = try await HTTP.post(
                "\(node.baseURL)/api/auth/register", json: ["username": "webby", "password": "correct horse"],
                headers: ["Origin": app])
            #expect(registered.status == 201)
            #expect(registered.headers["access-control-allow-origin"] == app)
            let login = try await HTTP.post(
                "\(node.baseURL)/api/auth/login", json: ["username": "webby", "password": "correct horse"],
                headers: ["Origin": app])
            #expect(login.status == 200)
            #expect(login.headers["access-control-allow-origin"] == app)
            let token = try #require(try login.json()["token"] as? String)
            let posted = try await HTTP.post(
                "\(node.baseURL)/api/messages", json: ["topic": "chat.lobby", "content": "hello from a page"],
                headers: ["Origin": app, "Authorization": "Bearer \(token)"])
            #expect((200..<300).contains(posted.status), "\(posted.status) \(posted.text)")
            #expect(posted.headers["access-control-allow-origin"] == app)
            // Errors carry the header too, so the page can read them.
            let wrong = try await HTTP.post(
                "\(node.baseURL)/api/auth/login", json: ["username": "webby", "password": "wrong password"],
                headers: ["Origin": app])
            #expect(wrong.status == 401)
            #expect(wrong.headers["access-control-allow-origin"] == app)

            let foreignPreflight = try await HTTP.request("OPTIONS", "\(node.baseURL)/api/auth/login", headers: [
                "Origin": "https://evil.example", "Access-Control-Request-Method": "POST",
            ])
            #expect(foreignPreflight.headers.keys.filter { $0.hasPrefix("access-control-") }.isEmpty)
            let foreign = try await HTTP.post(
                "\(node.baseURL)/api/auth/login", json: ["username": "webby", "password": "correct horse"],
                headers: ["Origin": "https://evil.example"])
            #expect(foreign.headers["access-control-allow-origin"] == nil)
            #expect(foreign.headers["vary"]?.contains("Origin") == true, "a cache keys the answer on Origin")
            let noOrigin = try await HTTP.get("\(node.baseURL)/api/history/chat.lobby", headers: ["Authorization": "Bearer \(token)"])
            #expect(noOrigin.headers["vary"]?.contains("Origin") == true)
        }
        try await withNode { node in
            let preflight = try await HTTP.request("OPTIONS", "\(node.baseURL)/api/auth/login", headers: [
                "Origin": app, "Access-Control-Request-Method": "POST",
            ])
            #expect(preflight.headers["access-control-allow-origin"] == nil, "unset: no CORS at all")
        }
    }
}
