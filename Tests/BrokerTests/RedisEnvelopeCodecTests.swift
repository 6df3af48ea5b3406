import Foundation
import Testing
import TestSupport

@testable import Broker

@Suite("The envelope on Redis")
struct RedisEnvelopeCodecTests {
    /// A timestamp with whole milliseconds that a Double holds exactly (.125), so equality is exact.
    let stamp = Date(timeIntervalSince1970: 1_738_324_800.125)

    @Test("an envelope survives encoding and decoding unchanged")
    func roundTrip() throws {
        let envelope = Envelope(
            id: "node-1:42", origin: "node-1", topic: try Topic("chat.room-1"), userId: "u-7",
            eventType: "message", data: try RawJSON(validating: Array(JSONFixtures.faithfulData.utf8)),
            metadata: .null, timestamp: stamp)
        #expect(try EnvelopeCodec.decode(EnvelopeCodec.encode(envelope)) == envelope)

        let minimal = Envelope(id: "n:1", origin: "n", topic: nil, userId: "u", data: .null, timestamp: stamp)
        #expect(try EnvelopeCodec.decode(EnvelopeCodec.encode(minimal)) == minimal)
    }

    @Test("every millisecond of a timestamp comes back as it was read, through decode and encode (a fuzz finding)")
    func timestampsKeepTheirMillisecond() throws {
        for millisecond in 0..<1000 {
            let text = String(format: "2026-11-27T10:00:00.%03dZ", millisecond)
            let json = "{\"v\":1,\"id\":\"n:1\",\"origin\":\"n\",\"topic\":\"a.b\",\"data\":1,\"timestamp\":\"\(text)\"}"
            let envelope = try EnvelopeCodec.decode(Array(json.utf8))
            let again = String(decoding: EnvelopeCodec.encode(envelope), as: UTF8.self)
            #expect(again.contains("\"timestamp\":\"\(text)\""), "\(again)")
        }
    }

    @Test("a timestamp the calendar does not have is refused, not rolled over (a fuzz finding)",
          arguments: ["2025-02-31T12:00:00.123Z", "2025-13-01T12:00:00.123Z", "2025-01-01T24:00:00.000Z"])
    func impossibleTimestamps(stamp: String) {
        let json = "{\"v\":1,\"id\":\"n:1\",\"origin\":\"n\",\"topic\":\"a.b\",\"data\":1,\"timestamp\":\"\(stamp)\"}"
        #expect(throws: EnvelopeDecodingError.self) { try EnvelopeCodec.decode(Array(json.utf8)) }
        #expect(Timestamp.date("2025-02-28T12:00:00.123Z") != nil)
    }

    @Test("data and metadata are written in as the publisher's bytes and sliced out unchanged")
    func dataByteForByte() throws {
        let metadata = #"{"z":1,"senderId":"u","big":12345678901234567890}"#
        let envelope = Envelope(
            id: "n:1", origin: "n", topic: try Topic("t"), data: try RawJSON(validating: Array(JSONFixtures.faithfulData.utf8)),
            metadata: try RawJSON(validating: Array(metadata.utf8)), timestamp: stamp)
        let text = String(decoding: EnvelopeCodec.encode(envelope), as: UTF8.self)
        #expect(text.contains(#","data":"# + JSONFixtures.faithfulData + #","metadata":"# + metadata + #","timestamp""#))
        let decoded = try EnvelopeCodec.decode(Array(text.utf8))
        #expect(decoded.data.description == JSONFixtures.faithfulData)
        #expect(decoded.metadata?.description == metadata)
    }

    @Test("the JSON has the documented fields, in order, with an ISO 8601 millisecond timestamp")
    func documentedShape() throws {
        let envelope = Envelope(
            id: "node-1:42", origin: "node-1", topic: try Topic("chat.room-1"), eventType: "message",
            data: RawJSON(.object(["text": .string("hi")])), timestamp: stamp)
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
            #"{"v":1,"id":"a","origin":"n","topic":"t","data":{"k":1,"k":2},"timestamp":"2025-01-31T12:00:00.123Z"}"#,
            #"{"v":1,"id":"a","origin":"n","topic":"t","data":1,"data":2,"timestamp":"2025-01-31T12:00:00.123Z"}"#,
            #"{"v":1,"id":"a","origin":"n","topic":"t","data":NaN,"timestamp":"2025-01-31T12:00:00.123Z"}"#,
            #"{"v":1,"id":"a","origin":"n","topic":"t","data":"\ud800","timestamp":"2025-01-31T12:00:00.123Z"}"#,
            #"{"v":1,"id":"a","origin":"n","topic":"t","data":"#
                + JSONFixtures.nested(JSONParser.maxDepth) + #","timestamp":"2025-01-31T12:00:00.123Z"}"#,
        ])
    func rejects(payload: String) {
        #expect(throws: EnvelopeDecodingError.self) { try EnvelopeCodec.decode(Array(payload.utf8)) }
    }

    @Test("an envelope whose bytes are not UTF-8 is rejected, not repaired")
    func rejectsInvalidUTF8() {
        var payload = Array(#"{"v":1,"id":"a","origin":"n","topic":"t","data":"x","timestamp":"2025-01-31T12:00:00.123Z"}"#.utf8)
        payload[payload.firstIndex(of: UInt8(ascii: "x"))!] = 0xFF
        #expect(throws: EnvelopeDecodingError.self) { try EnvelopeCodec.decode(payload) }
    }

    @Test("unknown fields are ignored and a timestamp without milliseconds is accepted")
    func lenient() throws {
        let payload = #"{"v":1,"id":"a","origin":"n","topic":"t","data":{},"timestamp":"2025-01-31T12:00:00Z","later":true}"#
        let envelope = try EnvelopeCodec.decode(Array(payload.utf8))
        #expect(envelope.topic?.name == "t")
        #expect(envelope.timestamp == Date(timeIntervalSince1970: 1_738_324_800))
    }
}
