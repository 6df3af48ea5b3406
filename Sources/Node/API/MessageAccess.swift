import Broker
import Store

/// Who may read a stored message: whoever may subscribe to a topic its events go to (its topic;
/// for a direct message, the private topic of its author or recipient). The HTTP routes and
/// the WebSocket `read` request ask the same question here.
enum MessageAccess {
    /// A 403 saying why `user` may not read `message`; nil when they may.
    static func readDenial(_ message: StoredMessage, by user: AuthenticatedUser) -> APIError? {
        let topics = MessageEvents.topics(of: message)
        if topics.contains(where: { TopicAccess.subscribeDenial(TopicPattern($0), user: user) == nil }) { return nil }
        // Ids that are not topic segments (tokens from another issuer) have no private topic.
        if topics.isEmpty, message.topic == nil, [message.authorId, message.recipientId].contains(user.id) { return nil }
        return APIError(403, message.topic == nil
            ? "a direct message is readable by its author and recipient (and tokens granted their private topics)"
            : "not allowed to read messages of '\(message.topic ?? "")'")
    }

    /// Whether `user` may read the conversation `scope` (a listing leaves out the others).
    static func mayRead(_ scope: MessageScope, user: AuthenticatedUser) -> Bool {
        switch scope {
        case .topic(let name):
            guard let topic = try? Topic(name) else { return false }
            return TopicAccess.subscribeDenial(TopicPattern(topic), user: user) == nil
        case .conversation(let low, let high):
            // As for a direct message: readable through either user's private topic.
            let topics = [low, high].compactMap(TopicAccess.privateTopic(of:))
            if topics.contains(where: { TopicAccess.subscribeDenial(TopicPattern($0), user: user) == nil }) { return true }
            return topics.isEmpty && [low, high].contains(user.id)
        }
    }
}
