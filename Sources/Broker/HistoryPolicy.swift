/// Which topics keep a history, how many messages, for how long and in how many bytes at most
/// (`HISTORY_SIZE`, `HISTORY_TTL`, `HISTORY_TOPICS`, `HISTORY_MAX_BYTES`).
///
/// History is per concrete topic. A message addressed to a user (`userId`, the user's channel)
/// keeps none: private messages that should be recoverable go to the topic
/// `messages.user.<id>`, which is an ordinary topic. Immutable; shared by every thread.
public struct HistoryPolicy: Sendable, Equatable {
    /// Messages kept per topic; 0 turns history off.
    public var size: Int
    /// Milliseconds a topic's history lives after its last publish.
    public var ttlMilliseconds: Int
    /// The topics with history (`**` = every topic).
    public var patterns: [TopicPattern]
    /// The most bytes the histories held in this process may take together (``MemoryHistory``;
    /// Redis's own memory is bounded by its `maxmemory`).
    public var maxBytes: Int

    public static let defaultMaxBytes = 64 << 20

    public init(
        size: Int = 100, ttlMilliseconds: Int = 300_000, patterns: [TopicPattern] = [try! TopicPattern("**")],
        maxBytes: Int = HistoryPolicy.defaultMaxBytes
    ) {
        precondition(size >= 0 && ttlMilliseconds > 0 && maxBytes > 0, "history size must not be negative, ttl and bytes must be positive")
        self.size = size
        self.ttlMilliseconds = ttlMilliseconds
        self.patterns = patterns
        self.maxBytes = maxBytes
    }

    /// No history at all.
    public static let off = HistoryPolicy(size: 0, patterns: [])

    public var isEnabled: Bool { size > 0 && !patterns.isEmpty }

    /// Whether `topic` keeps a history.
    public func covers(_ topic: Topic) -> Bool {
        guard isEnabled else { return false }
        return patterns.contains { $0.matches(topic) }
    }

    /// The topic whose history stores `envelope`, if any: a topic message (not a user's, and
    /// not a presence or typing signal, which are ephemeral) on a covered topic.
    public func topic(of envelope: Envelope) -> Topic? {
        guard envelope.userId == nil, envelope.kind == nil, let topic = envelope.topic, covers(topic) else { return nil }
        return topic
    }
}
