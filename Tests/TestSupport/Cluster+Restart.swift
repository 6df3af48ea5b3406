import Foundation

extension Cluster {
    /// Starts another `chorus` process as node `number` (`NODE_ID=node-<number>`, the
    /// environment ``withCluster(nodes:redisServers:environment:sourceLocation:_:)`` gives its
    /// nodes, plus `environment`) on the cluster's Redis, outside nginx: a node restarted after
    /// ``NodeProcess/kill()``. The caller stops it and checks its exit. `port` 0: any free port.
    public func startNode(_ number: Int, environment: [String: String] = [:], port: Int = 0) async throws -> NodeProcess {
        var env = [
            "JWT_SECRET": Self.secret, "API_KEY": Self.apiKey, "NODE_ID": "node-\(number)",
            "HTTP_HOST": "127.0.0.1", "WEBSOCKET_HOST": "127.0.0.1", "WEBSOCKET_ENABLED": "true",
            "PUBSUB_ADAPTER": "redis", "PUBSUB_REDIS_URL": redis.map(\.url).joined(separator: ","),
            "PUBSUB_REDIS_PREFIX": "pubsub:", "TRUSTED_PROXIES": "127.0.0.1", "LOG_LEVEL": "info",
            "DRAIN_TIMEOUT": "5000", "AUTH_BCRYPT_COST": "4",
            "DATABASE_URL": "sqlite:\(directory.appendingPathComponent("node-\(number)-restarted.sqlite").path)",
            "WEBSOCKET_MAX_MESSAGES_PER_SECOND": "1000000",
        ]
        env.merge(environment) { $1 }
        let node = try await NodeProcess.start(
            id: "node-\(number)", binary: try Executable.chorus(), environment: env, secret: Self.secret,
            log: directory.appendingPathComponent("node-\(number)-restarted.log"), port: port)
        try await node.waitUntilReady()
        return node
    }
}
