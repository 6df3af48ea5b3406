/// The newest history position a link's subscriber has read from its Redis server, per topic:
/// what lets a node notice that the server came back with older data than it had served.
///
/// A Redis that loses acknowledged writes (restarted from a snapshot older than its last
/// writes, AOF `everysec`'s last second, a replica that was behind promoted by a failover)
/// keeps a topic's epoch but its offset goes back: the next publishes would be given offsets
/// that clients already saw for other messages. SDKs skip those as repeats, and a client
/// recovering from an offset it saw before the loss would be told `recovered: true` while
/// missing them. So each new subscriber connection first runs ``RedisHistory/rewindScript``
/// with these positions: a topic whose offset in Redis is behind what this node read, in the
/// same epoch, loses its meta and stream, and its next message starts a new epoch: clients
/// recovering from the old one are told `recovered: false`, as after any lost history, and
/// the new offsets are not taken for repeats.
///
/// What it cannot see: a topic this node did not read (no subscriber here, or past
/// ``limit``), and a loss that publishes made after the server came back and before the
/// check have covered again (offsets past what this node read).
///
/// **Ownership.** A value owned by the link's subscriber loop (``RedisSubscriberState``).
struct RedisStreamPositions {
    /// Topics remembered at most: the topics a pattern brings are not bounded by the node's
    /// subscriptions. Past it, new topics are not remembered.
    static let defaultLimit = 100_000
    /// Topics per call of the check script.
    static let chunk = 256

    let limit: Int
    private(set) var positions: [Topic: HistoryPosition] = [:]

    init(limit: Int = defaultLimit) {
        self.limit = limit
    }

    var isEmpty: Bool { positions.isEmpty }
    var count: Int { positions.count }

    /// Remembers `envelope`'s position when it is newer than the one known for its topic, or
    /// of another epoch (the epoch a topic is in now is the one its messages carry).
    mutating func note(_ envelope: Envelope) {
        guard let topic = envelope.topic, let offset = envelope.offset, let epoch = envelope.epoch else { return }
        if let known = positions[topic] {
            guard known.epoch != epoch || known.offset < offset else { return }
        } else if positions.count >= limit {
            return
        }
        positions[topic] = HistoryPosition(offset: offset, epoch: epoch)
    }

    /// Forgets the topic of `channel` (unsubscribed: nobody here reads it any more).
    mutating func forget(channel: String, prefix: String) {
        guard channel.hasPrefix(prefix), !positions.isEmpty else { return }
        positions[Topic(unchecked: String(channel.dropFirst(prefix.count)))] = nil
    }

    /// The check script's calls for every remembered topic, ``chunk`` topics each (`EVAL`,
    /// script, key count, keys, arguments).
    func checks(_ channels: RedisChannels) -> [[String]] {
        var commands: [[String]] = []
        let entries = Array(positions)
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
