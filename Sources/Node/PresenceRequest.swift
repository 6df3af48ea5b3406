import Broker

/// What a `subscribe` asks of presence: `"presence":{"data":{...}}` (or `"presence":true`)
/// makes the connection's user a member of the topic, with `data` (any JSON, size-limited by
/// `PRESENCE_MAX_DATA_SIZE`) as the member's data; `"presenceEvents":true` asks for the topic's
/// `presence` events. On a topic the connection subscribes already, `"presence":false` ends its
/// membership and `"presenceEvents":false` its events, while the subscription goes on: leaving
/// presence costs no unsubscribe, so no message is missed.
public struct PresenceRequest: Sendable, Equatable {
    /// The connection's user becomes a member.
    public var member: Bool
    /// The member's data, as the client sent it; nil keeps the data the member has (or `{}`).
    public var data: RawJSON?
    /// The connection receives `presence` events.
    public var events: Bool
    /// `"presence":false`: the connection stops counting as a member.
    public var leaves = false
    /// `"presenceEvents":false`: the connection stops receiving `presence` events.
    public var endsEvents = false

    /// Whether the request joins or watches: what a pattern or a refused subscribe cannot have.
    var joinsOrWatches: Bool { member || events }

    /// Nil when the subscribe carries neither field.
    static func decode(presence: RawJSON?, events: RawJSON?, id: JSONValue?) throws(ClientMessageError) -> PresenceRequest? {
        var request = PresenceRequest(member: false, data: nil, events: false)
        if let events, !events.isNull {
            switch events.value {
            case .bool(let flag):
                request.events = flag
                request.endsEvents = !flag
            default:
                throw ClientMessageError(
                    message: "'presenceEvents' must be true or false", id: id, details: .object(["field": .string("presenceEvents")]))
            }
        }
        if let presence, !presence.isNull {
            switch presence.value {
            case .bool(let flag):
                request.member = flag
                request.leaves = !flag
            case .object:
                request.member = true
                let fields = try? RawJSONObject(parsing: presence.bytes)
                if let data = fields?["data"], !data.isNull { request.data = data }
            default:
                throw ClientMessageError(
                    message: "'presence' must be an object ({\"data\":...}) or true", id: id,
                    details: .object(["field": .string("presence")]))
            }
        }
        return request.joinsOrWatches || request.leaves || request.endsEvents ? request : nil
    }
}
