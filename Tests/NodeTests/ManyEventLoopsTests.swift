import ChorusClient
import Foundation
import Node
import Testing
import TestSupport

#if canImport(Glibc)
import Glibc
#endif

/// A node whose connections spread over more event loops than this machine has cores: the hub
/// hands each loop only the messages its connections may want (``LoopInterest``), so every kind
/// of audience must still be reached on whichever loop it sits.
@Suite("A node with four event loops")
struct ManyEventLoopsTests {
    @Test("rooms, wildcards, a user's messages, typing and presence events each reach exactly their audience, on every loop")
    func audiencesOnEveryLoop() async throws {
        let process = try await ChildProcess.spawn(
            try Executable.chorus(), [],
            environment: [
                "JWT_SECRET": TestNode.secret, "HTTP_HOST": "127.0.0.1", "HTTP_PORT": "0", "LOG_LEVEL": "info",
                "DATABASE_URL": "sqlite::memory:", "API_KEY": "loops-key", "NIO_SINGLETON_GROUP_LOOP_COUNT": "4",
                "TYPING_TIMEOUT": "120000",
            ],
            log: try TestLogs.folder("chorus").appendingPathComponent("many-loops.log"))
        defer { process.signal(SIGKILL) }
        let node = try await NodeProcess.readyPort(of: process)
        let url = "http://127.0.0.1:\(node)"
        let token = { (user: String) in TokenMinter(secret: Array(TestNode.secret.utf8)).mint(subject: user, ttl: .seconds(600)) }
        // Connected one after another, eight clients take the four loops in turn, two each.
        var clients: [WebSocketClient] = []
        for index in 0..<8 {
            let client = try await WebSocketClient.connect(port: node)
            #expect(try await client.request(["type": "auth", "token": token("u\(index)")])["type"] as? String == "auth_success")
            clients.append(client)
        }
        for room in 0..<4 { try await clients[room].subscribe("rooms.r\(room)") }
        try await clients[4].subscribe("rooms.*")
        try await clients[5].subscribe("rooms.r0")
        try await clients[7].subscribe("lobby", member: false, events: true)
        for client in clients { try await client.subscribe("markers.all") }
        let member = try await WebSocketClient.connect(port: node)  // a ninth: the first loop again
        #expect(try await member.request(["type": "auth", "token": token("u8")])["type"] as? String == "auth_success")
        try await member.subscribe("lobby", member: true, events: false)
        let join = try await clients[7].nextPresence()
        #expect(join.event == "join" && join.userId == "u8" && join.topic == "lobby")

        let publisher = clients[6]
        try await clients[0].typing("rooms.r0", "start")  // to rooms.r0's other subscribers
        // Its pong says the node has handled the typing (and handed it on) before the marker below.
        #expect(try await clients[0].request(["type": "ping"])["type"] as? String == "pong")
        for room in 0..<4 { try await publisher.publish(topic: "rooms.r\(room)", data: ["room": room]) }
        let direct = try await HTTP.post(
            "\(url)/api/publish", json: ["userId": "u6", "data": ["direct": true]], headers: ["X-API-Key": "loops-key"])
        #expect(direct.status == 202)
        let marker = try await publisher.publishMarker(topic: "markers.all")

        var received: [[String]] = []
        for client in clients { received.append(try await client.messages(before: marker).map(Self.summary).sorted()) }
        #expect(received[0] == ["message rooms.r0"])
        #expect(received[1] == ["message rooms.r1"])
        #expect(received[2] == ["message rooms.r2"])
        #expect(received[3] == ["message rooms.r3"])
        #expect(received[4] == ["message rooms.r0", "message rooms.r1", "message rooms.r2", "message rooms.r3", "typing rooms.r0"])
        #expect(received[5] == ["message rooms.r0", "typing rooms.r0"])
        #expect(received[6] == ["message user"])
        #expect(received[7] == [])

        // Once they let go, a room's messages no longer reach a loop that held it, and the others
        // still do; closing every connection takes back everything they held.
        _ = try await clients[0].request(["type": "unsubscribe", "topic": "rooms.r0"])
        try await publisher.publish(topic: "rooms.r0", data: ["again": true])
        let second = try await publisher.publishMarker(topic: "markers.all")
        let unsubscribed = try await clients[0].messages(before: second)
        #expect(unsubscribed == [])
        // (Leaving the room also ended the typing of clients[0]: a stop.)
        let stillSubscribed = try await clients[5].messages(before: second).map(Self.summary).sorted()
        #expect(stillSubscribed == ["message rooms.r0", "typing rooms.r0"])
        for client in clients + [member] { await client.close() }

        process.signal(SIGTERM)
        #expect(await process.wait(timeout: .seconds(20)) == 0)
        #expect(TestLogs.crashLines(in: process.output()).isEmpty, "\(process.output().suffix(3000))")
    }

    /// `message <topic>` (`message user` without one); other frames by their type.
    private static func summary(_ text: String) -> String {
        let object = (try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any]) ?? [:]
        return "\(object["type"] as? String ?? "?") \(object["topic"] as? String ?? "user")"
    }
}
