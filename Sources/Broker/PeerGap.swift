/// What another node published while it could not reach a Redis server, and so never reached
/// this node: the topics and users (their own channels) it announced with ``Envelope/Kind/gap``
/// once the server was back. This node's subscribers of those topics (and of patterns
/// matching them), and those users' connections, may have missed messages.
public struct PeerGap: Sendable, Equatable {
    public var topics: Set<Topic> = []
    public var users: Set<String> = []
    /// The nodes that announced them (`NODE_ID`s), for the log.
    public var origins: Set<String> = []

    public init(topics: Set<Topic> = [], users: Set<String> = [], origins: Set<String> = []) {
        self.topics = topics
        self.users = users
        self.origins = origins
    }

    /// The announcements of `envelopes` (each a topic's or a user's).
    init(announcements envelopes: some Sequence<Envelope>) {
        for envelope in envelopes {
            origins.insert(envelope.origin)
            if let userId = envelope.userId {
                users.insert(userId)
            } else if let topic = envelope.topic {
                topics.insert(topic)
            }
        }
    }

    public var isEmpty: Bool { topics.isEmpty && users.isEmpty }

    /// Adds what `other` announced.
    public mutating func formUnion(_ other: PeerGap) {
        topics.formUnion(other.topics)
        users.formUnion(other.users)
        origins.formUnion(other.origins)
    }

    /// Whether a holder of `interest` may have missed some of those messages.
    public func affects(_ interest: Interest) -> Bool {
        switch interest {
        case .topic(let topic): topics.contains(topic)
        case .pattern(let pattern): topics.contains { pattern.matches($0) }
        case .user(let id): users.contains(id)
        }
    }
}
