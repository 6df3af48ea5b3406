import Broker
import Foundation
import Logging
import Store

/// Everything a node is configured with, as a plain value.
///
/// ``init(environment:)`` is the one place that reads the environment (the seed's variable
/// names and defaults, plus the node's own); command-line flags are applied on top by `chorus`
/// as environment overrides. Durations are milliseconds in the environment, as in the seed.
public struct NodeConfiguration: Sendable {
    /// Which adapter carries the topic space.
    public enum Adapter: String, Sendable { case memory, redis }

    /// How tokens are verified.
    public enum TokenKey: Sendable {
        /// HS256 with a shared secret (`JWT_SECRET`).
        case hmacSecret([UInt8])
        /// RS256 or ES256 with a public key in PEM (`JWT_PUBLIC_KEY_FILE`).
        case publicKeyPEM(String)
    }

    /// `HTTP_HOST`: address the HTTP server binds.
    public var httpHost = "0.0.0.0"
    /// `HTTP_PORT`: HTTP port, which also serves `/ws` unless `websocketPort` differs.
    public var httpPort = 3000
    /// `WEBSOCKET_ENABLED`: serve `/ws` at all.
    public var websocketEnabled = true
    /// `DASHBOARD_ENABLED`: serve the live cluster page at `GET /dashboard`.
    public var dashboardEnabled = true
    /// `WEBSOCKET_HOST`: address the WebSocket listener binds when it has its own port.
    public var websocketHost = "0.0.0.0"
    /// `WEBSOCKET_PORT`: defaults to `httpPort` (one port for both).
    public var websocketPort = 3000
    /// `WEBSOCKET_PING_INTERVAL` (ms): how often the node pings each connection.
    public var pingInterval: Duration = .milliseconds(30_000)
    /// `WEBSOCKET_PING_TIMEOUT` (ms): silence after which a connection is closed (4000).
    public var pingTimeout: Duration = .milliseconds(60_000)
    /// `WEBSOCKET_MAX_CONNECTIONS_PER_IP`: further upgrades from one address get HTTP 429.
    public var maxConnectionsPerIP = 100
    /// `WEBSOCKET_MAX_CONNECTIONS`: WebSockets one node holds; further upgrades get HTTP 503.
    /// Unset: as many as the open-file limit allows, less 256 descriptors kept for other uses.
    public var maxConnections: Int?
    /// `HTTP_MAX_CONNECTIONS`: TCP connections the node holds at once, HTTP and WebSocket, on all
    /// its listeners; past it the node stops accepting and clients wait in the listen backlog.
    /// Unset: as many as the open-file limit allows, less 64 descriptors kept for other uses.
    public var httpMaxConnections: Int?
    /// `HTTP_MAX_CONNECTIONS_PER_IP`: TCP connections one client network (an IPv4 address, an
    /// IPv6 /64) may hold at once, HTTP and WebSocket; further ones are closed as soon as they
    /// are accepted, so that one client cannot take the whole of `HTTP_MAX_CONNECTIONS`.
    /// Peers in `TRUSTED_PROXIES` are not counted (their clients are, per WebSocket, by
    /// `WEBSOCKET_MAX_CONNECTIONS_PER_IP`). Unset: see ``tcpConnectionsPerIP``.
    public var httpMaxConnectionsPerIP: Int?

    /// The TCP connections one client network may hold: `HTTP_MAX_CONNECTIONS_PER_IP`, or by
    /// default its WebSockets (`WEBSOCKET_MAX_CONNECTIONS_PER_IP`) and 64 more for HTTP requests.
    public var tcpConnectionsPerIP: Int { httpMaxConnectionsPerIP ?? maxConnectionsPerIP + 64 }
    /// `HTTP_IDLE_TIMEOUT` (ms): a connection without a request in progress (before its first
    /// request is in, or between keep-alive requests) is closed after this.
    public var httpIdleTimeout: Duration = .milliseconds(60_000)
    /// `WEBSOCKET_MAX_MESSAGE_SIZE` (bytes): larger client messages close the connection (1009).
    public var maxMessageSize = 1_048_576
    /// `WEBSOCKET_MAX_SUBSCRIPTIONS`: topics and patterns one connection may hold.
    public var maxSubscriptionsPerConnection = 100
    /// `WEBSOCKET_MAX_PENDING_BYTES`: unsent bytes one connection may queue (deliveries, replies,
    /// pongs) before it is closed as a slow consumer (4008); over it the node stops reading it.
    public var maxPendingBytes = 1_048_576
    /// `WEBSOCKET_WRITE_DELAY` (ms, 0 turns it off): once writing deliveries takes a quarter of
    /// an event loop's time, how long a message may wait for others to share its write to each
    /// subscriber (see `DrainPacer`). A loop under that share writes every message at once.
    public var writeDelay: Duration = .milliseconds(1)
    /// `WEBSOCKET_MAX_MESSAGES_PER_SECOND`: client messages per second per connection (text,
    /// binary, pings, pongs); the excess is dropped with an `error` (429) once a second, and a
    /// client that keeps flooding is closed (1008, see `MessageRateLimiter`).
    public var maxMessagesPerSecond = 100
    /// `WEBSOCKET_MAX_BYTES_PER_SECOND`: bytes of client messages (as inflated) a connection may
    /// make the node handle a second, beyond one message of `WEBSOCKET_MAX_MESSAGE_SIZE`; past it
    /// the connection is not read until it is back within (see `ReadBudget`). Nothing is dropped.
    public var maxBytesPerSecond = 1_048_576
    /// `WEBSOCKET_COMPRESSION` (`off` or `on`): offer permessage-deflate (RFC 7692) to clients
    /// that ask for it, with `server_no_context_takeover` so that each delivered message is
    /// compressed once per node (see `PerMessageDeflate`).
    public var websocketCompression = false
    /// `WEBSOCKET_COMPRESSION_MIN_SIZE` (bytes): messages shorter than this go uncompressed.
    public var websocketCompressionMinSize = 256
    /// `PUBSUB_ADAPTER`: `memory` or `redis`.
    public var adapter: Adapter = .memory
    /// `PUBSUB_REDIS_URL`: one or more comma-separated `redis://[user:password@]host:port[/db]`
    /// (`rediss://` for TLS, with `PUBSUB_REDIS_TLS_CA_FILE`, `PUBSUB_REDIS_TLS_CERT_FILE` and
    /// `PUBSUB_REDIS_TLS_KEY_FILE`: see ``RedisTLS``).
    public var redisURLs: [RedisURL] = []
    /// `PUBSUB_REDIS_SENTINELS` and `PUBSUB_REDIS_MASTER_NAME`: find each master through Redis
    /// Sentinel instead of `PUBSUB_REDIS_URL` (which is then ignored); see ``RedisSentinelSettings``.
    public var redisSentinel: RedisSentinelSettings?
    /// `PUBSUB_REDIS_PREFIX`: prefix of every Redis channel.
    public var redisPrefix = "pubsub:"
    /// `PUBSUB_REDIS_TIMEOUT` (ms): longest wait for any answer from Redis (connect, `PUBLISH`,
    /// keepalive `PING`, sent after a third of it idle) before the connection counts as failed
    /// and the node falls back to local delivery.
    public var redisTimeout: Duration = .milliseconds(1_500)
    /// `PUBSUB_REDIS_MAX_PATTERNS`: distinct wildcard pattern globs a node subscribes one by one
    /// on each Redis server; past it, one catch-all glob stands in for them all, since Redis
    /// matches every publish against every pattern (``RedisPatternGlobs``).
    public var redisMaxPatterns = RedisAdapter.defaultMaxPatterns
    /// `READY_REQUIRES_REDIS`: `/ready` answers 503 while any Redis server is not connected
    /// (starting or in fallback), so that a load balancer sends new clients to nodes that reach
    /// Redis. Off by default: when Redis itself is down every node would be unready.
    public var readyRequiresRedis = false
    /// `PUBSUB_MEMORY_MAX_MESSAGES`: messages the memory adapter may hold before dispatch.
    public var memoryMaxMessages = 10_000
    /// `HISTORY_SIZE`, `HISTORY_TTL` (ms), `HISTORY_TOPICS`: which topics keep a history of
    /// their last messages, for recovery (`since`), replay and `GET /api/history/{topic}`.
    public var history = HistoryPolicy()
    /// `HISTORY_USER_TOPICS_PER_MINUTE`: distinct topics with history one user may use on a node
    /// within a minute (``HistoryTopicBudget``); 0: no limit.
    public var historyUserTopicsPerMinute = 1_000
    /// `JWT_SECRET` or `JWT_PUBLIC_KEY_FILE`.
    public var tokenKey: TokenKey
    /// `JWT_ISSUER`, `JWT_AUDIENCE`, `JWT_REQUIRE_EXP`, `JWT_LEEWAY` (ms): what a token's claims
    /// must hold (see ``TokenVerifier/Rules``).
    public var tokenRules = TokenVerifier.Rules()
    /// `JWT_RENEWAL_GRACE` (ms): how long a connection whose token expired (`auth_expired`) may
    /// stay open without a fresh `auth`; then it is closed with 4001 and leaves presence.
    public var tokenRenewalGrace: Duration = .milliseconds(60_000)
    /// `API_KEY`: lets servers call `POST /api/publish` without a token.
    public var apiKey: String?
    /// `WEBSOCKET_ALLOWED_ORIGINS`: browser origins that may open `/ws` (`*` or a comma-separated
    /// list); an upgrade with another `Origin` gets 403. Nil (unset): any origin, and clients
    /// that send none (servers, mobile apps).
    public var websocketAllowedOrigins: AllowedOrigins?
    /// `CORS_ALLOWED_ORIGINS`: browser origins that may call the HTTP API from their pages (`*` or
    /// a comma-separated list). Nil (unset): no CORS headers, so browsers allow same-origin only.
    public var corsAllowedOrigins: AllowedOrigins?
    /// `STATS_TOKEN`: when set, `/stats` and `/metrics` answer only
    /// `Authorization: Bearer <STATS_TOKEN>` (they show client addresses and cluster internals).
    public var statsToken: String?
    /// `TRUSTED_PROXIES`: peers whose `X-Forwarded-For` is believed (comma-separated addresses
    /// or CIDR ranges, IPv4 or IPv6; an IPv4 range also matches IPv4-mapped IPv6 peers).
    public var trustedProxies: [IPRange] = []
    /// `NODE_ID`: this node's name in logs, envelopes and cluster stats.
    public var nodeId: String
    /// `LOG_LEVEL`: trace, debug, info, notice, warning, error, critical.
    public var logLevel: Logger.Level = .info
    /// `DRAIN_TIMEOUT` (ms): longest graceful shutdown before the node exits anyway.
    public var drainTimeout: Duration = .milliseconds(10_000)
    /// `CLUSTER_HEARTBEAT_INTERVAL` (ms): how often a Redis-backed node announces its stats for
    /// `/stats?scope=cluster`; a node silent for three intervals drops out of the list.
    public var clusterHeartbeatInterval: Duration = .milliseconds(2_000)
    /// `MEMORY_TRIM_INTERVAL` (ms, `0`: never): how often the node checks whether memory it freed
    /// since (16 MiB or more) should go back to the kernel (``HeapTrimmer``); nil: never.
    public var memoryTrimInterval: Duration? = .milliseconds(10_000)

    /// `DATABASE_URL`: where accounts and messages live: `sqlite:PATH` (the environment's
    /// default is `sqlite:chorus.sqlite`), `sqlite::memory:`, or
    /// `postgres://user:password@host:port/db` so that every node of a cluster shares one store;
    /// `none` (nil) turns the accounts and messages API off (a pure relay node).
    public var database: DatabaseURL?
    /// `DATABASE_TIMEOUT` (ms): longest a store request may take before the route answers 503.
    public var databaseTimeout: Duration = .milliseconds(5_000)
    /// `MESSAGE_RETENTION` (ms; `0`, the default, keeps them for ever): how long the store keeps
    /// a message, and the id of a deleted one; older ones are deleted while the node runs.
    public var messageRetention: Duration?
    /// `AUTH_REGISTRATION`: whether `POST /api/auth/register` is open (deployments that issue
    /// their own tokens switch it off).
    public var registrationEnabled = true
    /// `AUTH_TOKEN_TTL` (seconds, at most 30 days; the one duration not in milliseconds):
    /// lifetime of the tokens that register and login return.
    public var authTokenTTL: Duration = .seconds(86_400)
    /// `AUTH_LOGIN_ATTEMPTS_PER_MINUTE`: login attempts per client address and user name, and
    /// registrations per client address.
    public var loginAttemptsPerMinute = 10
    /// `AUTH_BCRYPT_COST`: bcrypt work factor for stored passwords (each step doubles the work).
    public var bcryptCost = 10

    /// `PRESENCE_TTL` (ms): a node's presence lease; a node that stops renewing it (killed,
    /// cut off from Redis) loses its members within this plus a third of it (see docs/presence.md).
    public var presenceTTL: Duration = .milliseconds(30_000)
    /// `PRESENCE_DRAIN_GRACE` (ms, `0`: none): how long a draining node keeps, in Redis, the
    /// presence of the connections it closed, so that users who reconnect to another node
    /// meanwhile are seen neither leaving nor joining again.
    public var presenceDrainGrace: Duration = .milliseconds(2_000)
    /// `PRESENCE_RECONNECT_GRACE` (ms, `0`: none): how long the presence of a connection its
    /// client did not close with a close frame (a network lost, an app killed, a connection the
    /// node closed) stays counted, so that a user who reconnects meanwhile, to any node, is seen
    /// neither leaving nor joining again.
    public var presenceReconnectGrace: Duration = .zero
    /// `PRESENCE_MAX_DATA_SIZE` (bytes): the largest `presence.data` a client may set.
    public var presenceMaxDataSize = 4_096
    /// `PRESENCE_BATCH_RATE`: presence events per second per topic above which a node batches
    /// them into one `presence` message per topic per second.
    public var presenceBatchRate = 50
    /// `TYPING_TIMEOUT` (ms): a `typing` start not refreshed within it ends with a `stop`.
    public var typingTimeout: Duration = .milliseconds(5_000)

    public init(tokenKey: TokenKey, nodeId: String = NodeConfiguration.defaultNodeId()) {
        self.tokenKey = tokenKey
        self.nodeId = nodeId
    }

    /// A node id unique enough for a cluster: host name plus a random suffix.
    ///
    /// Uses `gethostname`, not `ProcessInfo.hostName`, which resolves the name through DNS and
    /// can block for seconds where no resolver answers.
    public static func defaultNodeId() -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        let host = gethostname(&buffer, buffer.count) == 0
            ? String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self) : ""
        let short = host.split(separator: ".").first.map(String.init) ?? "node"
        return "\(short.isEmpty ? "node" : short)-\(String(UInt32.random(in: 0...UInt32.max), radix: 36))"
    }
}

extension NodeConfiguration {
    /// The shortest `JWT_SECRET` a node accepts (and `chorus token` signs with).
    public static let minimumSecretBytes = 16
    /// The longest `MESSAGE_RETENTION`: ten years, in milliseconds.
    public static let longestRetention = 3_650 * 86_400_000

    /// Reads the configuration from environment variables.
    /// - Throws: ``ConfigurationError`` naming the first bad variable.
    public init(environment env: [String: String]) throws(ConfigurationError) {
        let reader = EnvironmentReader(env)
        let tokenKey: TokenKey
        if let secret = reader.string("JWT_SECRET") {
            // Which key wins would be a guess: tokens of the other kind would all be refused.
            guard reader.string("JWT_PUBLIC_KEY_FILE") == nil else {
                throw ConfigurationError(
                    "JWT_PUBLIC_KEY_FILE", "set either JWT_SECRET (HS256) or JWT_PUBLIC_KEY_FILE (RS256/ES256), not both")
            }
            guard secret.utf8.count >= Self.minimumSecretBytes else {
                throw ConfigurationError(
                    "JWT_SECRET", "must be at least \(Self.minimumSecretBytes) bytes long, got \(secret.utf8.count)")
            }
            tokenKey = .hmacSecret(Array(secret.utf8))
        } else if let path = reader.string("JWT_PUBLIC_KEY_FILE") {
            guard let pem = try? String(contentsOfFile: path, encoding: .utf8) else {
                throw ConfigurationError("JWT_PUBLIC_KEY_FILE", "cannot read '\(path)'")
            }
            tokenKey = .publicKeyPEM(pem)
        } else {
            throw ConfigurationError(
                "JWT_SECRET",
                "not set: set JWT_SECRET (HS256, at least 16 bytes) or JWT_PUBLIC_KEY_FILE (RS256/ES256 PEM)"
            )
        }
        let nodeId = reader.string("NODE_ID") ?? Self.defaultNodeId()
        // A presence instance is `<NODE_ID>/<boot nonce>`, and a restart reaps `<NODE_ID>/*`:
        // a node named `eu` would take the live `eu/1`'s members for its own earlier boot's.
        guard !nodeId.isEmpty, !nodeId.contains("/") else {
            throw ConfigurationError("NODE_ID", "'\(nodeId)': must be non-empty and without '/'")
        }
        self.init(tokenKey: tokenKey, nodeId: nodeId)
        if case .publicKeyPEM(let pem) = tokenKey {
            do {
                _ = try TokenVerifier(key: tokenKey)
            } catch {
                throw ConfigurationError("JWT_PUBLIC_KEY_FILE", "\(error) in \(pem.prefix(30))...")
            }
        }

        tokenRules = try Self.tokenRules(environment: env)

        httpHost = reader.string("HTTP_HOST") ?? httpHost
        httpPort = try reader.port("HTTP_PORT") ?? httpPort
        websocketEnabled = try reader.bool("WEBSOCKET_ENABLED") ?? websocketEnabled
        dashboardEnabled = try reader.bool("DASHBOARD_ENABLED") ?? dashboardEnabled
        websocketHost = reader.string("WEBSOCKET_HOST") ?? websocketHost
        websocketPort = try reader.port("WEBSOCKET_PORT") ?? httpPort
        pingInterval = try reader.milliseconds("WEBSOCKET_PING_INTERVAL") ?? pingInterval
        pingTimeout = try reader.milliseconds("WEBSOCKET_PING_TIMEOUT") ?? pingTimeout
        maxConnectionsPerIP = try reader.integer("WEBSOCKET_MAX_CONNECTIONS_PER_IP", in: 1...1_000_000) ?? maxConnectionsPerIP
        maxConnections = try reader.integer("WEBSOCKET_MAX_CONNECTIONS", in: 1...100_000_000) ?? maxConnections
        httpMaxConnections = try reader.integer("HTTP_MAX_CONNECTIONS", in: 1...100_000_000) ?? httpMaxConnections
        httpMaxConnectionsPerIP =
            try reader.integer("HTTP_MAX_CONNECTIONS_PER_IP", in: 1...100_000_000) ?? httpMaxConnectionsPerIP
        httpIdleTimeout = try reader.milliseconds("HTTP_IDLE_TIMEOUT") ?? httpIdleTimeout
        maxMessageSize = try reader.integer("WEBSOCKET_MAX_MESSAGE_SIZE", in: 64...(64 << 20)) ?? maxMessageSize
        maxSubscriptionsPerConnection =
            try reader.integer("WEBSOCKET_MAX_SUBSCRIPTIONS", in: 1...100_000) ?? maxSubscriptionsPerConnection
        maxPendingBytes = try reader.integer("WEBSOCKET_MAX_PENDING_BYTES", in: 4096...(1 << 30)) ?? maxPendingBytes
        // Not `milliseconds(_:)`: 0 is allowed here (it turns the pacing off).
        writeDelay = try reader.integer("WEBSOCKET_WRITE_DELAY", in: 0...100).map { .milliseconds($0) } ?? writeDelay
        maxMessagesPerSecond =
            try reader.integer("WEBSOCKET_MAX_MESSAGES_PER_SECOND", in: 1...1_000_000) ?? maxMessagesPerSecond
        maxBytesPerSecond = try reader.integer("WEBSOCKET_MAX_BYTES_PER_SECOND", in: 1024...(1 << 30)) ?? maxBytesPerSecond
        websocketCompression = try reader.bool("WEBSOCKET_COMPRESSION") ?? websocketCompression
        websocketCompressionMinSize =
            try reader.integer("WEBSOCKET_COMPRESSION_MIN_SIZE", in: 0...(64 << 20)) ?? websocketCompressionMinSize
        guard pingTimeout > pingInterval else {
            throw ConfigurationError("WEBSOCKET_PING_TIMEOUT", "must be longer than WEBSOCKET_PING_INTERVAL")
        }

        if let name = reader.string("PUBSUB_ADAPTER") {
            guard let value = Adapter(rawValue: name.lowercased()) else {
                throw ConfigurationError("PUBSUB_ADAPTER", "expected memory or redis, got '\(name)'")
            }
            adapter = value
        }
        // With Sentinel, PUBSUB_REDIS_URL is ignored (not even parsed).
        let redisURL = (reader.string("PUBSUB_REDIS_SENTINELS") == nil ? reader.string("PUBSUB_REDIS_URL") : nil) ?? "redis://localhost:6379"
        do {
            redisURLs = try RedisURL.parseList(redisURL)
        } catch {
            throw ConfigurationError("PUBSUB_REDIS_URL", Self.withoutVariable("PUBSUB_REDIS_URL", "\(error)"))
        }
        if let sentinels = reader.string("PUBSUB_REDIS_SENTINELS") {
            do {
                redisSentinel = try RedisSentinelSettings(
                    sentinels: sentinels, masterNames: reader.string("PUBSUB_REDIS_MASTER_NAME"),
                    sentinelPassword: reader.string("PUBSUB_REDIS_SENTINEL_PASSWORD"))
            } catch {
                throw ConfigurationError(error.variable, Self.withoutVariable(error.variable, "\(error)"))
            }
        }
        (redisURLs, redisSentinel) = try Self.redisTLS(redisURLs, sentinel: redisSentinel, adapter: adapter, reader)
        redisPrefix = reader.string("PUBSUB_REDIS_PREFIX") ?? redisPrefix
        if let milliseconds = try reader.integer("PUBSUB_REDIS_TIMEOUT", in: 30...600_000) {
            redisTimeout = .milliseconds(milliseconds)
        }
        redisMaxPatterns = try reader.integer("PUBSUB_REDIS_MAX_PATTERNS", in: 1...100_000) ?? redisMaxPatterns
        readyRequiresRedis = try reader.bool("READY_REQUIRES_REDIS") ?? readyRequiresRedis
        memoryMaxMessages = try reader.integer("PUBSUB_MEMORY_MAX_MESSAGES", in: 1...10_000_000) ?? memoryMaxMessages
        history = try Self.historyPolicy(reader)
        historyUserTopicsPerMinute =
            try reader.integer("HISTORY_USER_TOPICS_PER_MINUTE", in: 0...1_000_000) ?? historyUserTopicsPerMinute

        apiKey = reader.string("API_KEY")
        statsToken = reader.string("STATS_TOKEN")
        websocketAllowedOrigins = try reader.origins("WEBSOCKET_ALLOWED_ORIGINS")
        corsAllowedOrigins = try reader.origins("CORS_ALLOWED_ORIGINS")
        if let proxies = reader.string("TRUSTED_PROXIES") {
            trustedProxies = try proxies.split(separator: ",").map { entry throws(ConfigurationError) in
                let text = entry.trimmingCharacters(in: .whitespaces)
                guard let range = IPRange(text) else {
                    throw ConfigurationError(
                        "TRUSTED_PROXIES", "expected IP addresses or CIDR ranges (10.0.0.0/8, fd00::/8), got '\(text)'")
                }
                return range
            }
        }
        if let level = reader.string("LOG_LEVEL") {
            guard let value = Logger.Level(rawValue: level.lowercased()) else {
                throw ConfigurationError(
                    "LOG_LEVEL", "expected trace, debug, info, notice, warning, error or critical, got '\(level)'"
                )
            }
            logLevel = value
        }
        database = .sqliteFile("chorus.sqlite")
        if let url = reader.string("DATABASE_URL") {
            if url.lowercased() == "none" {
                database = nil
            } else {
                do {
                    database = try DatabaseURL(parsing: url)
                } catch {
                    throw ConfigurationError("DATABASE_URL", Self.withoutVariable("DATABASE_URL", "\(error)"))
                }
            }
        }
        databaseTimeout = try reader.milliseconds("DATABASE_TIMEOUT") ?? databaseTimeout
        if let retention = try reader.integer("MESSAGE_RETENTION", in: 0...Self.longestRetention) {
            // Under a second is a unit mistaken (`30` for thirty days), and would delete everything.
            guard retention == 0 || retention >= 1_000 else {
                throw ConfigurationError("MESSAGE_RETENTION", "expected 0 (keep for ever) or at least 1000 ms, got \(retention)")
            }
            messageRetention = retention == 0 ? nil : .milliseconds(retention)
        }
        registrationEnabled = try reader.bool("AUTH_REGISTRATION") ?? registrationEnabled
        // Seconds, as JWT's `exp` counts them; capped at 30 days, so that most values given in
        // milliseconds by mistake (an hour and more) are refused rather than taken for weeks.
        if let seconds = try reader.integer("AUTH_TOKEN_TTL", in: 1...(30 * 86_400)) {
            authTokenTTL = .seconds(seconds)
        }
        loginAttemptsPerMinute = try reader.integer("AUTH_LOGIN_ATTEMPTS_PER_MINUTE", in: 1...100_000) ?? loginAttemptsPerMinute
        bcryptCost = try reader.integer("AUTH_BCRYPT_COST", in: 4...16) ?? bcryptCost
        drainTimeout = try reader.milliseconds("DRAIN_TIMEOUT") ?? drainTimeout
        clusterHeartbeatInterval = try reader.milliseconds("CLUSTER_HEARTBEAT_INTERVAL") ?? clusterHeartbeatInterval
        if let trim = try reader.integer("MEMORY_TRIM_INTERVAL", in: 0...3_600_000) {
            memoryTrimInterval = trim == 0 ? nil : .milliseconds(trim)
        }
        presenceTTL = try reader.milliseconds("PRESENCE_TTL") ?? presenceTTL
        if let grace = try reader.integer("PRESENCE_DRAIN_GRACE", in: 0...600_000) { presenceDrainGrace = .milliseconds(grace) }
        if let grace = try reader.integer("PRESENCE_RECONNECT_GRACE", in: 0...600_000) { presenceReconnectGrace = .milliseconds(grace) }
        presenceMaxDataSize = try reader.integer("PRESENCE_MAX_DATA_SIZE", in: 2...(1 << 20)) ?? presenceMaxDataSize
        presenceBatchRate = try reader.integer("PRESENCE_BATCH_RATE", in: 1...1_000_000) ?? presenceBatchRate
        typingTimeout = try reader.milliseconds("TYPING_TIMEOUT") ?? typingTimeout
        tokenRenewalGrace = try reader.milliseconds("JWT_RENEWAL_GRACE") ?? tokenRenewalGrace
    }
}

extension NodeConfiguration {
    /// What lives on the first Redis server (the cluster directory, the login counts): made for
    /// the first master name with Sentinel, else for the first `PUBSUB_REDIS_URL`; nil without
    /// the Redis adapter.
    func onFirstRedisServer<T>(sentinel: (RedisSentinelSettings) -> T, url: (RedisURL) -> T) -> T? {
        guard adapter == .redis else { return nil }
        return redisSentinel.map(sentinel) ?? url(redisURLs[0])
    }
}

extension NodeConfiguration {
    /// The token rules alone (`JWT_ISSUER`, `JWT_AUDIENCE`, `JWT_REQUIRE_EXP`, `JWT_LEEWAY`), for
    /// `chorus token` to mint what the node accepts.
    public static func tokenRules(environment env: [String: String]) throws(ConfigurationError) -> TokenVerifier.Rules {
        let reader = EnvironmentReader(env)
        var rules = TokenVerifier.Rules()
        rules.issuer = reader.string("JWT_ISSUER")
        rules.audience = reader.string("JWT_AUDIENCE")
        rules.requireExpiry = try reader.bool("JWT_REQUIRE_EXP") ?? rules.requireExpiry
        if let leeway = try reader.integer("JWT_LEEWAY", in: 0...3_600_000) {
            rules.leeway = .milliseconds(leeway)
        }
        return rules
    }

    /// `HISTORY_SIZE` (0...10,000; 0 = off), `HISTORY_TTL` (ms), `HISTORY_TOPICS` (comma-separated
    /// topic patterns, `**` = every topic), `HISTORY_MAX_BYTES` (1 MiB...1 TiB).
    fileprivate static func historyPolicy(_ reader: EnvironmentReader) throws(ConfigurationError) -> HistoryPolicy {
        let defaults = HistoryPolicy()
        let size = try reader.integer("HISTORY_SIZE", in: 0...10_000) ?? defaults.size
        let ttl = try reader.integer("HISTORY_TTL", in: 1...(30 * 86_400_000)) ?? defaults.ttlMilliseconds
        var patterns = defaults.patterns
        if let text = reader.string("HISTORY_TOPICS") {
            patterns = try text.split(separator: ",").map { entry throws(ConfigurationError) in
                let name = entry.trimmingCharacters(in: .whitespaces)
                do {
                    return try TopicPattern(name)
                } catch {
                    throw ConfigurationError("HISTORY_TOPICS", "'\(name)' is not a topic pattern: \(error)")
                }
            }
        }
        let maxBytes = try reader.integer("HISTORY_MAX_BYTES", in: (1 << 20)...(1 << 40)) ?? defaults.maxBytes
        return HistoryPolicy(size: size, ttlMilliseconds: ttl, patterns: patterns, maxBytes: maxBytes)
    }

    /// `urls`, or the Sentinel settings, with `PUBSUB_REDIS_TLS_CA_FILE`, `PUBSUB_REDIS_TLS_CERT_FILE`
    /// and `PUBSUB_REDIS_TLS_KEY_FILE` applied to each `rediss://` server (with Sentinel: to
    /// the `rediss://` Sentinels and the masters they name), and the TLS context made here
    /// (``RedisTLS/context()``), so that a wrong path, a bad file or a key that does not fit
    /// the certificate stops the node at start with the variable named. Only for the Redis
    /// adapter.
    fileprivate static func redisTLS(
        _ urls: [RedisURL], sentinel: RedisSentinelSettings?, adapter: Adapter, _ reader: EnvironmentReader
    ) throws(ConfigurationError) -> ([RedisURL], RedisSentinelSettings?) {
        let files = RedisTLS(
            caFile: reader.string(variable(.authority)), certificateFile: reader.string(variable(.certificate)),
            keyFile: reader.string(variable(.key)))
        let firstSet = [RedisTLS.File.authority, .certificate, .key].first { reader.string(variable($0)) != nil }
        guard adapter == .redis else { return (urls, sentinel) }
        let servers = sentinel == nil ? "PUBSUB_REDIS_URL" : "PUBSUB_REDIS_SENTINELS"
        let ignoredURLs = reader.string("PUBSUB_REDIS_URL")?.split(separator: ",") ?? []
        if sentinel != nil, ignoredURLs.contains(where: { $0.trimmingCharacters(in: .whitespaces).lowercased().hasPrefix("rediss:") }) {
            throw ConfigurationError(
                "PUBSUB_REDIS_URL", "is ignored with PUBSUB_REDIS_SENTINELS; for TLS, list the Sentinels as rediss://host:port")
        }
        guard sentinel?.usesTLS ?? urls.contains(where: { $0.tls != nil }) else {
            if let firstSet {
                throw ConfigurationError(variable(firstSet), "is set, but no server of \(servers) uses rediss:// (TLS)")
            }
            return (urls, sentinel)
        }
        guard (files.certificateFile == nil) == (files.keyFile == nil) else {
            let given = files.certificateFile != nil ? RedisTLS.File.certificate : .key
            throw ConfigurationError(variable(given), "PUBSUB_REDIS_TLS_CERT_FILE and PUBSUB_REDIS_TLS_KEY_FILE go together")
        }
        do {
            _ = try files.context()
        } catch {
            throw ConfigurationError(error.file.map(variable) ?? servers, error.description)
        }
        let tlsURLs = urls.map { url in
            var url = url
            if url.tls != nil { url.tls = files }
            return url
        }
        return (tlsURLs, sentinel?.withTLS(files))
    }

    /// The variable that names `file`.
    private static func variable(_ file: RedisTLS.File) -> String {
        switch file {
        case .authority: "PUBSUB_REDIS_TLS_CA_FILE"
        case .certificate: "PUBSUB_REDIS_TLS_CERT_FILE"
        case .key: "PUBSUB_REDIS_TLS_KEY_FILE"
        }
    }

    /// `message` without a leading `VARIABLE: ` (the URL parsers name their variable already).
    fileprivate static func withoutVariable(_ variable: String, _ message: String) -> String {
        message.hasPrefix("\(variable): ") ? String(message.dropFirst(variable.count + 2)) : message
    }
}

/// Typed reads of environment variables; every failure names its variable.
private struct EnvironmentReader {
    let env: [String: String]

    init(_ env: [String: String]) { self.env = env }

    func string(_ name: String) -> String? {
        guard let value = env[name]?.trimmingCharacters(in: .whitespaces), !value.isEmpty else { return nil }
        return value
    }

    func integer(_ name: String, in range: ClosedRange<Int>) throws(ConfigurationError) -> Int? {
        guard let text = string(name) else { return nil }
        guard let value = Int(text) else {
            throw ConfigurationError(name, "expected a whole number, got '\(text)'")
        }
        guard range.contains(value) else {
            throw ConfigurationError(name, "expected \(range.lowerBound)...\(range.upperBound), got \(value)")
        }
        return value
    }

    func port(_ name: String) throws(ConfigurationError) -> Int? {
        try integer(name, in: 0...65535)
    }

    /// At most 30 days: a longer duration is a typo, and one past about 292 years in
    /// nanoseconds would trap where a timer is set (a node that crashes at its first token expiry).
    func milliseconds(_ name: String) throws(ConfigurationError) -> Duration? {
        guard let text = string(name) else { return nil }
        guard let value = Int(text), value > 0, value <= Self.longestMilliseconds else {
            throw ConfigurationError(name, "expected a positive number of milliseconds up to \(Self.longestMilliseconds) (30 days), got '\(text)'")
        }
        return .milliseconds(value)
    }

    static let longestMilliseconds = 30 * 24 * 3_600_000

    func origins(_ name: String) throws(ConfigurationError) -> AllowedOrigins? {
        guard let text = string(name) else { return nil }
        do {
            return try AllowedOrigins(parsing: text)
        } catch {
            throw ConfigurationError(name, error.description)
        }
    }

    func bool(_ name: String) throws(ConfigurationError) -> Bool? {
        guard let text = string(name) else { return nil }
        switch text.lowercased() {
        case "true", "1", "yes", "on": return true
        case "false", "0", "no", "off": return false
        default: throw ConfigurationError(name, "expected true or false (on or off, yes or no, 1 or 0 too), got '\(text)'")
        }
    }
}
