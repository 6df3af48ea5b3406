import Broker
import Foundation
@testable import Node
import Testing

@Suite("Client and server message codec")
struct MessageCodecTests {
    @Test("client messages decode into their kinds, with the optional id")
    func decodeClientMessages() throws {
        #expect(try ClientMessage.decode(Array(#"{"type":"ping","id":3}"#.utf8)) == ClientMessage(.ping, id: .number(3)))
        #expect(try ClientMessage.decode(Array(#"{"type":"auth","token":"t"}"#.utf8)).kind == .auth(token: "t"))
        #expect(try ClientMessage.decode(Array(#"{"type":"subscribe","topic":"a.*"}"#.utf8)).kind == .subscribe(try TopicPattern("a.*")))
        let message = try ClientMessage.decode(Array(#"{"type":"message","topic":"a.b","data":{"x":[1,true,null]},"eventType":"e"}"#.utf8))
        #expect(message.kind == .message(
            topic: try Topic("a.b"), data: .object(["x": .array([.number(1), .bool(true), .null])]), metadata: nil, eventType: "e"))
    }

    @Test("an id that is neither string nor number is refused")
    func badId() {
        #expect(throws: ClientMessageError.self) { try ClientMessage.decode(Array(#"{"type":"ping","id":{}}"#.utf8)) }
    }

    @Test("server messages have the seed's fields and ISO 8601 timestamps")
    func encodeServerMessages() throws {
        let envelope = Envelope(
            id: "m1", origin: "n1", topic: try Topic("messages.user.123"), eventType: nil,
            data: .object(["content": .string("Hello!")]), metadata: .object(["senderId": .string("u")]),
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

    @Test("large integers in data survive the round trip")
    func integers() throws {
        let message = try ClientMessage.decode(Array(#"{"type":"message","topic":"a","data":{"n":9007199254740991,"f":1.5}}"#.utf8))
        guard case .message(let topic, let data, _, _) = message.kind else { Issue.record("not a message"); return }
        let text = String(decoding: ServerMessage.message(Envelope(id: "i", origin: "o", topic: topic, data: data)).encoded(), as: UTF8.self)
        #expect(text.contains("9007199254740991"))
        #expect(text.contains("1.5"))
    }
}
