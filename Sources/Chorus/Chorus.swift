import ArgumentParser
import Broker
import Foundation
import Logging
import Metrics
import Node
import Prometheus
import ServiceLifecycle

@main
struct Chorus: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chorus",
        abstract: "A real-time messaging node: WebSocket pub/sub over HTTP, clustered through Redis.",
        version: ChorusVersion.text,
        subcommands: [Serve.self, Token.self],
        defaultSubcommand: Serve.self)
}

/// Flags that override the environment variables of the same meaning.
struct Overrides: ParsableArguments {
    @Option(help: "HTTP_HOST") var host: String?
    @Option(help: "HTTP_PORT") var port: Int?
    @Option(help: "PUBSUB_ADAPTER (memory or redis)") var adapter: String?
    @Option(name: .customLong("redis-url"), help: "PUBSUB_REDIS_URL") var redisURL: String?
    @Option(name: .customLong("node-id"), help: "NODE_ID") var nodeId: String?
    @Option(name: .customLong("log-level"), help: "LOG_LEVEL") var logLevel: String?

    /// The process environment with these flags applied.
    func environment() -> [String: String] {
        var env = ProcessInfo.processInfo.environment
        let pairs: [(String, String?)] = [
            ("HTTP_HOST", host), ("HTTP_PORT", port.map(String.init)), ("PUBSUB_ADAPTER", adapter),
            ("PUBSUB_REDIS_URL", redisURL), ("NODE_ID", nodeId), ("LOG_LEVEL", logLevel),
        ]
        for (name, value) in pairs { if let value { env[name] = value } }
        return env
    }

    func configuration() throws -> NodeConfiguration {
        do {
            return try NodeConfiguration(environment: environment())
        } catch {
            FileHandle.standardError.write(Data("chorus: configuration error: \(error)\n".utf8))
            throw ExitCode(78)  // EX_CONFIG
        }
    }
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run a node (the default).")

    @OptionGroup var overrides: Overrides

    func run() async throws {
        let configuration = try overrides.configuration()
        let level = configuration.logLevel
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let metrics = NodeMetrics()
        MetricsSystem.bootstrap(NodeMetrics.processFactory(registry: metrics.registry))
        ResourceLimits.raiseOpenFileLimit(logger: Logger(label: "chorus"))
        await ResourceLimits.createTimerDescriptors()
        let node = try ChorusNode(
            configuration: configuration, logger: Logger(label: "chorus"), metrics: metrics,
            gracefulShutdownSignals: [.sigterm, .sigint])
        do {
            try await node.run()
        } catch let error as ListenError {
            FileHandle.standardError.write(Data("chorus: \(error)\n".utf8))
            throw ExitCode(78)  // EX_CONFIG: the address or port to listen on is the problem
        }
    }
}

struct Token: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Mint an HS256 token with the configured JWT_SECRET (for trying a node).")

    @Option(help: "The user id (sub claim).") var sub: String
    @Option(help: "Lifetime, such as 3600, 90s, 15m, 12h or 7d.") var ttl: String = "1h"
    @Option(name: .customLong("subscribe"), help: "A subscribe grant pattern (repeatable).") var subscribeGrants: [String] = []
    @Option(name: .customLong("publish"), help: "A publish grant pattern (repeatable).") var publishGrants: [String] = []

    func run() throws {
        guard let secret = ProcessInfo.processInfo.environment["JWT_SECRET"], !secret.isEmpty else {
            throw ValidationError("JWT_SECRET is not set: `chorus token` signs with the node's HS256 secret")
        }
        guard secret.utf8.count >= NodeConfiguration.minimumSecretBytes else {
            throw ValidationError(
                "JWT_SECRET must be at least \(NodeConfiguration.minimumSecretBytes) bytes long, got \(secret.utf8.count): a node would refuse it")
        }
        if let problem = UserID.problem(sub) {
            throw ValidationError("--sub: the user id '\(sub)' \(problem): a node would refuse its token")
        }
        guard let ttl = Self.seconds(ttl) else {
            throw ValidationError("--ttl: expected seconds or a number with s, m, h or d, got '\(self.ttl)'")
        }
        var grants: Grants?
        if !subscribeGrants.isEmpty || !publishGrants.isEmpty {
            do {
                grants = Grants(
                    subscribe: try subscribeGrants.map { try TopicPattern($0) },
                    publish: try publishGrants.map { try TopicPattern($0) })
            } catch {
                throw ValidationError("grant: \(error)")
            }
        }
        let rules: TokenVerifier.Rules
        do {
            rules = try NodeConfiguration.tokenRules(environment: ProcessInfo.processInfo.environment)
        } catch {
            throw ValidationError("\(error)")
        }
        print(TokenMinter(secret: Array(secret.utf8)).mint(
            subject: sub, ttl: .seconds(ttl), grants: grants, issuer: rules.issuer, audience: rules.audience))
    }

    static func seconds(_ text: String) -> Int? {
        let units: [Character: Int] = ["s": 1, "m": 60, "h": 3600, "d": 86400]
        if let unit = text.last, let scale = units[unit], let value = Int(text.dropLast()), value > 0 {
            return value * scale
        }
        return Int(text).flatMap { $0 > 0 ? $0 : nil }
    }
}
