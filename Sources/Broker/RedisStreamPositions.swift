/// The newest history position a link has seen from its Redis server, per topic (read by its
/// subscriber, or answered to its publisher): what lets a node notice that the server came
/// back with older data than it had served.
///
/// A Redis that loses acknowledged writes (restarted from a snapshot older than its last
/// writes, AOF `everysec`'s last second, a replica that was behind promoted by a failover)
/// keeps a topic's epoch but its offset goes back: the next publishes would be given offsets
/// that clients already saw for other messages. SDKs skip those as repeats, and a client
/// recovering from an offset it saw before the loss would be told `recovered: true` while
/// missing them. So each new subscriber connection, and a publisher connection that
/// reconnects while the subscriber stays up, first runs ``RedisHistory/rewindScript`` with
/// these positions (before its `SUBSCRIBE`s, before any publish; and the publisher again
/// before it resends what a server that lost its scripts refused): a topic whose offset in
/// Redis is behind what this node saw, in the same epoch, loses its meta and stream, and its
/// next message starts a new epoch: clients recovering from the old one are told
/// `recovered: false`, as after any lost history, and the new offsets are not taken for
/// repeats. The node whose check finds a topic behind resets it;
/// the others then find it reset, not behind.
///
/// What it cannot see: a topic this node neither read nor published to (or not among the
/// most recent, between ``limit`` / 2 and ``limit`` of them), and a loss that other nodes'
/// publishes, made after the server came back and before this node's check, have covered
/// again (offsets past what this node saw). A reset also drops what was published between
/// the server's return and the check (those clients were told of a `gap`, or are told
/// `recovered: false`).
///
/// **Ownership.** A value owned by the link's loop (``RedisSubscriberState``), which its
/// subscriber and publisher share.
struct RedisStreamPositions {
    /// Topics remembered at most: a node may publish to, or a pattern bring, any number of
    /// topics. The most recently noted are kept (two generations of half the limit each).
    static let defaultLimit = 100_000
    /// Topics per call of the check script.
    static let chunk = 256

    let limit: Int
    /// Noted since the generation turned, and in the generation before.
    private var recent: [Topic: HistoryPosition] = [:]
    private var older: [Topic: HistoryPosition] = [:]

    init(limit: Int = defaultLimit) {
        self.limit = max(2, limit)
    }

    var count: Int { recent.count + older.count }

    /// The position known for `topic`.
    subscript(topic: Topic) -> HistoryPosition? { recent[topic] ?? older[topic] }

    /// Remembers `envelope`'s position (see ``note(_:_:)``).
    mutating func note(_ envelope: Envelope) {
        guard let topic = envelope.topic, let position = envelope.historyPosition else { return }
        note(topic, position)
    }

    /// Remembers `position` for `topic` when it is newer than the one known, or of another epoch
    /// (the epoch a topic is in now is the one its messages carry).
    mutating func note(_ topic: Topic, _ position: HistoryPosition) {
        if let known = recent[topic] {
            if known.epoch != position.epoch || known.offset < position.offset { recent[topic] = position }
            return
        }
        var position = position
        if let known = older.removeValue(forKey: topic), known.epoch == position.epoch, known.offset > position.offset {
            position = known
        }
        recent[topic] = position
        if recent.count >= limit / 2 {
            older = recent
            recent = [:]
        }
    }

    /// The check script's calls for every remembered topic, ``chunk`` topics each (`EVAL`,
    /// script, key count, keys, arguments).
    func checks(_ channels: RedisChannels) -> [[String]] {
        var commands: [[String]] = []
        let entries = Array(recent) + Array(older)
        var start = 0
        while start < entries.count {
            let part = entries[start..<min(start + Self.chunk, entries.count)]
            var keys: [String] = []
            var arguments: [String] = []
            for (topic, position) in part {
                keys.append(RedisHistory.metaKey(channels, topic))
                keys.append(RedisHistory.streamKey(channels, topic))
                arguments.append(position.epoch)
                arguments.append(String(position.offset))
            }
            commands.append(["EVAL", RedisHistory.rewindScript, String(keys.count)] + keys + arguments)
            start += Self.chunk
        }
        return commands
    }
}
