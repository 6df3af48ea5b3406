import Broker
import Foundation

/// The client frames of presence and typing, written by hand like ``ServerMessage``.
enum PresenceFrames {
    /// `{"type":<type>,"topic":<topic>,<the members of the envelope's data>,"timestamp":..}`:
    /// a presence event (`event`, `member`, or a batch's `events`) or a typing indicator
    /// (`userId`, `state`).
    static func signal(_ type: String, _ envelope: Envelope) -> [UInt8] {
        let data = envelope.data.bytes
        var json = JSONWriter(capacity: 96 + data.count)
        json.raw("{\"type\":")
        json.string(type)
        json.raw(",\"topic\":")
        json.string(envelope.topic?.name ?? "")
        if data.count > 2, data.first == UInt8(ascii: "{") {
            json.raw(",")
            json.raw(String(decoding: data[1..<(data.count - 1)], as: UTF8.self))
        }
        json.raw(",\"timestamp\":")
        json.string(Timestamp.string(envelope.timestamp))
        json.raw("}")
        return json.bytes
    }

    /// `{"type":"presence.state","id":..,"topic":..,"members":[{"userId","data","connections"}],"count":N}`;
    /// `scope` `"node"` when only this node's members could be listed (Redis unreachable).
    static func state(topic: Topic, members: [PresenceMember], scope: String?, requestId: JSONValue?) -> [UInt8] {
        var json = JSONWriter(capacity: 128 + members.reduce(0) { $0 + $1.member.bytes.count + 20 })
        json.raw("{\"type\":\"presence.state\"")
        if let requestId {
            json.raw(",\"id\":")
            json.value(requestId)
        }
        json.raw(",\"topic\":")
        json.string(topic.name)
        json.raw(",\"members\":")
        json.raw(membersArray(members))
        json.raw(",\"count\":\(members.count)")
        if let scope {
            json.raw(",\"scope\":")
            json.string(scope)
        }
        json.raw(",\"timestamp\":")
        json.string(Timestamp.string(Date()))
        json.raw("}")
        return json.bytes
    }

    /// `[{"userId":..,"data":..,"connections":N}, ...]`.
    static func membersArray(_ members: [PresenceMember]) -> RawJSON {
        var json = JSONWriter()
        json.raw("[")
        for (index, member) in members.enumerated() {
            if index > 0 { json.raw(",") }
            json.raw(member.member.settingMember("connections", to: RawJSON(.number(JSONNumber(member.connections)))))
        }
        json.raw("]")
        return (try? RawJSON(validating: json.bytes)) ?? RawJSON(.array([]))
    }

    /// The data of a typing envelope: `{"userId":..,"state":..}`.
    static func typingData(userId: String, state: String) -> RawJSON {
        var json = JSONWriter()
        json.raw("{\"userId\":")
        json.string(userId)
        json.raw(",\"state\":")
        json.string(state)
        json.raw("}")
        return (try? RawJSON(validating: json.bytes)) ?? .emptyObject
    }
}
