/// Something a node wants to receive from the topic space on behalf of its local clients.
///
/// The broker refcounts interests across all local connections and tells its adapter only
/// about the first holder arriving and the last one leaving.
public enum Interest: Hashable, Sendable, CustomStringConvertible {
    /// One concrete topic (Redis `SUBSCRIBE <prefix><topic>`).
    case topic(Topic)
    /// A wildcard pattern (Redis `PSUBSCRIBE <prefix><glob>`, filtered again locally).
    case pattern(TopicPattern)
    /// Every message addressed to one user id, wherever it was published.
    case user(String)

    public var description: String {
        switch self {
        case .topic(let topic): "topic \(topic)"
        case .pattern(let pattern): "pattern \(pattern)"
        case .user(let id): "user \(id)"
        }
    }
}
