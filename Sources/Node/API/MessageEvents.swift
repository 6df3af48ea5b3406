import Broker
import Store

/// Publishes what happens to stored messages as real-time events, so WebSocket subscribers on
/// every node see messages posted, edited and deleted over HTTP.
///
/// A topic message goes to its topic. A direct message goes to the private topics of its
/// recipient and of its author (`messages.user.<id>`), so the author's other devices follow
/// the conversation too. The event's `data` is the message in its HTTP API form (for
/// `message.deleted`: its id, author, topic or recipient), `metadata.senderId` the author.
struct MessageEvents: Sendable {
    enum Kind: String {
        case sent = "message.sent"
        case updated = "message.updated"
        case deleted = "message.deleted"
        /// A member's read position moved forward: see ``publishRead(_:)``.
        case read = "message.read"
    }

    let node: NodeContext

    func publish(_ kind: Kind, _ message: StoredMessage) {
        let data = kind == .deleted ? message.deletedJSON : message.json
        let metadata = RawJSON.emptyObject.settingMember("senderId", to: .string(message.authorId))
        for topic in Self.topics(of: message) {
            var envelope = Envelope(
                id: node.ids.next(), origin: node.configuration.nodeId, topic: topic, eventType: kind.rawValue,
                data: data, metadata: metadata)
            // The stored message's id as the idempotency key: announcing a post again (its
            // client's retry) is dropped by a topic's history if the first announcement got out.
            if kind == .sent { envelope.messageId = message.id }
            node.counters.messagesIn.add(1, ordering: .relaxed)
            node.metrics.published()
            node.broker.publish(envelope)
        }
    }

    /// Announces that `record.position.userId` has read up to `record.message`, where the
    /// message's own events go (its topic; for a direct message, both users' private topics):
    /// `data` is `{"messageId","userId","readAt"}`, `metadata.senderId` the reader.
    func publishRead(_ record: ReadRecord) {
        let position = record.position
        let data = RawJSON(.object([
            "messageId": .string(position.messageId), "userId": .string(position.userId),
            "readAt": .string(ISO8601.string(position.readAt)),
        ]))
        let metadata = RawJSON.emptyObject.settingMember("senderId", to: .string(position.userId))
        for topic in Self.topics(of: record.message) {
            let envelope = Envelope(
                id: node.ids.next(), origin: node.configuration.nodeId, topic: topic, eventType: Kind.read.rawValue,
                data: data, metadata: metadata)
            node.counters.messagesIn.add(1, ordering: .relaxed)
            node.metrics.published()
            node.broker.publish(envelope)
        }
    }

    static func topics(of message: StoredMessage) -> [Topic] {
        if let topic = message.topic { return [try? Topic(topic)].compactMap { $0 } }
        guard let recipient = message.recipientId else { return [] }
        let people = recipient == message.authorId ? [recipient] : [recipient, message.authorId]
        return people.compactMap(TopicAccess.privateTopic(of:))
    }
}
