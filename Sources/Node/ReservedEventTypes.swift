/// The `eventType`s only the node itself publishes: what the HTTP data API announces about a
/// stored message after it was posted (`message.updated`, `message.deleted`, `message.read`).
///
/// A client (a WebSocket `message`, or `POST /api/publish` with a token) may not publish them,
/// so a subscriber can believe that a message was edited, deleted or read when it sees one.
/// `message.sent` stays open to clients: it is the default `eventType` of every publish, and a
/// stored post's event is told apart by its `metadata.senderId` (docs/protocol.md). The
/// application's own requests (`API_KEY`) are not restricted.
enum ReservedEventTypes {
    static let names: Set<String> = ["message.updated", "message.deleted", "message.read"]

    /// Why a client may not publish with `eventType`; nil when it may.
    static func denial(_ eventType: String?) -> String? {
        guard let eventType, names.contains(eventType) else { return nil }
        return "eventType '\(eventType)' is the node's own (the HTTP API's events about stored messages): a client may not publish it"
    }
}
