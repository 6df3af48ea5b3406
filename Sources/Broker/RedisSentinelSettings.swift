import Foundation

/// Redis through Sentinel: `PUBSUB_REDIS_SENTINELS` and `PUBSUB_REDIS_MASTER_NAME`.
///
/// - `PUBSUB_REDIS_SENTINELS`: the Sentinels, comma-separated, each `host:port` (port 26379 when
///   left out) or `redis://[user:password@]host:port` when the Sentinels themselves require a
///   password (`requirepass` in `sentinel.conf`).
/// - `PUBSUB_REDIS_SENTINEL_PASSWORD`: the Sentinels' password, for every Sentinel listed without
///   credentials of its own (what redis-py's `sentinel_kwargs`, ioredis's `sentinelPassword` and
///   go-redis's `SentinelPassword` call it); sent as `AUTH <password>`.
/// - `PUBSUB_REDIS_MASTER_NAME`: the master name Sentinel monitors (`sentinel monitor <name> ...`);
///   several comma-separated names shard topics over several masters exactly as several URLs of
///   `PUBSUB_REDIS_URL` do (one master per shard, in the listed order, the same on every node).
///   Each name may carry the master's credentials and database the way a URL does:
///   `[user:password@]name[/db]`, for example `:s3cret@chorus-a` or `app:p%40ss@chorus-b/2`.
///
/// ``masters`` holds one ``RedisURL`` per name whose `host` is the master name (its port is not
/// used): the template a ``RedisSentinelDiscovery`` fills with the address Sentinel reports.
/// TLS is not supported with Sentinel (neither to the Sentinels nor to the masters), unlike
/// `PUBSUB_REDIS_URL`'s `rediss://`.
public struct RedisSentinelSettings: Sendable, Hashable {
    public var sentinels: [RedisURL]
    public var masters: [RedisURL]

    public init(sentinels: [RedisURL], masters: [RedisURL]) {
        precondition(!sentinels.isEmpty && !masters.isEmpty, "Sentinel mode needs sentinels and master names")
        precondition((sentinels + masters).allSatisfy { $0.tls == nil }, "TLS is not supported with Sentinel")
        self.sentinels = sentinels
        self.masters = masters
    }

    /// The default port of a Sentinel.
    public static let defaultPort = 26_379

    /// Parses the variables (`masterNames` nil when `PUBSUB_REDIS_MASTER_NAME` is unset,
    /// `sentinelPassword` when `PUBSUB_REDIS_SENTINEL_PASSWORD` is).
    public init(
        sentinels sentinelText: String, masterNames: String?, sentinelPassword: String? = nil
    ) throws(RedisSentinelConfigurationError) {
        var sentinels: [RedisURL] = []
        for entry in try Self.entries(sentinelText, variable: "PUBSUB_REDIS_SENTINELS") {
            let withScheme = entry.contains("://") ? entry : "redis://" + entry
            var url: RedisURL
            do {
                url = try RedisURL(parsing: withScheme)
            } catch {
                throw .malformed("PUBSUB_REDIS_SENTINELS", Self.masked(entry), reason: "expected host:port or redis://[user:password@]host:port")
            }
            guard url.tls == nil else {
                throw .malformed("PUBSUB_REDIS_SENTINELS", Self.masked(entry), reason: "TLS (rediss://) to Sentinel is not supported")
            }
            if !Self.hasExplicitPort(withScheme) { url.port = Self.defaultPort }
            if url.password == nil, let sentinelPassword, !sentinelPassword.isEmpty { url.password = sentinelPassword }
            guard !sentinels.contains(where: { $0.server == url.server }) else {
                throw .malformed("PUBSUB_REDIS_SENTINELS", url.server, reason: "listed twice")
            }
            sentinels.append(url)
        }
        guard let masterNames else {
            throw .malformed("PUBSUB_REDIS_MASTER_NAME", "", reason: "required with PUBSUB_REDIS_SENTINELS")
        }
        var masters: [RedisURL] = []
        for entry in try Self.entries(masterNames, variable: "PUBSUB_REDIS_MASTER_NAME") {
            let withScheme = "redis://" + entry
            guard !entry.contains("://"), !Self.hasExplicitPort(withScheme), let url = try? RedisURL(parsing: withScheme),
                !url.host.isEmpty, url.host.allSatisfy({ $0.isLetter || $0.isNumber || "-_.".contains($0) })
            else {
                throw .malformed(
                    "PUBSUB_REDIS_MASTER_NAME", Self.masked(entry),
                    reason: "expected a master name, optionally [user:password@]name[/db]")
            }
            guard !masters.contains(where: { $0.host == url.host }) else {
                throw .malformed("PUBSUB_REDIS_MASTER_NAME", url.host, reason: "listed twice")
            }
            masters.append(url)
        }
        self.init(sentinels: sentinels, masters: masters)
    }

    private static func entries(_ text: String, variable: String) throws(RedisSentinelConfigurationError) -> [String] {
        let entries = text.split(separator: ",", omittingEmptySubsequences: false).map {
            $0.trimmingCharacters(in: .whitespaces)
        }
        guard !entries.contains(where: \.isEmpty) else {
            throw .malformed(variable, text, reason: text.trimmingCharacters(in: .whitespaces).isEmpty ? "empty" : "empty entry in the list")
        }
        return entries
    }

    /// Whether `url` (with its scheme) ends in `:port` or `:port/db`.
    private static func hasExplicitPort(_ url: String) -> Bool {
        let afterCredentials = url.split(separator: "@").last.map(String.init) ?? url
        let hostPort = afterCredentials.replacingOccurrences(of: "redis://", with: "").split(separator: "/").first.map(String.init) ?? ""
        if hostPort.hasPrefix("[") { return hostPort.contains("]:") }
        return hostPort.contains(":")
    }

    private static func masked(_ entry: String) -> String {
        guard let at = entry.lastIndex(of: "@"), let colon = entry[..<at].firstIndex(of: ":") else { return entry }
        return entry[...colon] + "***" + entry[at...]
    }
}
