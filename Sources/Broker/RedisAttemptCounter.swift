/// ``AttemptCounter`` in Redis: one key `<prefix>@attempts:<key>` per key, incremented, and
/// given the window as its time to live by its first attempt (one script, so that no key is
/// ever left without one).
///
/// The commands go through a ``RedisCommandQueue`` of its own, so a caller waits at most
/// `PUBSUB_REDIS_TIMEOUT` for a hung server before deciding without it. With several Redis
/// servers the counts live on the first one listed; with Sentinel, on the first master name's
/// master (as the node directory).
public final class RedisAttemptCounter: AttemptCounter {
    private let keyPrefix: String
    private let commands: RedisCommandQueue

    static let script = """
        local counts = {}
        for i, key in ipairs(KEYS) do
          counts[i] = redis.call('INCR', key)
          if counts[i] == 1 then redis.call('PEXPIRE', key, ARGV[1]) end
        end
        return counts
        """

    public init(url: RedisURL, prefix: String, timeout: Duration) {
        self.keyPrefix = prefix + "@attempts:"
        self.commands = RedisCommandQueue(url: url, timeout: timeout, clientName: "attempts")
    }

    /// The counts on the master of the first name of `sentinel`.
    public init(sentinel: RedisSentinelSettings, prefix: String, timeout: Duration) {
        self.keyPrefix = prefix + "@attempts:"
        self.commands = RedisCommandQueue(
            sentinel: RedisSentinelDiscovery(sentinels: sentinel.sentinels, master: sentinel.masters[0], timeout: timeout),
            clientName: "attempts")
    }

    public func count(_ keys: [String], window: Duration) async -> [Int]? {
        let milliseconds = max(1, window.components.seconds * 1000 + window.components.attoseconds / 1_000_000_000_000_000)
        guard
            case .array(let replies) = try? await commands.evaluate(
                Self.script, keys: keys.map { Array((keyPrefix + $0).utf8) }, arguments: [Array(String(milliseconds).utf8)]),
            replies.count == keys.count
        else { return nil }
        let counts = replies.compactMap { if case .integer(let count) = $0 { count } else { nil } }
        return counts.count == keys.count ? counts : nil
    }
}
