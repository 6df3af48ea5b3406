import ChorusClient
import Foundation
import NIOCore
import NIOWebSocket
import Testing
import TestSupport

@Suite("WebSocket protocol over a running node")
struct ProtocolTests {
    @Test("auth, subscribe, message, unsubscribe and ping work in the seed's shapes, with ids echoed")
    func wholeProtocol() async throws {
        try await withNode { node in
            let alice = try await node.connect()
            let auth = try await alice.request(["type": "auth", "token": node.token("alice"), "id": "a1"])
            #expect(auth["type"] as? String == "auth_success")
            #expect(auth["userId"] as? String == "alice")
            #expect(auth["id"] as? String == "a1")
            #expect(auth["timestamp"] as? String != nil)
            #expect(auth["maxMessageSize"] as? Int == 1_048_576, "WEBSOCKET_MAX_MESSAGE_SIZE, for the SDKs to refuse larger frames themselves")

            let subscribed = try await alice.request(["type": "subscribe", "topic": "chat.room.123", "id": 7])
            #expect(subscribed["type"] as? String == "subscribed")
            #expect(subscribed["topic"] as? String == "chat.room.123")
            #expect(subscribed["id"] as? Int == 7)

            let bob = try await node.connect(as: "bob")
            try await bob.send(json: [
                "type": "message", "topic": "chat.room.123",
                "data": ["content": "Hello, World!"], "metadata": ["priority": "high", "senderId": "forged"],
            ])
            let message = try await alice.next(type: "message")
            #expect(message["topic"] as? String == "chat.room.123")
            #expect(message["eventType"] as? String == "message.sent")
            #expect((message["data"] as? [String: Any])?["content"] as? String == "Hello, World!")
            let metadata = try #require(message["metadata"] as? [String: Any])
            #expect(metadata["senderId"] as? String == "bob", "the node sets senderId; a client cannot forge it")
            #expect(metadata["priority"] as? String == "high")
            let stamp = try #require(message["timestamp"] as? String)
            #expect((try? Date(stamp, strategy: .iso8601)) != nil || stamp.contains("T"))

            let unsubscribed = try await alice.request(["type": "unsubscribe", "topic": "chat.room.123"])
            #expect(unsubscribed["type"] as? String == "unsubscribed")
            let pong = try await alice.request(["type": "ping", "id": "p"])
            #expect(pong["type"] as? String == "pong")
            #expect(pong["id"] as? String == "p")
            // Bob publishes on the old topic, then a marker on one alice still holds: the marker
            // must be the next thing she receives.
            #expect(try await alice.request(["type": "subscribe", "topic": "markers.alice"])["type"] as? String == "subscribed")
            try await bob.send(json: ["type": "message", "topic": "chat.room.123", "data": "after"])
            let marker = try await bob.publishMarker(topic: "markers.alice")
            #expect(try await alice.messages(before: marker) == [], "nothing arrives after unsubscribe")
        }
    }

    @Test("wildcards: * matches exactly one segment, ** one or more")
    func wildcardDelivery() async throws {
        try await withNode { node in
            let one = try await node.connect(as: "one")
            let many = try await node.connect(as: "many")
            _ = try await one.request(["type": "subscribe", "topic": "chat.room.*"])
            _ = try await many.request(["type": "subscribe", "topic": "chat.**"])
            let publisher = try await node.connect(as: "pub")
            for topic in ["chat.room.123", "chat.room.123.typing", "chat", "other.room.1"] {
                try await publisher.send(json: ["type": "message", "topic": topic, "data": topic])
            }
            try await publisher.send(json: ["type": "message", "topic": "chat.end", "data": "end"])
            let marker = try await publisher.publishMarker(topic: "chat.room.marker")
            #expect(try await one.next(type: "message")["topic"] as? String == "chat.room.123")
            #expect(try await one.messages(before: marker) == [], "nothing deeper, nothing shallower")
            var seen: [String] = []
            while seen.last != "chat.end" {
                seen.append(try await many.next(type: "message")["topic"] as! String)
            }
            #expect(seen == ["chat.room.123", "chat.room.123.typing", "chat.end"])
        }
    }

    @Test("a connection holding a topic and a pattern that both match gets the message once")
    func overlappingSubscriptionsDeliverOnce() async throws {
        try await withNode { node in
            let client = try await node.connect(as: "u")
            _ = try await client.request(["type": "subscribe", "topic": "a.b"])
            _ = try await client.request(["type": "subscribe", "topic": "a.*"])
            _ = try await client.request(["type": "subscribe", "topic": "a.**"])
            try await client.send(json: ["type": "message", "topic": "a.b", "data": 1])
            let marker = try await client.publishMarker(topic: "a.b")
            _ = try await client.next(type: "message")
            #expect(try await client.messages(before: marker) == [], "the message once, then the marker (once)")
        }
    }

    @Test("unauthenticated clients may ping but get 401 on subscribe and publish")
    func unauthenticated() async throws {
        try await withNode { node in
            let client = try await node.connect()
            #expect(try await client.request(["type": "ping"])["type"] as? String == "pong")
            let subscribe = try await client.request(["type": "subscribe", "topic": "a"])
            #expect(subscribe["type"] as? String == "error")
            #expect(subscribe["code"] as? Int == 401)
            let publish = try await client.request(["type": "message", "topic": "a", "data": 1])
            #expect(publish["type"] as? String == "error")
            #expect(publish["code"] as? Int == 401)
        }
    }

    @Test(
        "bad input gets the seed's error shape and the connection keeps working",
        arguments: [
            ("{not json", "malformed JSON"),
            ("[1,2]", "malformed JSON"),
            (#"{"type":"shout"}"#, "unknown message type 'shout'"),
            (#"{"data":1}"#, "missing 'type'"),
            (#"{"type":"subscribe"}"#, "needs a 'topic'"),
            (#"{"type":"subscribe","topic":"a..b"}"#, "illegal topic"),
            (#"{"type":"subscribe","topic":"a*"}"#, "illegal topic"),
            (#"{"type":"subscribe","topic":"a b"}"#, "illegal topic"),
            (#"{"type":"message","topic":"a.*","data":1}"#, "illegal topic"),
            (#"{"type":"message","topic":"a"}"#, "needs 'data'"),
            (#"{"type":"auth"}"#, "needs a 'token'"),
        ])
    func badInput(frame: String, expected: String) async throws {
        try await withNode { node in
            let client = try await node.connect(as: "u")
            try await client.send(text: frame)
            let error = try await client.nextJSON()
            #expect(error["type"] as? String == "error")
            #expect(error["code"] as? Int == 400)
            #expect((error["message"] as? String)?.contains(expected) == true, "\(error)")
            #expect(error["details"] != nil)
            #expect(try await client.request(["type": "ping"])["type"] as? String == "pong")
        }
    }

    @Test("a request the parser refuses (a lone surrogate, nesting past 128) gets its 400 with its id, so the client's call ends at once")
    func malformedWithId() async throws {
        try await withNode { node in
            let client = try await node.connect(as: "u")
            try await client.send(text: #"{"type":"message","id":41,"topic":"a","data":{"text":"hello \ud83d"}}"#)
            let surrogate = try await client.nextJSON()
            #expect(surrogate["type"] as? String == "error" && surrogate["code"] as? Int == 400, "\(surrogate)")
            #expect(surrogate["id"] as? Int == 41)
            #expect((surrogate["message"] as? String)?.contains("surrogate") == true, "\(surrogate)")
            let deep = String(repeating: "[", count: 130) + String(repeating: "]", count: 130)
            try await client.send(text: #"{"type":"message","topic":"a","data":"# + deep + #","id":"d-1"}"#)
            let nested = try await client.nextJSON()
            #expect(nested["code"] as? Int == 400 && nested["id"] as? String == "d-1", "\(nested)")
        }
    }

    @Test("an unknown type of 100,000 characters is shown cut to 64 in the 400: a reply is never larger than what provoked it")
    func longUnknownTypeIsCut() async throws {
        try await withNode { node in
            let client = try await node.connect(as: "u")
            let type = String(repeating: "a", count: 100_000)
            try await client.send(json: ["type": type, "id": 7])
            let error = try await client.nextJSON()
            #expect(error["code"] as? Int == 400)
            let message = try #require(error["message"] as? String)
            #expect(message.hasPrefix("unknown message type '\(String(repeating: "a", count: 64))…'"), "\(message.prefix(200))")
            #expect(message.count < 300)
            #expect((error["details"] as? [String: Any])?["type"] as? String == String(repeating: "a", count: 64) + "…")
        }
    }

    @Test("an illegal topic of 300,000 bytes (or one character of 200,001) comes back cut to 64 Unicode scalars in each request's 400, not whole")
    func longIllegalTopicIsCut() async throws {
        try await withNode { node in
            let client = try await node.connect(as: "u")
            let topic = String(repeating: "a", count: 300_000)
            let oneCharacter = "a" + String(repeating: "\u{301}", count: 100_000)  // one grapheme of 200,001 bytes
            let requests: [[String: Any]] = [
                ["type": "subscribe", "topic": topic], ["type": "unsubscribe", "topic": topic],
                ["type": "message", "topic": topic, "data": 1], ["type": "typing", "topic": topic, "state": "start"],
                ["type": "presence.get", "topic": topic], ["type": "subscribe", "topic": oneCharacter],
            ]
            for (number, request) in requests.enumerated() {
                try await client.send(json: request.merging(["id": number]) { $1 })
                let error = try await client.nextJSON()
                #expect(error["code"] as? Int == 400 && error["id"] as? Int == number, "\(request["type"]!): \(String(describing: error).prefix(300))")
                let shown = (error["details"] as? [String: Any])?["topic"] as? String ?? ""
                let sent = request["topic"] as! String
                // Compared apart: a failure would print it all.
                let cut = shown == String(String.UnicodeScalarView(sent.unicodeScalars.prefix(64))) + "…"
                #expect(cut, "\(request["type"]!): \(shown.utf8.count) bytes")
            }
        }
    }

    @Test("a bad token is refused with auth_error 401 and the connection stays usable")
    func badToken() async throws {
        try await withNode { node in
            let client = try await node.connect()
            let reply = try await client.request(["type": "auth", "token": "not.a.token", "id": 1])
            #expect(reply["type"] as? String == "auth_error")
            #expect(reply["code"] as? Int == 401)
            #expect(reply["id"] as? Int == 1)
            let ok = try await client.request(["type": "auth", "token": node.token("later")])
            #expect(ok["type"] as? String == "auth_success")
        }
    }

    @Test("a message over WEBSOCKET_MAX_MESSAGE_SIZE closes that connection with 1009; others are unaffected; auth_success names the limit")
    func oversizeFrame() async throws {
        try await withNode(["WEBSOCKET_MAX_MESSAGE_SIZE": "1024"]) { node in
            let named = try await node.connect()
            let auth = try await named.request(["type": "auth", "token": node.token("n")])
            #expect(auth["maxMessageSize"] as? Int == 1024)
            let bystander = try await node.connect(as: "b")
            _ = try await bystander.request(["type": "subscribe", "topic": "t"])
            let big = try await node.connect(as: "big")
            try await big.send(text: #"{"type":"message","topic":"t","data":""# + String(repeating: "x", count: 2000) + #""}"#)
            #expect(try await big.closeCode() == 1009)
            let publisher = try await node.connect(as: "p")
            try await publisher.send(json: ["type": "message", "topic": "t", "data": "still here"])
            #expect(try await bystander.next(type: "message")["data"] as? String == "still here")
        }
    }

    @Test("a message sent in fragments, with a ping between them, is one message; a large one arrives whole")
    func fragmentedMessage() async throws {
        try await withNode { node in
            let client = try await node.connect(as: "u")
            try await client.send(opcode: .text, ByteBuffer(string: #"{"type":"subscribe","#), fin: false)
            try await client.send(opcode: .ping, ByteBuffer(string: "between"))
            try await client.send(opcode: .continuation, ByteBuffer(string: #""topic":"t","id":7}"#))
            #expect(try await client.next() == .pong)
            let subscribed = try await client.nextJSON()
            #expect(subscribed["type"] as? String == "subscribed")
            #expect(subscribed["id"] as? Int == 7)
            // Far larger than the node's first receive buffer, so it is read in many pieces.
            let text = String(repeating: "y", count: 200_000)
            try await client.send(json: ["type": "message", "topic": "t", "data": text])
            #expect(try await client.next(type: "message")["data"] as? String == text)
        }
    }

    @Test(
        "a frame RFC 6455 forbids closes that connection with 1002; others are unaffected",
        arguments: [
            "unmasked", "reserved bit", "fragmented ping", "continuation with nothing to continue",
        ])
    func protocolViolation(kind: String) async throws {
        try await withNode { node in
            let bystander = try await node.connect(as: "b")
            _ = try await bystander.request(["type": "subscribe", "topic": "t"])
            let offender = try await node.connect(as: "o")
            let data = ByteBuffer(string: #"{"type":"ping"}"#)
            switch kind {
            case "unmasked": try await offender.send(WebSocketFrame(fin: true, opcode: .text, maskKey: nil, data: data))
            case "reserved bit": try await offender.send(WebSocketFrame(fin: true, rsv1: true, opcode: .text, maskKey: .random(), data: data))
            case "fragmented ping": try await offender.send(opcode: .ping, data, fin: false)
            default: try await offender.send(opcode: .continuation, data)
            }
            #expect(try await offender.closeCode() == 1002)
            let publisher = try await node.connect(as: "p")
            try await publisher.send(json: ["type": "message", "topic": "t", "data": "still here"])
            #expect(try await bystander.next(type: "message")["data"] as? String == "still here")
        }
    }

    @Test(
        "a client's close frame is answered with its code when valid, and with 1002 or 1007 when not",
        arguments: Self.closeFrames)
    func closeFrame(payload: [UInt8], answer: UInt16) async throws {
        try await withNode { node in
            let client = try await node.connect(as: "c")
            try await client.send(opcode: .connectionClose, ByteBuffer(bytes: payload))
            #expect(try await client.closeCode() == answer)
        }
    }

    /// Close payloads and the code the node answers with: none (1000), a code it does not use
    /// (3000, echoed), 1001 with a reason, one byte, the reserved 1005, a reason that is not UTF-8.
    static let closeFrames: [([UInt8], UInt16)] = [
        ([], 1000), ([0x0B, 0xB8], 3000), ([0x03, 0xE9, 0x62, 0x79, 0x65], 1001),
        ([0x03], 1002), ([0x03, 0xED], 1002), ([0x03, 0xE8, 0xFF], 1007),
    ]

    @Test("binary frames get an error, not a crash")
    func binaryFrame() async throws {
        try await withNode { node in
            let client = try await node.connect(as: "u")
            try await client.send(opcode: .binary, .init(bytes: [1, 2, 3]))
            let error = try await client.nextJSON()
            #expect(error["code"] as? Int == 400)
            #expect(try await client.request(["type": "ping"])["type"] as? String == "pong")
        }
    }

    @Test("past WEBSOCKET_MAX_MESSAGES_PER_SECOND every dropped request with an id is answered 429 with its id and retryAfter; frames without one hear it at most once a second; the connection survives")
    func flood() async throws {
        try await withNode(["WEBSOCKET_MAX_MESSAGES_PER_SECOND": "5"]) { node in
            let client = try await node.connect(as: "u")
            let start = ContinuousClock.now
            // 100 of each, 40 s of the rate (burst 5): some are refused however slowly a loaded
            // machine sends them (with 20, a 3-s stall among the sends let every one through).
            for index in 0..<100 { try await client.send(json: ["type": "ping", "id": index]) }
            for _ in 0..<100 { try await client.send(json: ["type": "ping"]) }
            // Then a marker ping, sent again while it is dropped, until its pong arrives: the
            // connection survived, and every reply to the flood has been read before it.
            var (answered, unnamedRefusals, marker) = ([Int: String](), 0, 0)
            var done = false
            while !done, ContinuousClock.now - start < .seconds(60) {
                marker += 1
                try await client.send(json: ["type": "ping", "id": "after-\(marker)"])
                while let reply = try? await client.nextJSON(timeout: .seconds(2)) {
                    let type = reply["type"] as? String
                    if (reply["id"] as? String)?.hasPrefix("after-") == true {
                        if type == "pong" {
                            done = true
                            break
                        }
                    } else if let id = reply["id"] as? Int {
                        #expect(answered[id] == nil, "one answer per request")
                        answered[id] = type
                    } else if type == "error" {
                        unnamedRefusals += 1
                    }
                    if type == "error" {
                        #expect(reply["code"] as? Int == 429)
                        #expect((reply["details"] as? [String: Any])?["retryAfter"] as? Int == 1000)
                        #expect((reply["details"] as? [String: Any])?["limit"] as? Int == 5)
                    }
                }
            }
            let seconds = Int((ContinuousClock.now - start).components.seconds)
            #expect(done, "a ping after the flood is answered once the bucket refills")
            #expect(Set(answered.keys) == Set(0..<100), "every request with an id is answered: a pong, or 429 naming it")
            let refused = answered.values.filter { $0 == "error" }.count
            #expect(refused > 0 && refused < 100, "the excess was refused, the first within the burst answered")
            #expect(unnamedRefusals >= 1, "the frames without an id hear it too")
            #expect(unnamedRefusals <= seconds + 1, "at most once a second: \(unnamedRefusals) in \(seconds) s")
        }
    }

    @Test("the per-connection subscription limit is enforced with an error")
    func subscriptionLimit() async throws {
        try await withNode(["WEBSOCKET_MAX_SUBSCRIPTIONS": "2"]) { node in
            let client = try await node.connect(as: "u")
            _ = try await client.request(["type": "subscribe", "topic": "a"])
            _ = try await client.request(["type": "subscribe", "topic": "b"])
            let third = try await client.request(["type": "subscribe", "topic": "c"])
            #expect(third["type"] as? String == "error")
            #expect(third["code"] as? Int == 429)
            #expect(try await client.request(["type": "subscribe", "topic": "a"])["type"] as? String == "subscribed")
        }
    }

    @Test("tokens whose grants do not cover a topic are refused with 403")
    func grants() async throws {
        try await withNode { node in
            let client = try await node.connect()
            let token = node.token("g", grants: .init(subscribe: [try .init("chat.**")], publish: [try .init("chat.room1")]))
            _ = try await client.request(["type": "auth", "token": token])
            #expect(try await client.request(["type": "subscribe", "topic": "chat.room1"])["type"] as? String == "subscribed")
            #expect(try await client.request(["type": "subscribe", "topic": "news"])["code"] as? Int == 403)
            #expect(try await client.request(["type": "subscribe", "topic": "**"])["code"] as? Int == 403)
            #expect(try await client.request(["type": "message", "topic": "chat.room2", "data": 1])["code"] as? Int == 403)
        }
    }
}
