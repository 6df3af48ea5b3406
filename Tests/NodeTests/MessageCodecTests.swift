import Broker
import Foundation
@testable import Node
import Testing
import TestSupport

@Suite("Client and server message codec")
struct MessageCodecTests {
    @Test("client messages decode into their kinds, with the optional id")
    func decodeClientMessages() throws {
        #expect(try ClientMessage.decode(Array(#"{"type":"ping","id":3}"#.utf8)) == ClientMessage(.ping, id: .number(3)))
        #expect(try ClientMessage.decode(Array(#"{"type":"ping","metadata":null}"#.utf8)).kind == .ping)
        #expect(try ClientMessage.decode(Array(#"{"type":"auth","token":"t"}"#.utf8)).kind == .auth(token: "t"))
        #expect(try ClientMessage.decode(Array(#"{"type":"subscribe","topic":"a.*"}"#.utf8)).kind == .subscribe(try TopicPattern("a.*")))
        let message = try ClientMessage.decode(Array(#"{"type":"message","topic":"a.b","data":{"x":[1,true,null]},"eventType":"e"}"#.utf8))
        #expect(message.kind == .message(
            topic: try Topic("a.b"), data: try RawJSON(validating: Array(#"{"x":[1,true,null]}"#.utf8)), metadata: nil, eventType: "e"))
    }

    @Test("an id that is neither string nor number is refused")
    func badId() {
        #expect(throws: ClientMessageError.self) { try ClientMessage.decode(Array(#"{"type":"ping","id":{}}"#.utf8)) }
    }

    @Test("server messages have the seed's fields and ISO 8601 timestamps")
    func encodeServerMessages() throws {
        let envelope = Envelope(
            id: "m1", origin: "n1", topic: try Topic("messages.user.123"), eventType: nil,
            data: RawJSON(.object(["content": .string("Hello!")])), metadata: RawJSON(.object(["senderId": .string("u")])),
            timestamp: Date(timeIntervalSince1970: 1_700_000_000.5))
        let object = try JSONSerialization.jsonObject(with: Data(ServerMessage.message(envelope).encoded())) as! [String: Any]
        #expect(object["type"] as? String == "message")
        #expect(object["topic"] as? String == "messages.user.123")
        #expect(object["eventType"] as? String == "message.sent")
        #expect((object["data"] as? [String: Any])?["content"] as? String == "Hello!")
        #expect((object["metadata"] as? [String: Any])?["senderId"] as? String == "u")
        #expect(object["timestamp"] as? String == "2023-11-14T22:13:20.500Z")
        #expect(object["id"] == nil, "message broadcasts carry no request id")

        let error = try JSONSerialization.jsonObject(
            with: Data(ServerMessage.error(code: 400, message: "bad", details: nil, id: .string("r")).encoded())) as! [String: Any]
        #expect(error["type"] as? String == "error")
        #expect(error["code"] as? Int == 400)
        #expect(error["message"] as? String == "bad")
        #expect(error["details"] as? [String: Any] != nil)
        #expect(error["id"] as? String == "r")
    }

    @Test("a publish's answer says scope node when only this node delivered it, and uncertain when Redis may have it too")
    func publishedScope() throws {
        func answer(_ outcome: PublishOutcome) throws -> [String: Any] {
            let reply = ServerMessage.published(topic: "a.b", id: .number(1), messageId: "k", outcome: outcome)
            return try JSONSerialization.jsonObject(with: Data(reply.encoded())) as! [String: Any]
        }
        let position = HistoryPosition(offset: 3, epoch: "e")
        let redis = try answer(PublishOutcome(position: position))
        #expect(redis["scope"] == nil && redis["uncertain"] == nil && redis["offset"] as? Int == 3)
        let local = try answer(PublishOutcome(position: position, nodeOnly: true))
        #expect(local["scope"] as? String == "node" && local["uncertain"] == nil)
        let doubtful = try answer(PublishOutcome(position: position, nodeOnly: true, uncertain: true))
        #expect(doubtful["scope"] as? String == "node" && doubtful["uncertain"] as? Bool == true)
    }

    @Test("a message's data and metadata are delivered as the client's bytes, with senderId set by the node")
    func dataByteForByte() throws {
        let metadata = #"{"z":1,"senderId":"forged","big":12345678901234567890}"#
        let frame = #"{"type":"message","topic":"a","data":"# + JSONFixtures.faithfulData + #","metadata":"# + metadata + "}"
        let message = try ClientMessage.decode(Array(frame.utf8))
        guard case .message(let topic, let data, let given, _) = message.kind else { Issue.record("not a message"); return }
        #expect(data.description == JSONFixtures.faithfulData)
        let envelope = Envelope(
            id: "i", origin: "o", topic: topic, data: data, metadata: given?.settingMember("senderId", to: .string("bob")))
        let text = String(decoding: ServerMessage.message(envelope).encoded(), as: UTF8.self)
        #expect(text.contains(
            #","data":"# + JSONFixtures.faithfulData + #","metadata":{"z":1,"senderId":"bob","big":12345678901234567890},"#))
    }

    @Test("a request id is echoed exactly as sent, however large")
    func exactRequestId() throws {
        for id in ["12345678901234567890", "1E+2", "-0", "-1.50e-7"] {
            let message = try ClientMessage.decode(Array(#"{"type":"ping","id":\#(id)}"#.utf8))
            let pong = String(decoding: ServerMessage.pong(id: message.id).encoded(), as: UTF8.self)
            #expect(pong.hasPrefix(#"{"type":"pong","id":\#(id),"#), "\(pong)")
        }
    }

    @Test(
        "a frame with a duplicate key, too deep a nesting or bad JSON is refused, naming the problem",
        arguments: [
            (#"{"type":"message","topic":"a","data":{"k":1,"k":2}}"#, "duplicate key 'k'"),
            (#"{"type":"ping","type":"ping"}"#, "duplicate key 'type'"),
            (#"{"type":"message","topic":"a","data":"# + JSONFixtures.nested(JSONParser.maxDepth) + "}", "nested deeper than 128"),
            (#"{"type":"message","topic":"a","data":01}"#, "leading zero"),
            (#"{"type":"message","topic":"a","data":NaN}"#, "unexpected character"),
            (#"{"type":"message","topic":"a","data":"\ud800"}"#, "lone surrogate"),
        ])
    func refused(frame: String, problem: String) {
        #expect {
            try ClientMessage.decode(Array(frame.utf8))
        } throws: { error in
            (error as? ClientMessageError)?.message.contains(problem) == true
                && (error as? ClientMessageError)?.message.hasPrefix("malformed JSON: ") == true
        }
    }
}
