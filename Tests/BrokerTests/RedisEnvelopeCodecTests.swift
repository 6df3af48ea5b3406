import Foundation
import Testing

@testable import Broker

@Suite("The envelope on Redis")
struct RedisEnvelopeCodecTests {
    /// A timestamp with whole milliseconds that a Double holds exactly (.125), so equality is exact.
    let stamp = Date(timeIntervalSince1970: 1_738_324_800.125)

    @Test("an envelope survives encoding and decoding unchanged")
    func roundTrip() throws {
        let envelope = Envelope(
            id: "node-1:42", origin: "node-1", topic: try Topic("chat.room-1"), userId: "u-7",
            eventType: "message",
            data: .object(["text": .string("héllo / \"world\""), "n": .number(3), "x": .number(1.5),
                "list": .array([.bool(true), .null, .number(1e-7), .number(-2.5e300), .number(-0.0)]),
                "control": .string("line\nbreak\ttab\u{1}\u{1F}\\ end"), "empty": .object([:])]),
            metadata: .null, timestamp: stamp)
        #expect(try EnvelopeCodec.decode(EnvelopeCodec.encode(envelope)) == envelope)

        let minimal = Envelope(id: "n:1", origin: "n", topic: nil, userId: "u", data: .null, timestamp: stamp)
        #expect(try EnvelopeCodec.decode(EnvelopeCodec.encode(minimal)) == minimal)
    }

    @Test("the JSON has the documented fields, in order, with an ISO 8601 millisecond timestamp")
    func documentedShape() throws {
        let envelope = Envelope(
            id: "node-1:42", origin: "node-1", topic: try Topic("chat.room-1"), eventType: "message",
            data: .object(["text": .string("hi")]), timestamp: stamp)
        let json = String(decoding: EnvelopeCodec.encode(envelope), as: UTF8.self)
        #expect(
            json
                == #"{"v":1,"id":"node-1:42","origin":"node-1","topic":"chat.room-1","eventType":"message","data":{"text":"hi"},"timestamp":"2025-01-31T12:00:00.125Z"}"#
        )
    }

    @Test(
        "payloads that are not valid envelopes are rejected",
        arguments: [
            "notjson",
            "[1,2]",
            #"{"v":2,"id":"a","origin":"n","topic":"t","data":1,"timestamp":"2025-01-31T12:00:00.123Z"}"#,
            #"{"id":"a","origin":"n","topic":"t","data":1,"timestamp":"2025-01-31T12:00:00.123Z"}"#,
            #"{"v":1,"id":"","origin":"n","topic":"t","data":1,"timestamp":"2025-01-31T12:00:00.123Z"}"#,
            #"{"v":1,"id":"a","origin":"n","data":1,"timestamp":"2025-01-31T12:00:00.123Z"}"#,
            #"{"v":1,"id":"a","origin":"n","topic":"a..b","data":1,"timestamp":"2025-01-31T12:00:00.123Z"}"#,
            #"{"v":1,"id":"a","origin":"n","topic":"a.*","data":1,"timestamp":"2025-01-31T12:00:00.123Z"}"#,
            #"{"v":1,"id":"a","origin":"n","topic":"t","timestamp":"2025-01-31T12:00:00.123Z"}"#,
            #"{"v":1,"id":"a","origin":"n","topic":"t","data":1,"timestamp":"yesterday"}"#,
            #"{"v":1,"id":"a","origin":"n","topic":7,"data":1,"timestamp":"2025-01-31T12:00:00.123Z"}"#,
        ])
    func rejects(payload: String) {
        #expect(throws: EnvelopeDecodingError.self) { try EnvelopeCodec.decode(Array(payload.utf8)) }
    }

    @Test("numbers JSON cannot carry become strings instead of failing")
    func nonFiniteNumbers() throws {
        let envelope = Envelope(id: "n:1", origin: "n", topic: try Topic("t"), data: .array([.number(.nan), .number(-.infinity)]))
        let decoded = try EnvelopeCodec.decode(EnvelopeCodec.encode(envelope))
        #expect(decoded.data == .array([.string("NaN"), .string("-Infinity")]))
    }

    @Test("unknown fields are ignored and a timestamp without milliseconds is accepted")
    func lenient() throws {
        let payload = #"{"v":1,"id":"a","origin":"n","topic":"t","data":{},"timestamp":"2025-01-31T12:00:00Z","later":true}"#
        let envelope = try EnvelopeCodec.decode(Array(payload.utf8))
        #expect(envelope.topic?.name == "t")
        #expect(envelope.timestamp == Date(timeIntervalSince1970: 1_738_324_800))
    }

    @Test(
        "the envelope parser reads JSON exactly like Foundation's JSONDecoder",
        arguments: [
            #"{"a":[1,-2,3.5,-0.25,1e3,2E-2,12345678901234567890,0],"b":{"c":null,"d":true,"e":false}}"#,
            #" [ "plain" , "esc\"\\\/\b\f\n\r\t" , "\u00e9\u4e2d\ud83d\ude00" , "héllo 😀" ] "#,
            #"{"dup":1,"dup":2}"#, "[]", "{}", "[[[[]]]]", "-0", "1.5e+300", #""""#,
        ])
    func parserMatchesFoundation(json: String) throws {
        let expected = try JSONDecoder().decode(JSONValue.self, from: Data(json.utf8))
        #expect(try JSONValueParser.parse(Array(json.utf8)) == expected)
    }

    @Test(
        "the envelope parser rejects what is not JSON",
        arguments: [
            "", "   ", "[1,]", #"{"a":1,}"#, "{'a':1}", #"{"a" 1}"#, #"{"a":}"#, "[1 2]", "01", "1.", ".5", "+1",
            "-", "1e", "tru", "nul", "1 2", #""unterminated"#, "\"tab\there\"", #""\x""#, #""\ud83d""#,
            #""\u12G4""#, String(repeating: "[", count: 200) + String(repeating: "]", count: 200),
        ])
    func parserRejects(json: String) {
        #expect(throws: JSONValueParser.Failure.self) { try JSONValueParser.parse(Array(json.utf8)) }
    }
}
