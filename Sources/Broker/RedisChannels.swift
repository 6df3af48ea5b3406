/// How Chorus names its Redis channels, and which Redis server holds each one.
///
/// With the default prefix `pubsub:`:
/// - a concrete topic `chat.room-1` is the channel `pubsub:chat.room-1` (`SUBSCRIBE`, `PUBLISH`);
/// - a pattern `chat.*` or `chat.**` is the glob `pubsub:chat.*` (`PSUBSCRIBE`). Redis `*`
///   crosses dots, so what a glob brings is filtered again with ``TopicPattern/matches(_:)``;
/// - messages addressed to user `u-7` use the channel `pubsub:@user:u-7`. Topics cannot
///   contain `@`, so user channels never collide with topic channels.
///
/// **Sharding.** With several servers, each channel lives on exactly one of them: the server
/// at index `FNV-1a-64(key) mod serverCount`, where `key` is the UTF-8 of the channel name
/// without the prefix (`chat.room-1`, `@user:u-7`) and the servers are numbered in the order
/// `PUBSUB_REDIS_URL` lists them. Every node must therefore list the same servers in the same
/// order. Patterns are subscribed on every server. Adding a server moves most topics to
/// another server; Redis pub/sub keeps no state, so this costs nothing beyond the reconnect.
struct RedisChannels: Sendable {
    /// The prefix of every channel (`PUBSUB_REDIS_PREFIX`).
    let prefix: String
    /// `prefix` with Redis glob syntax escaped, for the start of a `PSUBSCRIBE` pattern.
    let globPrefix: String
    let serverCount: Int

    static let userMarker = "@user:"

    init(prefix: String, serverCount: Int) {
        precondition(serverCount > 0, "at least one Redis server")
        self.prefix = prefix
        self.serverCount = serverCount
        var escaped = ""
        for character in prefix {
            if "*?[]\\".contains(character) { escaped.append("\\") }
            escaped.append(character)
        }
        self.globPrefix = escaped
    }

    /// The sharding key of a topic: its name.
    func key(for topic: Topic) -> String { topic.name }

    /// The sharding key of a user's channel.
    func key(forUser userId: String) -> String { Self.userMarker + userId }

    /// The sharding key a published envelope travels under: its user's when it has a user id,
    /// else its topic's.
    func key(for envelope: Envelope) -> String {
        if let userId = envelope.userId { return key(forUser: userId) }
        // `Envelope.init` guarantees a topic when there is no user id.
        return envelope.topic!.name
    }

    /// The channel name for a sharding key.
    func channel(forKey key: String) -> String { prefix + key }

    /// The `PSUBSCRIBE` glob for a pattern (the prefix escaped, the pattern already glob-safe).
    func glob(for pattern: TopicPattern) -> String { globPrefix + pattern.redisGlob }

    /// The `PSUBSCRIBE` glob of every channel under the prefix (``RedisPatternGlobs``).
    var catchAllGlob: String { globPrefix + "*" }

    /// The index of the server that holds the channel of `key`.
    func server(forKey key: String) -> Int {
        serverCount == 1 ? 0 : Int(Self.fnv1a64(key) % UInt64(serverCount))
    }

    /// 64-bit FNV-1a over the UTF-8 bytes of `text`; stable across processes, platforms and
    /// Swift versions (unlike `Hasher`, which is seeded per process).
    static func fnv1a64(_ text: String) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in text.utf8 {
            hash ^= UInt64(byte)
            hash &*= 0x0000_0100_0000_01b3
        }
        return hash
    }
}
