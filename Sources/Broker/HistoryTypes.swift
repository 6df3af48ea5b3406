/// A topic's current place in its history: the last offset assigned (0 before the first
/// message) in the stream `epoch`.
public struct HistoryPosition: Sendable, Equatable {
    public var offset: Int
    public var epoch: String

    /// The largest offset a client may name (`since`, `after`, `before`): 2^53 - 1, the
    /// largest integer a JavaScript number and a Lua number (Redis's scripts) hold exactly.
    /// A stream never gets that far, and offsets past it could overflow the arithmetic.
    public static let maxOffset = (1 << 53) - 1

    public init(offset: Int, epoch: String) {
        self.offset = offset
        self.epoch = epoch
    }
}

/// Which part of a topic's history to read. Offsets are exclusive bounds; the messages come
/// back oldest first.
public struct HistoryQuery: Sendable, Equatable {
    /// Only messages with an offset greater than this.
    public var after: Int?
    /// Only messages with an offset less than this.
    public var before: Int?
    /// At most this many messages (0: the position only).
    public var limit: Int
    /// The newest `limit` messages of the range, rather than the oldest.
    public var newest: Bool
    /// About the most bytes of messages to read (always at least one message); nil: no bound.
    /// Past it the page stops, oldest first or newest first as asked, and says ``HistoryPage/truncated``.
    public var maxBytes: Int?

    public init(after: Int? = nil, before: Int? = nil, limit: Int, newest: Bool = false, maxBytes: Int? = nil) {
        self.after = after
        self.before = before
        self.limit = max(0, limit)
        self.newest = newest
        self.maxBytes = maxBytes.map { max(1, $0) }
    }
}

/// What a history read returns: the topic's current position and the messages asked for,
/// each with its `offset` and `epoch` set.
public struct HistoryPage: Sendable {
    public var position: HistoryPosition
    public var messages: [Envelope]
    /// The oldest offset the history still holds (nil when it holds none): a recovery from
    /// offset `n` is complete only when `n + 1` is still held (or nothing came after `n`).
    public var oldestHeld: Int?
    /// Messages of the range were left out to stay within ``HistoryQuery/maxBytes``.
    public var truncated: Bool
    /// Read from this node's fallback rings because its Redis server is unreachable: only the
    /// node's own messages since the outage, not the topic's history (answered as
    /// `"scope":"node"`, as member lists are).
    public var nodeOnly = false

    public init(position: HistoryPosition, messages: [Envelope], oldestHeld: Int?, truncated: Bool = false) {
        self.position = position
        self.messages = messages
        self.oldestHeld = oldestHeld
        self.truncated = truncated
    }
}

/// Why a history could not be read.
public struct HistoryError: Error, Sendable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// How a publish ended, for the publisher's `published` reply.
public struct PublishOutcome: Sendable, Equatable {
    /// The message's place in its topic's history (nil for a topic without history).
    public var position: HistoryPosition?
    /// The `messageId` was seen before on this topic: nothing was stored or delivered again;
    /// `position` is the first message's.
    public var duplicate: Bool
    /// Why the message was not accepted (a full queue, Redis refused the script); nil when it was.
    public var refusal: String?
    /// Delivered to this node's subscribers only: the Redis server of its channel was
    /// unreachable (fallback, or still connecting at start), so no other node received it
    /// (they hear of it as a gap once the server is back). Its `position` is in this node's
    /// fallback history.
    public var nodeOnly = false
    /// With ``nodeOnly``: the message had been written to Redis, unanswered, when the link fell
    /// back, so Redis may have published and stored it too (the other nodes then received it,
    /// at an offset of the Redis history's own).
    public var uncertain = false

    public init(
        position: HistoryPosition? = nil, duplicate: Bool = false, refusal: String? = nil, nodeOnly: Bool = false,
        uncertain: Bool = false
    ) {
        self.position = position
        self.duplicate = duplicate
        self.refusal = refusal
        self.nodeOnly = nodeOnly
        self.uncertain = uncertain
    }

    /// Not accepted: the publisher gets an `error` instead of `published`.
    public static func refused(_ reason: String) -> PublishOutcome { PublishOutcome(refusal: reason) }

    /// Accepted for delivery, with no history position.
    public static let accepted = PublishOutcome()
}

/// Called once per publish with its outcome, on a thread of the adapter's choosing.
public typealias PublishCompletion = @Sendable (PublishOutcome) -> Void

/// History figures for `/stats`.
public struct HistoryStats: Sendable, Codable, Equatable {
    /// `memory` (rings in this node) or `redis` (streams; the figures then count this node's
    /// fallback rings only).
    public var backend: String
    public var size: Int
    public var ttlMilliseconds: Int
    /// Topics with a history held in this node's memory.
    public var topics: Int
    /// Messages held in this node's memory.
    public var messages: Int
    /// Approximate bytes of those messages (payload plus bookkeeping).
    public var bytes: Int
    /// The most `bytes` may reach (`HISTORY_MAX_BYTES`).
    public var maxBytes: Int?
    /// Publishes on Redis history topics acknowledged by the history script (Redis backend).
    public var stored: Int?
    /// Publishes refused as duplicates of an earlier `messageId`.
    public var duplicates: Int

    public init(
        backend: String, size: Int, ttlMilliseconds: Int, topics: Int, messages: Int, bytes: Int, maxBytes: Int? = nil,
        stored: Int? = nil, duplicates: Int
    ) {
        self.backend = backend
        self.size = size
        self.ttlMilliseconds = ttlMilliseconds
        self.topics = topics
        self.messages = messages
        self.bytes = bytes
        self.maxBytes = maxBytes
        self.stored = stored
        self.duplicates = duplicates
    }
}
