import Broker
import Node
import Testing
import TestSupport

@Suite("Configuration from the environment")
struct ConfigurationTests {
    static let base = ["JWT_SECRET": "0123456789abcdef0123"]

    @Test("defaults are the seed's")
    func defaults() throws {
        let configuration = try NodeConfiguration(environment: Self.base)
        #expect(configuration.httpPort == 3000)
        #expect(configuration.websocketPort == 3000)
        #expect(configuration.pingInterval == .milliseconds(30_000))
        #expect(configuration.pingTimeout == .milliseconds(60_000))
        #expect(configuration.maxConnectionsPerIP == 100)
        #expect(configuration.maxMessageSize == 1_048_576)
        #expect(configuration.adapter == .memory)
        #expect(configuration.redisPrefix == "pubsub:")
        #expect(configuration.memoryMaxMessages == 10_000)
        #expect(configuration.redisTimeout == .milliseconds(1_500))
    }

    @Test("PUBSUB_REDIS_TIMEOUT sets the Redis deadline in milliseconds")
    func redisTimeout() throws {
        let configuration = try NodeConfiguration(environment: Self.base.merging(["PUBSUB_REDIS_TIMEOUT": "250"]) { $1 })
        #expect(configuration.redisTimeout == .milliseconds(250))
    }

    @Test("PUBSUB_REDIS_SENTINELS and PUBSUB_REDIS_MASTER_NAME find Redis through Sentinel; PUBSUB_REDIS_URL is then ignored")
    func redisSentinel() throws {
        #expect(try NodeConfiguration(environment: Self.base).redisSentinel == nil)
        let configuration = try NodeConfiguration(environment: Self.base.merging([
            "PUBSUB_REDIS_SENTINELS": "127.0.0.1:26379,10.0.0.2", "PUBSUB_REDIS_MASTER_NAME": "a,:pw@b",
            "PUBSUB_REDIS_URL": "not a url",
        ]) { $1 })
        #expect(configuration.redisSentinel?.sentinels.map(\.server) == ["127.0.0.1:26379", "10.0.0.2:26379"])
        #expect(configuration.redisSentinel?.masters.map(\.host) == ["a", "b"])
        for (overrides, message) in [
            (["PUBSUB_REDIS_SENTINELS": "127.0.0.1:26379"], "PUBSUB_REDIS_MASTER_NAME: "),
            (["PUBSUB_REDIS_SENTINELS": "h:x", "PUBSUB_REDIS_MASTER_NAME": "a"], "PUBSUB_REDIS_SENTINELS: 'h:x'"),
            (["PUBSUB_REDIS_SENTINELS": "h:1", "PUBSUB_REDIS_MASTER_NAME": ":hunter2@a b"], "PUBSUB_REDIS_MASTER_NAME: "),
        ] {
            #expect {
                _ = try NodeConfiguration(environment: Self.base.merging(overrides) { $1 })
            } throws: { error in
                "\(error)".hasPrefix(message) && !"\(error)".contains("hunter2") && !"\(error)".contains("\n")
            }
        }
    }

    @Test("token rules: exp required and 5 s of leeway by default; issuer and audience when set")
    func tokenRules() throws {
        #expect(try NodeConfiguration(environment: Self.base).tokenRules == .init(requireExpiry: true, leeway: .seconds(5)))
        let set = try NodeConfiguration(environment: Self.base.merging([
            "JWT_ISSUER": "https://auth.example", "JWT_AUDIENCE": "chorus", "JWT_REQUIRE_EXP": "false", "JWT_LEEWAY": "0",
        ]) { $1 })
        #expect(set.tokenRules == .init(issuer: "https://auth.example", audience: "chorus", requireExpiry: false, leeway: .zero))
    }

    @Test("MESSAGE_RETENTION keeps messages for ever by default (and at 0), else for that many milliseconds")
    func messageRetention() throws {
        #expect(try NodeConfiguration(environment: Self.base).messageRetention == nil)
        #expect(try NodeConfiguration(environment: Self.base.merging(["MESSAGE_RETENTION": "0"]) { $1 }).messageRetention == nil)
        let month = try NodeConfiguration(environment: Self.base.merging(["MESSAGE_RETENTION": "2592000000"]) { $1 })
        #expect(month.messageRetention == .seconds(2_592_000))
    }

    @Test("a duration past 30 days is refused at start (JWT_RENEWAL_GRACE=9999999999999999 crashed the node at its first token expiry); MEMORY_TRIM_INTERVAL=0 turns trimming off")
    func durationBounds() throws {
        for name in ["JWT_RENEWAL_GRACE", "WEBSOCKET_PING_INTERVAL", "DRAIN_TIMEOUT"] {
            #expect(throws: ConfigurationError.self) {
                try NodeConfiguration(environment: Self.base.merging([name: "9999999999999999"]) { $1 })
            }
        }
        let month = try NodeConfiguration(environment: Self.base.merging(["JWT_RENEWAL_GRACE": "2592000000"]) { $1 })
        #expect(month.tokenRenewalGrace == .seconds(2_592_000))
        #expect(try NodeConfiguration(environment: Self.base).memoryTrimInterval == .seconds(10))
        #expect(try NodeConfiguration(environment: Self.base.merging(["MEMORY_TRIM_INTERVAL": "0"]) { $1 }).memoryTrimInterval == nil)
    }

    @Test("a NODE_ID with '/' is refused at start: a node named 'eu' would reap the running 'eu/1''s presence members as its own earlier boot's")
    func nodeIdWithoutSlash() throws {
        #expect(try NodeConfiguration(environment: Self.base.merging(["NODE_ID": "eu-1.a_b"]) { $1 }).nodeId == "eu-1.a_b")
        #expect(throws: ConfigurationError.self) { try NodeConfiguration(environment: Self.base.merging(["NODE_ID": "eu/1"]) { $1 }) }
    }

    @Test("WEBSOCKET_PORT follows HTTP_PORT unless set")
    func sharedPort() throws {
        #expect(try NodeConfiguration(environment: Self.base.merging(["HTTP_PORT": "8080"]) { $1 }).websocketPort == 8080)
        let split = try NodeConfiguration(environment: Self.base.merging(["HTTP_PORT": "8080", "WEBSOCKET_PORT": "9090"]) { $1 })
        #expect(split.websocketPort == 9090)
    }

    @Test("rediss:// turns TLS on for that server (or, as Sentinels, for them and their masters); PUBSUB_REDIS_TLS_* files apply to every rediss:// server and are checked at start")
    func redisTLS() async throws {
        let certificates = try await TestCertificates.loopback()
        let redis = Self.base.merging(["PUBSUB_ADAPTER": "redis"]) { $1 }
        let configuration = try NodeConfiguration(environment: redis.merging([
            "PUBSUB_REDIS_URL": "rediss://a:6380,redis://b:6379", "PUBSUB_REDIS_TLS_CA_FILE": certificates.authority,
            "PUBSUB_REDIS_TLS_CERT_FILE": certificates.clientCertificate, "PUBSUB_REDIS_TLS_KEY_FILE": certificates.clientKey,
        ]) { $1 })
        #expect(configuration.redisURLs.map(\.tls) == [
            RedisTLS(caFile: certificates.authority, certificateFile: certificates.clientCertificate, keyFile: certificates.clientKey),
            nil,
        ])
        #expect(try NodeConfiguration(environment: redis.merging(["PUBSUB_REDIS_URL": "rediss://a"]) { $1 }).redisURLs[0].tls == RedisTLS())
        // rediss:// Sentinels: TLS, with the same files, to the Sentinels and to the masters they name.
        let sentinel = try NodeConfiguration(environment: redis.merging([
            "PUBSUB_REDIS_SENTINELS": "rediss://s1:26380,rediss://s2", "PUBSUB_REDIS_MASTER_NAME": "m1,m2",
            "PUBSUB_REDIS_TLS_CA_FILE": certificates.authority,
        ]) { $1 }).redisSentinel
        let files = RedisTLS(caFile: certificates.authority)
        #expect(sentinel?.sentinels.map(\.tls) == [files, files])
        #expect(sentinel?.sentinels.map(\.server) == ["s1:26380", "s2:26379"])
        #expect(sentinel?.masters.map(\.tls) == [files, files])
        // The memory adapter uses no Redis: the variables are not checked.
        #expect(try NodeConfiguration(environment: Self.base.merging(["PUBSUB_REDIS_TLS_CA_FILE": "/nonexistent"]) { $1 }).adapter == .memory)
        for (overrides, message) in [
            (["PUBSUB_REDIS_TLS_CA_FILE": certificates.authority], "PUBSUB_REDIS_TLS_CA_FILE: is set, but no server"),
            (["PUBSUB_REDIS_URL": "rediss://a", "PUBSUB_REDIS_TLS_CA_FILE": "/nonexistent/ca.pem"],
                "PUBSUB_REDIS_TLS_CA_FILE: TLS: cannot use /nonexistent/ca.pem"),
            (["PUBSUB_REDIS_URL": "rediss://a", "PUBSUB_REDIS_TLS_CERT_FILE": certificates.clientCertificate],
                "PUBSUB_REDIS_TLS_CERT_FILE: PUBSUB_REDIS_TLS_CERT_FILE and PUBSUB_REDIS_TLS_KEY_FILE go together"),
            (["PUBSUB_REDIS_URL": "rediss://a", "PUBSUB_REDIS_TLS_CERT_FILE": certificates.clientCertificate,
                "PUBSUB_REDIS_TLS_KEY_FILE": certificates.authority], "PUBSUB_REDIS_TLS_KEY_FILE: TLS: cannot use"),
            (["PUBSUB_REDIS_URL": "rediss://a", "PUBSUB_REDIS_TLS_CA_FILE": certificates.authority,
                "PUBSUB_REDIS_TLS_CERT_FILE": certificates.clientCertificate, "PUBSUB_REDIS_TLS_KEY_FILE": certificates.serverKey],
                "PUBSUB_REDIS_TLS_CERT_FILE: TLS: cannot use"),
            (["PUBSUB_REDIS_SENTINELS": "h:1", "PUBSUB_REDIS_MASTER_NAME": "a", "PUBSUB_REDIS_URL": "redis://a, rediss://b"],
                "PUBSUB_REDIS_URL: is ignored with PUBSUB_REDIS_SENTINELS; for TLS, list the Sentinels as rediss://"),
            (["PUBSUB_REDIS_SENTINELS": "h:1", "PUBSUB_REDIS_MASTER_NAME": "a", "PUBSUB_REDIS_TLS_CA_FILE": certificates.authority],
                "PUBSUB_REDIS_TLS_CA_FILE: is set, but no server of PUBSUB_REDIS_SENTINELS uses rediss://"),
            (["PUBSUB_REDIS_SENTINELS": "rediss://h:1,h:2", "PUBSUB_REDIS_MASTER_NAME": "a"],
                "PUBSUB_REDIS_SENTINELS: 'h:2': every Sentinel is redis:// or every one rediss:// (TLS)"),
            (["PUBSUB_REDIS_SENTINELS": "rediss://h:1", "PUBSUB_REDIS_MASTER_NAME": "a", "PUBSUB_REDIS_TLS_CA_FILE": "/nonexistent/ca.pem"],
                "PUBSUB_REDIS_TLS_CA_FILE: TLS: cannot use /nonexistent/ca.pem"),
        ] {
            #expect {
                _ = try NodeConfiguration(environment: redis.merging(overrides) { $1 })
            } throws: { error in
                "\(error)".hasPrefix(message)
            }
        }
    }

    @Test(
        "a bad value stops the node with one line naming the variable",
        arguments: [
            (["HTTP_PORT": "eighty"], "HTTP_PORT: expected a whole number, got 'eighty'"),
            (["HTTP_PORT": "70000"], "HTTP_PORT: expected 0...65535, got 70000"),
            (["WEBSOCKET_PING_INTERVAL": "-5"], "WEBSOCKET_PING_INTERVAL: expected a positive number of milliseconds"),
            (["WEBSOCKET_PING_INTERVAL": "60000", "WEBSOCKET_PING_TIMEOUT": "30000"], "WEBSOCKET_PING_TIMEOUT: must be longer"),
            (["WEBSOCKET_ENABLED": "maybe"], "WEBSOCKET_ENABLED: expected true or false"),
            (["PUBSUB_ADAPTER": "kafka"], "PUBSUB_ADAPTER: expected memory or redis, got 'kafka'"),
            (["PUBSUB_REDIS_URL": "localhost"], "PUBSUB_REDIS_URL"),
            (["PUBSUB_REDIS_TIMEOUT": "soon"], "PUBSUB_REDIS_TIMEOUT: expected a whole number, got 'soon'"),
            (["PUBSUB_REDIS_TIMEOUT": "5"], "PUBSUB_REDIS_TIMEOUT: expected 30...600000, got 5"),
            (["LOG_LEVEL": "loud"], "LOG_LEVEL: expected trace"),
            (["JWT_SECRET": "short"], "JWT_SECRET: must be at least 16 bytes"),
            (["JWT_SECRET": "", "JWT_PUBLIC_KEY_FILE": "/nonexistent.pem"], "JWT_PUBLIC_KEY_FILE: cannot read '/nonexistent.pem'"),
            (["JWT_SECRET": ""], "JWT_SECRET: not set"),
            (["JWT_PUBLIC_KEY_FILE": "/etc/chorus/key.pem"], "JWT_PUBLIC_KEY_FILE: set either JWT_SECRET (HS256) or JWT_PUBLIC_KEY_FILE (RS256/ES256), not both"),
            (["AUTH_TOKEN_TTL": "3600000"], "AUTH_TOKEN_TTL: expected 1...2592000, got 3600000"),
            (["DATABASE_URL": "mysql://db/chorus"], "DATABASE_URL: "),
            (["DATABASE_URL": "postgres://u:hunter2@db:70000/chorus"], "DATABASE_URL: "),
            (["AUTH_REGISTRATION": "sometimes"], "AUTH_REGISTRATION: expected true or false"),
            (["AUTH_BCRYPT_COST": "40"], "AUTH_BCRYPT_COST: expected 4...16, got 40"),
            (["JWT_REQUIRE_EXP": "perhaps"], "JWT_REQUIRE_EXP: expected true or false"),
            (["JWT_LEEWAY": "-1"], "JWT_LEEWAY: expected 0...3600000, got -1"),
            (["JWT_LEEWAY": "5s"], "JWT_LEEWAY: expected a whole number, got '5s'"),
            (["MESSAGE_RETENTION": "30d"], "MESSAGE_RETENTION: expected a whole number, got '30d'"),
            (["MESSAGE_RETENTION": "-1"], "MESSAGE_RETENTION: expected 0...315360000000, got -1"),
            (["MESSAGE_RETENTION": "30"], "MESSAGE_RETENTION: expected 0 (keep for ever) or at least 1000 ms, got 30"),
        ])
    func badValues(overrides: [String: String], message: String) {
        let environment = Self.base.merging(overrides) { $1 }
        do {
            _ = try NodeConfiguration(environment: environment)
            Issue.record("expected a configuration error for \(overrides)")
        } catch {
            #expect(error.description.hasPrefix(message), "\(error.description)")
            #expect(!error.description.contains("\n"))
            #expect(!error.description.contains("hunter2"), "passwords never reach the logs")
            #expect(!error.description.contains("DATABASE_URL: DATABASE_URL"), "the variable is named once")
        }
    }
}
