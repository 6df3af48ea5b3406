import Broker
import Testing

@Suite("Presence and typing envelopes")
struct PresenceEnvelopeTests {
    @Test("a signal's kind crosses Redis and a message has none; an unknown kind is malformed")
    func kindRoundTrip() throws {
        var envelope = Envelope(
            id: "n-1", origin: "n", topic: try Topic("rooms.lobby"),
            data: PresenceEventData.make(event: "join", member: PresenceMember.document(userId: "alice", data: nil)),
            timestamp: Timestamp.date("2026-12-01T17:00:00.123Z")!)
        envelope.kind = .presence
        let bytes = EnvelopeCodec.encode(envelope)
        #expect(String(decoding: bytes, as: UTF8.self).contains(#""kind":"presence","data":{"event":"join","member":{"userId":"alice","data":{}}}"#))
        #expect(try EnvelopeCodec.decode(bytes) == envelope)
        envelope.kind = nil
        #expect(try EnvelopeCodec.decode(EnvelopeCodec.encode(envelope)).kind == nil)
        let unknown = #"{"v":1,"id":"x","origin":"n","topic":"a","kind":"later","data":1,"timestamp":"2026-12-01T00:00:00.000Z"}"#
        #expect(throws: EnvelopeDecodingError.self) { try EnvelopeCodec.decode(Array(unknown.utf8)) }
    }

    /// What the Lua scripts write must be what the codec reads: the reaper's leave, byte for byte
    /// as the script concatenates it.
    @Test("the shape the presence scripts publish decodes")
    func scriptShape() throws {
        let text = #"{"v":1,"id":"reap-1a-3-1","origin":"node-2","topic":"rooms.lobby","kind":"presence","data":{"event":"leave","member":{"userId":"bob","data":{"s":1}}},"timestamp":"2026-12-01T17:00:00.000Z"}"#
        let envelope = try EnvelopeCodec.decode(Array(text.utf8))
        #expect(envelope.kind == .presence && envelope.topic?.name == "rooms.lobby")
        #expect(envelope.data.description == #"{"event":"leave","member":{"userId":"bob","data":{"s":1}}}"#)
    }
}
