import Testing

@testable import ChorusSDK

@Suite("Presence events as the node sends them")
struct PresenceEventTests {
    private func events(_ text: String) throws -> [PresenceEvent] {
        PresenceEvent.events(in: try #require(try JSONValue(parsing: text).objectValue))
    }

    @Test("a resync has no member; a join has one; an event of a kind the SDK does not know is left out")
    func kinds() throws {
        let resync = try events(#"{"type":"presence","topic":"rooms.a","event":"resync","timestamp":"2026-12-04T19:00:00.000Z"}"#)
        #expect(resync == [PresenceEvent(topic: "rooms.a", kind: .resync, member: nil, timestamp: "2026-12-04T19:00:00.000Z")])
        let join = try events(#"{"type":"presence","topic":"rooms.a","event":"join","member":{"userId":"ann","data":{}},"timestamp":"t"}"#)
        #expect(join.first?.kind == .join && join.first?.member?.userId == "ann")
        #expect(try events(#"{"type":"presence","topic":"rooms.a","event":"join","timestamp":"t"}"#).isEmpty, "a join without a member")
        #expect(try events(#"{"type":"presence","topic":"rooms.a","event":"shrug","timestamp":"t"}"#).isEmpty)
    }
}
