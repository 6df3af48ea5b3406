import Foundation
import Testing
import TestSupport

/// Registers `username` and returns the `{token, expiresAt, user}` answer.
func register(_ node: TestNode, _ username: String, password: String = "correct horse") async throws -> [String: Any] {
    let response = try await HTTP.post(
        "\(node.baseURL)/api/auth/register", json: ["username": username, "password": password])
    guard response.status == 201 else { throw TestFailure("register \(username): \(response.status) \(response.text)") }
    return try response.json()
}

extension [String: Any] {
    var token: String { self["token"] as! String }
    var userId: String { (self["user"] as! [String: Any])["id"] as! String }
}

@Suite("Accounts over HTTP")
struct AccountAPITests {
    @Test("register then login return a token the WebSocket accepts, and the same user")
    func registerAndLogin() async throws {
        try await withNode { node in
            let registered = try await register(node, "alice")
            let user = try #require(registered["user"] as? [String: Any])
            #expect(user["username"] as? String == "alice")
            #expect(user["passwordHash"] == nil && user["password"] == nil, "the hash never leaves the node")
            #expect(registered["expiresAt"] as? String != nil)

            let login = try await HTTP.post(
                "\(node.baseURL)/api/auth/login", json: ["username": "alice", "password": "correct horse"])
            #expect(login.status == 200)
            let session = try login.json()
            #expect(session.userId == registered.userId)

            let client = try await node.connect()
            let auth = try await client.request(["type": "auth", "token": session.token])
            #expect(auth["type"] as? String == "auth_success")
            #expect(auth["userId"] as? String == registered.userId)
        }
    }

    @Test(
        "bad registrations are answered with the error shape and the field",
        arguments: [
            (#"{"username":"al","password":"correct horse"}"#, 400, "username"),
            (#"{"username":"al ice","password":"correct horse"}"#, 400, "username"),
            (#"{"username":"alice","password":"short"}"#, 400, "password"),
            (#"{"username":"alice","password":"\u0000\u0000\u0000\u0000\u0000\u0000\u0000\u0000"}"#, 400, "password"),
            (#"{"username":"alice"}"#, 400, "password"),
            (#"{"username":5,"password":"correct horse"}"#, 400, "username"),
            ("{oops", 400, nil),
            ("[1,2]", 400, nil),
        ] as [(String, Int, String?)])
    func badRegistration(body: String, status: Int, field: String?) async throws {
        try await withNode { node in
            let response = try await HTTP.post("\(node.baseURL)/api/auth/register", body: Data(body.utf8))
            #expect(response.status == status)
            let error = try response.json()
            #expect(error["type"] as? String == "error")
            #expect(error["code"] as? Int == status)
            #expect(error["message"] as? String != nil)
            #expect((error["details"] as? [String: Any])?["field"] as? String == field)
        }
    }

    @Test("a taken user name is 409; a wrong password and an unknown user are the same 401")
    func conflictsAndBadCredentials() async throws {
        try await withNode { node in
            _ = try await register(node, "bob")
            let again = try await HTTP.post(
                "\(node.baseURL)/api/auth/register", json: ["username": "bob", "password": "another one"])
            #expect(again.status == 409)
            #expect((try again.json()["details"] as? [String: Any])?["field"] as? String == "username")

            let wrong = try await HTTP.post("\(node.baseURL)/api/auth/login", json: ["username": "bob", "password": "not the one"])
            let unknown = try await HTTP.post("\(node.baseURL)/api/auth/login", json: ["username": "nobody", "password": "not the one"])
            #expect(wrong.status == 401 && unknown.status == 401)
            #expect(try wrong.json()["message"] as? String == unknown.json()["message"] as? String)
        }
    }

    @Test("login attempts past AUTH_LOGIN_ATTEMPTS_PER_MINUTE get 429, even with the right password")
    func loginThrottle() async throws {
        try await withNode(["AUTH_LOGIN_ATTEMPTS_PER_MINUTE": "3"]) { node in
            _ = try await register(node, "carol")
            var statuses: [Int] = []
            for _ in 0..<3 {
                statuses.append(try await HTTP.post("\(node.baseURL)/api/auth/login", json: ["username": "carol", "password": "guess guess"]).status)
            }
            let right = try await HTTP.post("\(node.baseURL)/api/auth/login", json: ["username": "carol", "password": "correct horse"])
            #expect(statuses == [401, 401, 401])
            #expect(right.status == 429)
            #expect(try right.json()["code"] as? Int == 429)
        }
    }

    @Test("login and register bodies are at most 4 KiB (413), and past the address's login budget a login is refused before its body is read")
    func credentialBodies() async throws {
        try await withNode(["AUTH_LOGIN_ATTEMPTS_PER_MINUTE": "1"]) { node in
            let padding = String(repeating: "x", count: 5_000)
            for path in ["/api/auth/login", "/api/auth/register"] {
                let large = try await HTTP.post("\(node.baseURL)\(path)", json: ["username": "dave", "password": "correct horse", "pad": padding])
                #expect(large.status == 413, "\(path): \(large.status) \(large.text)")
            }
            // The address's budget (5 names a minute at one attempt each) is spent: the next
            // login is 429 whatever its body, even one that is not JSON at all.
            for n in 0..<4 {
                _ = try await HTTP.post("\(node.baseURL)/api/auth/login", json: ["username": "user\(n)", "password": "guess guess"])
            }
            let refused = try await HTTP.request("POST", "\(node.baseURL)/api/auth/login", body: Data("not json".utf8))
            #expect(refused.status == 429, "\(refused.status) \(refused.text)")
        }
    }

    @Test("one address trying name after name is throttled too; a name that cannot exist is refused before its own budget")
    func loginThrottleAcrossNames() async throws {
        try await withNode(["AUTH_LOGIN_ATTEMPTS_PER_MINUTE": "2"]) { node in
            // The address's budget is five names' worth: 10 attempts, refilled at one per 6 s.
            // A loaded machine may take seconds over these requests, so the refill is counted.
            let started = ContinuousClock.now
            var statuses: [Int] = []
            for index in 0..<40 where statuses.last != 429 {
                let name = index == 0 ? String(repeating: "x", count: 300) : "user\(index)"
                statuses.append(try await HTTP.post(
                    "\(node.baseURL)/api/auth/login", json: ["username": name, "password": "guess guess"]).status)
            }
            let refilled = Int((ContinuousClock.now - started) / .seconds(6))
            #expect(statuses.prefix(10).allSatisfy { $0 == 401 }, "\(statuses)")
            #expect(statuses.last == 429, "five names' worth of attempts per address: \(statuses)")
            #expect(statuses.count <= 11 + refilled, "\(statuses) in \(ContinuousClock.now - started)")
        }
        // Per name two attempts a minute: a third try of a possible name is throttled, while a
        // name that cannot exist is refused (401) before it takes a key in the per-name table
        // (or a bcrypt check, which nothing outside the node can see without timing it).
        try await withNode(["AUTH_LOGIN_ATTEMPTS_PER_MINUTE": "2"]) { node in
            func tries(_ name: String) async throws -> [Int] {
                var statuses: [Int] = []
                for _ in 0..<3 {
                    statuses.append(try await HTTP.post(
                        "\(node.baseURL)/api/auth/login", json: ["username": name, "password": "guess guess"]).status)
                }
                return statuses
            }
            let impossible = try await tries(String(repeating: "x", count: 300))
            let possible = try await tries("ghost")
            #expect(impossible == [401, 401, 401])
            #expect(possible == [401, 401, 429])
        }
    }

    @Test("registrations from one address past AUTH_LOGIN_ATTEMPTS_PER_MINUTE get 429")
    func registrationThrottle() async throws {
        try await withNode(["AUTH_LOGIN_ATTEMPTS_PER_MINUTE": "2"]) { node in
            _ = try await register(node, "first")
            _ = try await register(node, "second")
            let third = try await HTTP.post(
                "\(node.baseURL)/api/auth/register", json: ["username": "third", "password": "correct horse"])
            #expect(third.status == 429)
            #expect(try third.json()["code"] as? Int == 429)
        }
    }

    @Test("with AUTH_REGISTRATION=false registration is refused with 403")
    func registrationOff() async throws {
        try await withNode(["AUTH_REGISTRATION": "false"]) { node in
            let response = try await HTTP.post(
                "\(node.baseURL)/api/auth/register", json: ["username": "dave", "password": "correct horse"])
            #expect(response.status == 403)
            #expect(try response.json()["code"] as? Int == 403)
        }
    }

    @Test("with DATABASE_URL=none the accounts and messages API is absent (404) and WebSockets work")
    func noDatabase() async throws {
        try await withNode(["DATABASE_URL": "none"]) { node in
            let response = try await HTTP.post(
                "\(node.baseURL)/api/auth/register", json: ["username": "erin", "password": "correct horse"])
            #expect(response.status == 404)
            let client = try await node.connect(as: "erin")
            #expect(try await client.request(["type": "ping"])["type"] as? String == "pong")
        }
    }
}
