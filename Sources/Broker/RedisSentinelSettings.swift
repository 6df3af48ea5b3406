import Foundation

/// Redis through Sentinel: `PUBSUB_REDIS_SENTINELS` and `PUBSUB_REDIS_MASTER_NAME`.
///
/// - `PUBSUB_REDIS_SENTINELS`: the Sentinels, comma-separated, each `host:port` (port 26379 when
///   left out) or `redis://[user:password@]host:port` when the Sentinels themselves require a
///   password (`requirepass` in `sentinel.conf`). `rediss://` Sentinels mean TLS to the
///   Sentinels *and* to the masters they name (Redis's `tls-port` with `tls-replication yes`);
///   then every Sentinel of the list must be `rediss://`.
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
/// used): the template a ``RedisSentinelDiscovery`` fills with the address Sentinel reports; with
/// TLS it carries the Sentinels' ``RedisTLS``, so the masters are reached with the same files.
public struct RedisSentinelSettings: Sendable, Hashable {
    public var sentinels: [RedisURL]
    public var masters: [RedisURL]

    /// With TLS, the same ``RedisTLS`` for every Sentinel and master (see ``withTLS(_:)``).
    public init(sentinels: [RedisURL], masters: [RedisURL]) {
        precondition(!sentinels.isEmpty && !masters.isEmpty, "Sentinel mode needs sentinels and master names")
        let tls = sentinels[0].tls
        precondition((sentinels + masters).allSatisfy { $0.tls == tls }, "Sentinels and masters use TLS alike")
        self.sentinels = sentinels
        self.masters = masters
    }

    /// Whether the Sentinels and the masters are reached over TLS (`rediss://` Sentinels).
    public var usesTLS: Bool { sentinels[0].tls != nil }

    /// These settings with `tls` (the CA and client files) for every Sentinel and master; only
    /// when ``usesTLS``.
    public func withTLS(_ tls: RedisTLS) -> RedisSentinelSettings {
        precondition(usesTLS, "the Sentinels are not rediss://")
        func applied(_ url: RedisURL) -> RedisURL {
            var url = url
            url.tls = tls
            return url
        }
        return RedisSentinelSettings(sentinels: sentinels.map(applied), masters: masters.map(applied))
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
                throw .malformed("PUBSUB_REDIS_SENTINELS", Self.masked(entry), reason: "expected host:port or redis[s]://[user:password@]host:port")
            }
            if let first = sentinels.first, (first.tls == nil) != (url.tls == nil) {
                throw .malformed("PUBSUB_REDIS_SENTINELS", Self.masked(entry), reason: "every Sentinel is redis:// or every one rediss:// (TLS)")
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
            guard !entry.contains("://"), !Self.hasExplicitPort(withScheme), var url = try? RedisURL(parsing: withScheme),
                !url.host.isEmpty, url.host.allSatisfy({ $0.isLetter || $0.isNumber || "-_.".contains($0) })
            else {
                throw .malformed(
                    "PUBSUB_REDIS_MASTER_NAME", Self.masked(entry),
                    reason: "expected a master name, optionally [user:password@]name[/db]")
            }
            guard !masters.contains(where: { $0.host == url.host }) else {
                throw .malformed("PUBSUB_REDIS_MASTER_NAME", url.host, reason: "listed twice")
            }
            url.tls = sentinels[0].tls
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
        let afterScheme = afterCredentials.components(separatedBy: "://").last ?? afterCredentials
        let hostPort = afterScheme.split(separator: "/").first.map(String.init) ?? ""
        if hostPort.hasPrefix("[") { return hostPort.contains("]:") }
        return hostPort.contains(":")
    }

    private static func masked(_ entry: String) -> String {
        guard let at = entry.lastIndex(of: "@"), let colon = entry[..<at].firstIndex(of: ":") else { return entry }
        return entry[...colon] + "***" + entry[at...]
    }
}
