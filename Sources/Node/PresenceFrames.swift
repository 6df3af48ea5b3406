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

    /// `{"type":"presence","topic":<topic>,"event":"resync","timestamp":..}`: events of the topic
    /// may have been lost (see ``ConnectionRegistry/resyncPresence(where:at:)``).
    static func resync(topic: Topic, timestamp: Date) -> [UInt8] {
        var json = JSONWriter(capacity: 96 + topic.name.utf8.count)
        json.raw("{\"type\":\"presence\",\"topic\":")
        json.string(topic.name)
        json.raw(",\"event\":\"resync\",\"timestamp\":")
        json.string(Timestamp.string(timestamp))
        json.raw("}")
        return json.bytes
    }

    /// `{"type":"presence.state","id":..,"topic":..,"members":[{"userId","data","connections"}],"count":N}`;
    /// `scope` `"node"` when only this node's members could be listed (Redis unreachable). The
    /// members listed are the page's, stopping at about `budget` bytes (the first always goes
    /// in); `"truncated":true` says that more follow (ask again with `after` the last listed);
    /// `count` is all of them.
    static func state(topic: Topic, page: PresencePage, scope: String?, requestId: JSONValue?, budget: Int) -> [UInt8] {
        var json = JSONWriter(capacity: 128 + min(budget, page.members.reduce(0) { $0 + $1.member.bytes.count + 20 }))
        json.raw("{\"type\":\"presence.state\"")
        if let requestId {
            json.raw(",\"id\":")
            json.value(requestId)
        }
        json.raw(",\"topic\":")
        json.string(topic.name)
        json.raw(",\"members\":")
        let truncated = writeMembers(of: page, to: &json, budget: budget)
        json.raw(",\"count\":\(page.count)")
        if truncated { json.raw(",\"truncated\":true") }
        if let scope {
            json.raw(",\"scope\":")
            json.string(scope)
        }
        json.raw(",\"timestamp\":")
        json.string(Timestamp.string(Date()))
        json.raw("}")
        return json.bytes
    }

    /// Writes `[{"userId":..,"data":..,"connections":N}, ...]`, in order, until the next member
    /// would take the array past `budget` bytes (the first always goes in: a room's members may
    /// hold 4 KiB of data each, and a room of 10,000 would make one 40 MB answer); returns how
    /// many were written.
    static func writeMembers(_ members: [PresenceMember], to json: inout JSONWriter, budget: Int) -> Int {
        let start = json.bytes.count
        json.raw("[")
        var written = 0
        for member in members {
            let entry = member.member.settingMember("connections", to: RawJSON(.number(JSONNumber(member.connections))))
            if written > 0 {
                guard json.bytes.count - start + entry.bytes.count + 2 <= budget else { break }
                json.raw(",")
            }
            json.raw(entry)
            written += 1
        }
        json.raw("]")
        return written
    }

    /// Writes `page`'s members as ``writeMembers(_:to:budget:)`` does; true when more follow
    /// (members the budget left out, or after the page).
    static func writeMembers(of page: PresencePage, to json: inout JSONWriter, budget: Int) -> Bool {
        writeMembers(page.members, to: &json, budget: budget) < page.members.count || page.more
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
