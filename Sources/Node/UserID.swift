import Broker

/// The rule for user ids. A user id becomes a topic segment, `messages.user.<id>` (the user's
/// private topic, see ``TopicAccess``), so it must be exactly one valid segment: 1 to
/// ``maxLength`` ASCII letters, digits, `_`, `-` or `:`. Were `john.smith` allowed, his private
/// topic `messages.user.john.smith` would lie inside the subtree `john` may subscribe to with
/// `messages.user.john.**`.
///
/// Checked wherever a user id enters the node: a token's `sub` (WebSocket `auth`, the token at
/// the upgrade, every HTTP route; a token whose subject breaks the rule is refused with 401) and
/// the `userId` of `POST /api/publish` (400). Registered accounts have UUIDs as ids, which pass.
public enum UserID {
    /// The longest user id, in bytes: with the 14 of `messages.user.`, room is left for subtopics
    /// within ``Topic/maxLength``.
    public static let maxLength = 128

    /// Why `id` cannot be a user id (a phrase to follow the id: "is empty"); nil when it can.
    public static func problem(_ id: String) -> String? {
        let length = id.utf8.count
        guard length > 0 else { return "is empty" }
        guard length <= maxLength else { return "is \(length) bytes long; at most \(maxLength) are allowed" }
        // One topic segment: the topic alphabet (Topic's own check) and no dot.
        guard !id.utf8.contains(UInt8(ascii: ".")), (try? Topic(id)) != nil else {
            return "may contain only ASCII letters, digits, '_', '-' and ':' (it becomes one topic segment, messages.user.<id>)"
        }
        return nil
    }
}
