import Broker

/// Who may subscribe and publish to which topics.
///
/// Two rules, applied to every client request (WebSocket and `POST /api/publish` with a token):
/// 1. A token with `grants` may do only what its grants cover. A grant may open other users'
///    private topics (a support agent holding `messages.user.**`): grants are explicit.
/// 2. A token without grants may use every topic except other users' private ones:
///    `messages.user.<id>` and its subtopics belong to user `<id>`. A pattern is refused when
///    *some* topic it matches is another user's, so `messages.user.*` and `**` are refused
///    while `messages.user.<own id>.**` is not.
///
/// The same rule guards the online topics `presence.user.<id>` (user `<id>`'s online/offline
/// events, see docs/presence.md), and no client without a grant may publish to them.
///
/// Requests with the node's `API_KEY` are the application's own and are not restricted.
enum TopicAccess {
    /// The prefix of the private topics: `messages.user.<id>`.
    static let privatePrefix = ["messages", "user"]

    /// `messages.user.<id>`, the private topic of user `id`; nil when `id` is not a valid user
    /// id (``UserID``: one topic segment), so a dotted id never names a topic inside another
    /// user's subtree.
    static func privateTopic(of userId: String) -> Topic? {
        guard UserID.problem(userId) == nil else { return nil }
        return try? Topic((privatePrefix + [userId]).joined(separator: "."))
    }

    /// Why `user` may not subscribe to `pattern`; nil when it may.
    static func subscribeDenial(_ pattern: TopicPattern, user: AuthenticatedUser) -> String? {
        if let grants = user.grants {
            guard grants.subscribe.contains(where: { $0.covers(pattern) }) else {
                return "not allowed to subscribe to '\(pattern)': the token's grants do not cover it"
            }
            return nil
        }
        if reachesPrivateTopic(of: pattern, notOwnedBy: user.id, prefix: presenceUserPrefix) {
            return "not allowed to subscribe to '\(pattern)': it matches other users' online topics "
                + "(presence.user.<id>); a token needs grants covering them"
        }
        guard reachesPrivateTopic(of: pattern, notOwnedBy: user.id) else { return nil }
        return "not allowed to subscribe to '\(pattern)': it matches other users' private topics "
            + "(messages.user.<id>); subscribe to messages.user.\(user.id) or use a token with grants"
    }

    /// Why `user` may not publish to `topic`; nil when it may.
    static func publishDenial(_ topic: Topic, user: AuthenticatedUser) -> String? {
        if let grants = user.grants {
            guard grants.publish.contains(where: { $0.matches(topic) }) else {
                return "not allowed to publish to '\(topic)': the token's grants do not cover it"
            }
            return nil
        }
        if topic.name.hasPrefix(presenceUserPrefix.joined(separator: ".") + ".") {
            return "not allowed to publish to '\(topic)': presence.user.<id> topics carry the node's online events only"
        }
        guard reachesPrivateTopic(of: TopicPattern(topic), notOwnedBy: user.id) else { return nil }
        return "not allowed to publish to '\(topic)': it is another user's private topic"
    }

    /// The prefix of the users' online topics, `presence.user.<id>` (see docs/presence.md): a
    /// token without grants may watch its own only, as with `messages.user.<id>`.
    static let presenceUserPrefix = ["presence", "user"]

    /// Whether `pattern` matches at least one topic `messages.user.<X>[.more]` with X ≠ `owner`.
    ///
    /// Walks the pattern's segments against that template: the two literal segments, then a
    /// segment that is anything but `owner`, then any number of further segments. `*` and `**`
    /// can always pick a segment other than `owner`, so only a literal third segment can avoid
    /// the other users' topics.
    static func reachesPrivateTopic(
        of pattern: TopicPattern, notOwnedBy owner: String, prefix privatePrefix: [String] = TopicAccess.privatePrefix
    ) -> Bool {
        let segments = pattern.text.split(separator: ".", omittingEmptySubsequences: false)
        /// Template positions: 0 and 1 the literal prefix, 2 the owner segment, 3 the free tail.
        func reaches(_ index: Int, _ position: Int) -> Bool {
            guard index < segments.count else { return position == 3 }
            let next = min(position + 1, 3)
            switch segments[index] {
            case "**":
                // One or more segments: land on any later template position.
                return (next...3).contains { reaches(index + 1, $0) }
            case "*":
                return reaches(index + 1, next)
            case let literal:
                switch position {
                case 0, 1: return literal == privatePrefix[position] && reaches(index + 1, next)
                case 2: return literal != owner && reaches(index + 1, next)
                default: return reaches(index + 1, 3)
                }
            }
        }
        return reaches(0, 0)
    }
}
