import Broker
import ChorusClient
import Foundation
import Testing
import TestSupport

/// What a client sends arrives as it was sent: `data` and `metadata` reach subscribers, and the
/// store, as the publisher's bytes. Every check compares raw text, never a parsed value.
@Suite("Data arrives byte for byte")
struct FaithfulDataTests {
    /// The raw text of member `name` of a delivered frame.
    private func member(_ name: String, of frame: String) throws -> String {
        try #require(try RawJSONObject(parsing: Array(frame.utf8))[name]).description
    }

    /// The next frame whose `type` is `type`, as text.
    private func nextText(_ client: WebSocketClient, type: String) async throws -> String {
        while true {
            let text = try await client.nextText()
            if text.hasPrefix(#"{"type":"\#(type)""#) { return text }
        }
    }

    @Test("over the WebSocket: data and metadata are delivered as sent, senderId set in place by the node")
    func overWebSocket() async throws {
        try await withNode { node in
            let subscriber = try await node.connect(as: "alice")
            _ = try await subscriber.request(["type": "subscribe", "topic": "exact.t"])
            let publisher = try await node.connect(as: "bob")
            let metadata = #"{"z":1,"senderId":"forged","a":12345678901234567890,"e":1e400}"#
            try await publisher.send(
                text: #"{"type":"message","topic":"exact.t","data":"# + JSONFixtures.faithfulData + #","metadata":"# + metadata + "}")
            let frame = try await nextText(subscriber, type: "message")
            #expect(frame.contains(#","data":"# + JSONFixtures.faithfulData + #","metadata":"#))
            #expect(try member("data", of: frame) == JSONFixtures.faithfulData)
            #expect(try member("metadata", of: frame) == #"{"z":1,"senderId":"bob","a":12345678901234567890,"e":1e400}"#)

            try await publisher.send(text: #"{"type":"message","topic":"exact.t","data":[-0,1E+2,"\ud83d\ude00"]}"#)
            let second = try await nextText(subscriber, type: "message")
            #expect(try member("data", of: second) == #"[-0,1E+2,"\ud83d\ude00"]"#)
            #expect(try member("metadata", of: second) == #"{"senderId":"bob"}"#)
        }
    }

    @Test("a long string and data nested to the bound are delivered whole")
    func longAndDeep() async throws {
        try await withNode { node in
            let subscriber = try await node.connect(as: "alice")
            _ = try await subscriber.request(["type": "subscribe", "topic": "exact.t"])
            let publisher = try await node.connect(as: "bob")
            let long = "\"" + String(repeating: "chorus \\u00e9 😀 ", count: 20_000) + "\""
            try await publisher.send(text: #"{"type":"message","topic":"exact.t","data":"# + long + "}")
            #expect(try member("data", of: try await nextText(subscriber, type: "message")) == long)
            // The frame is one level; data may nest the other 127.
            let deep = JSONFixtures.nested(JSONParser.maxDepth - 1)
            try await publisher.send(text: #"{"type":"message","topic":"exact.t","data":"# + deep + "}")
            #expect(try member("data", of: try await nextText(subscriber, type: "message")) == deep)
        }
    }

    @Test("a request id is echoed exactly: 12345678901234567890 stays 12345678901234567890")
    func exactRequestId() async throws {
        try await withNode { node in
            let client = try await node.connect(as: "alice")
            try await client.send(text: #"{"type":"ping","id":12345678901234567890}"#)
            #expect(try await nextText(client, type: "pong").hasPrefix(#"{"type":"pong","id":12345678901234567890,"#))
            try await client.send(text: #"{"type":"subscribe","topic":"a.b","id":1E+2}"#)
            #expect(try await nextText(client, type: "subscribed").contains(#""id":1E+2,"#))
        }
    }

    @Test(
        "a frame with a duplicate key or nested too deep gets a 400 naming the problem, and nothing is delivered",
        arguments: [
            (#"{"type":"message","topic":"exact.t","data":{"a":{"k":1,"k":2}}}"#, "duplicate key 'k'"),
            (#"{"type":"message","topic":"exact.t","data":1,"data":2}"#, "duplicate key 'data'"),
            (#"{"type":"message","topic":"exact.t","metadata":{"senderId":"x","senderId":"y"},"data":1}"#, "duplicate key 'senderId'"),
            (#"{"type":"message","topic":"exact.t","data":"# + JSONFixtures.nested(JSONParser.maxDepth) + "}", "nested deeper than 128"),
            (#"{"type":"message","topic":"exact.t","data":[1,]}"#, "malformed JSON"),
            (#"{"type":"message","topic":"exact.t","data":"\udc00"}"#, "lone surrogate"),
        ])
    func refusedOverWebSocket(frame: String, problem: String) async throws {
        try await withNode { node in
            let subscriber = try await node.connect(as: "alice")
            _ = try await subscriber.request(["type": "subscribe", "topic": "exact.t"])
            let publisher = try await node.connect(as: "bob")
            try await publisher.send(text: frame)
            let error = try await publisher.next(type: "error")
            #expect(error["code"] as? Int == 400)
            #expect((error["message"] as? String)?.contains(problem) == true, "\(error)")
            #expect(await subscriber.staysQuiet())
        }
    }

    @Test("POST /api/publish delivers data and metadata as posted, and refuses duplicate keys and deep nesting")
    func overHTTPPublish() async throws {
        try await withNode(["API_KEY": "k"]) { node in
            let subscriber = try await node.connect(as: "alice")
            _ = try await subscriber.request(["type": "subscribe", "topic": "exact.t"])
            let body = #"{"topic":"exact.t","data":"# + JSONFixtures.faithfulData + #","metadata":{"trace":9007199254740993}}"#
            let response = try await HTTP.post("\(node.baseURL)/api/publish", body: Data(body.utf8), headers: ["X-API-Key": "k"])
            #expect(response.status == 202, "\(response.text)")
            let frame = try await nextText(subscriber, type: "message")
            #expect(try member("data", of: frame) == JSONFixtures.faithfulData)
            #expect(try member("metadata", of: frame) == #"{"trace":9007199254740993,"senderId":"server"}"#)

            for (bad, problem) in [
                (#"{"topic":"exact.t","data":{"x":1,"x":1}}"#, "duplicate key 'x'"),
                (#"{"topic":"exact.t","data":"# + JSONFixtures.nested(JSONParser.maxDepth) + "}", "nested deeper than 128"),
                (#"{"topic":"exact.t","data":NaN}"#, "malformed JSON"),
            ] {
                let refused = try await HTTP.post("\(node.baseURL)/api/publish", body: Data(bad.utf8), headers: ["X-API-Key": "k"])
                #expect(refused.status == 400)
                #expect(refused.text.contains(problem), "\(refused.text)")
            }
            var invalidUTF8 = Array(#"{"topic":"exact.t","data":"x"}"#.utf8)
            invalidUTF8[invalidUTF8.lastIndex(of: UInt8(ascii: "x"))!] = 0xC0
            let refused = try await HTTP.post("\(node.baseURL)/api/publish", body: Data(invalidUTF8), headers: ["X-API-Key": "k"])
            #expect(refused.status == 400)
            #expect(refused.text.contains("invalid UTF-8"), "\(refused.text)")
            #expect(await subscriber.staysQuiet())
        }
    }

    @Test("a stored message read back from /api/messages, and its event, have the metadata it was posted with")
    func storedMessages() async throws {
        try await withNode { node in
            let alice = try await register(node, "alice")
            let listener = try await node.connect()
            _ = try await listener.request(["type": "auth", "token": alice.token])
            _ = try await listener.request(["type": "subscribe", "topic": "rooms.exact"])
            let metadata = #"{"z":1796133956872868123,"a":-9007199254740993,"e":1e400,"s":"\u00e9\ud83d\ude00"}"#
            let body = #"{"topic":"rooms.exact","content":"hi","metadata":"# + metadata + "}"
            let created = try await HTTP.post(
                "\(node.baseURL)/api/messages", body: Data(body.utf8),
                headers: ["Authorization": "Bearer \(alice.token)", "Content-Type": "application/json"])
            #expect(created.status == 201, "\(created.text)")
            #expect(try member("metadata", of: created.text) == metadata)

            let event = try await nextText(listener, type: "message")
            #expect(try member("metadata", of: try member("data", of: event)) == metadata)

            let list = try await HTTP.get(
                "\(node.baseURL)/api/messages?topic=rooms.exact", headers: ["Authorization": "Bearer \(alice.token)"])
            #expect(list.status == 200)
            #expect(list.text.contains(#""metadata":"# + metadata + ","), "\(list.text)")

            let duplicate = try await HTTP.post(
                "\(node.baseURL)/api/messages", body: Data(#"{"topic":"rooms.exact","content":"a","content":"b"}"#.utf8),
                headers: ["Authorization": "Bearer \(alice.token)", "Content-Type": "application/json"])
            #expect(duplicate.status == 400)
            #expect(duplicate.text.contains("duplicate key 'content'"))
        }
    }
}
