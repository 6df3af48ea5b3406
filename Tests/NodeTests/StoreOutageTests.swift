import Foundation
import Testing
import TestSupport

@Suite("The store going away")
struct StoreOutageTests {
    @Test("with PostgreSQL stopped, account and message routes answer 503 in the error shape and WebSockets keep working")
    func postgresDown() async throws {
        let postgres = try await PostgresProcess.start()
        do {
            try await postgres.createDatabase("chorus")
            try await withNode(["DATABASE_URL": postgres.url(database: "chorus"), "DATABASE_TIMEOUT": "3000"]) { node in
                let alice = try await register(node, "alice")
                let listener = try await node.connect(as: "listener")
                _ = try await listener.request(["type": "subscribe", "topic": "rooms.lobby"])

                await postgres.stop()
                let login = try await HTTP.post(
                    "\(node.baseURL)/api/auth/login", json: ["username": "alice", "password": "correct horse"])
                #expect(login.status == 503, "\(login.text)")
                #expect(try login.json()["code"] as? Int == 503)
                #expect(try login.json()["message"] as? String == "store unavailable: try again shortly")
                #expect(!login.text.contains("\(postgres.port)"), "the database's address is the operator's business: \(login.text)")
                let post = try await HTTP.post(
                    "\(node.baseURL)/api/messages", json: ["topic": "rooms.lobby", "content": "x"],
                    headers: ["Authorization": "Bearer \(alice.token)"])
                #expect(post.status == 503)

                // Real-time delivery does not depend on the store.
                let publisher = try await node.connect(as: "publisher")
                try await publisher.send(json: ["type": "message", "topic": "rooms.lobby", "data": "still here"])
                #expect(try await listener.next(type: "message")["data"] as? String == "still here")
            }
        } catch {
            await postgres.stop()
            throw error
        }
    }
}

extension StoreOutageTests {
    @Test("with PostgreSQL hung (SIGSTOP), account routes answer 503 within DATABASE_TIMEOUT, WebSockets keep working, and the node stops cleanly")
    func postgresHung() async throws {
        try await PostgresProcess.withServer { postgres in
            try await postgres.createDatabase("chorus")
            try await withNode(["DATABASE_URL": postgres.url(database: "chorus"), "DATABASE_TIMEOUT": "3000"]) { node in
                _ = try await register(node, "alice")
                let credentials = ["username": "alice", "password": "correct horse"]
                postgres.freeze()
                // Each request is answered: its query waits on a server that never replies, and
                // the node gives up on it after DATABASE_TIMEOUT instead of waiting with it.
                for _ in 1...3 {
                    let login = try await HTTP.post("\(node.baseURL)/api/auth/login", json: credentials)
                    #expect(login.status == 503, "\(login.text)")
                }
                let listener = try await node.connect(as: "listener")
                _ = try await listener.request(["type": "subscribe", "topic": "rooms.lobby"])
                let publisher = try await node.connect(as: "publisher")
                try await publisher.send(json: ["type": "message", "topic": "rooms.lobby", "data": "still here"])
                #expect(try await listener.next(type: "message")["data"] as? String == "still here")
            }
            // withNode has checked that the node stopped in time, with the server still frozen.
            postgres.thaw()
        }
    }

    @Test("when PostgreSQL comes back after an outage, the node serves accounts and messages again without a restart")
    func postgresBack() async throws {
        try await PostgresProcess.withServer { postgres in
            try await postgres.createDatabase("chorus")
            try await withNode(["DATABASE_URL": postgres.url(database: "chorus"), "DATABASE_TIMEOUT": "3000"]) { node in
                let alice = try await register(node, "alice")
                let credentials = ["username": "alice", "password": "correct horse"]

                await postgres.interrupt()
                let during = try await HTTP.post("\(node.baseURL)/api/auth/login", json: credentials)
                #expect(during.status == 503, "\(during.text)")

                try await postgres.restart()
                // The pool reconnects on its own; the first requests may still meet the old connections.
                var login = during
                let back = await eventually(within: .seconds(30), every: .milliseconds(200)) {
                    login = (try? await HTTP.post("\(node.baseURL)/api/auth/login", json: credentials)) ?? login
                    return login.status == 200
                }
                #expect(back, "login after the outage: \(login.status) \(login.text)")
                let post = try await HTTP.post(
                    "\(node.baseURL)/api/messages", json: ["topic": "rooms.lobby", "content": "after the outage"],
                    headers: ["Authorization": "Bearer \(alice.token)"])
                #expect(post.status == 201, "\(post.text)")
                let listed = try await HTTP.get(
                    "\(node.baseURL)/api/messages?topic=rooms.lobby", headers: ["Authorization": "Bearer \(alice.token)"])
                #expect((try listed.json()["messages"] as? [[String: Any]])?.compactMap { $0["content"] as? String } == ["after the outage"])
            }
        }
    }
}
