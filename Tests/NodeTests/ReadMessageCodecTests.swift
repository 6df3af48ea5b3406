import Broker
import Foundation
@testable import Node
import Testing

@Suite("The read request and its reply")
struct ReadMessageCodecTests {
    @Test("read decodes with its messageId and id")
    func decode() throws {
        let message = try ClientMessage.decode(Array(#"{"type":"read","messageId":"m-1","id":9}"#.utf8))
        #expect(message == ClientMessage(.read(messageId: "m-1"), id: .number(9)))
    }

    @Test("read without a string messageId is refused, naming the field, with the request id",
          arguments: [#"{"type":"read","id":"r"}"#, #"{"type":"read","messageId":5,"id":"r"}"#, #"{"type":"read","messageId":"","id":"r"}"#])
    func refused(_ frame: String) {
        let error = #expect(throws: ClientMessageError.self) { try ClientMessage.decode(Array(frame.utf8)) }
        #expect(error?.message.contains("messageId") == true)
        #expect(error?.id == .string("r"))
    }

    @Test("read_recorded carries the message, the time, whether it advanced and the request id")
    func encode() throws {
        let reply = ServerMessage.readRecorded(
            messageId: "m-1", readAt: Date(timeIntervalSince1970: 1_700_000_000.25), advanced: false, id: .number(9))
        let json = try #require(try JSONSerialization.jsonObject(with: Data(reply.encoded())) as? [String: Any])
        #expect(json["type"] as? String == "read_recorded")
        #expect(json["messageId"] as? String == "m-1")
        #expect(json["readAt"] as? String == "2023-11-14T22:13:20.250Z")
        #expect(json["advanced"] as? Bool == false)
        #expect(json["id"] as? Int == 9)
    }
}
