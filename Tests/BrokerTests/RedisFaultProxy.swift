import Foundation
import NIOCore
import NIOPosix
import Synchronization

@testable import Broker

/// A TCP proxy on loopback in front of a real `redis-server`, for the one fault Redis cannot be
/// made to produce on demand: a connection lost after Redis ran a command and published its
/// message, but before the command's reply reached the client (Redis killed between the two
/// writes). Connections are told apart by the client name their handshake sets
/// (`chorus:<node>:pub`, `chorus:<node>:sub`).
final class RedisFaultProxy: Sendable {
    let url: RedisURL
    private let server: any Channel
    private let registry: Registry

    private init(url: RedisURL, server: any Channel, registry: Registry) {
        self.url = url
        self.server = server
        self.registry = registry
    }

    /// Listens on a free loopback port and relays each connection to `target`.
    static func start(to target: RedisURL) async throws -> RedisFaultProxy {
        let registry = Registry()
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { client in
                ClientBootstrap(group: client.eventLoop).connect(host: target.host, port: target.port).flatMapThrowing {
                    redis in
                    let connection = ProxiedConnection(client: client, redis: redis, registry: registry)
                    registry.connections.withLock { $0.append(connection) }
                    try redis.pipeline.syncOperations.addHandler(Relay(to: client, connection, towardRedis: false))
                    try client.pipeline.syncOperations.addHandler(Relay(to: redis, connection, towardRedis: true))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        let port = server.localAddress!.port!
        return RedisFaultProxy(
            url: RedisURL(host: "127.0.0.1", port: port, user: target.user, password: target.password), server: server,
            registry: registry)
    }

    /// From now on, what Redis sends to the connections named `name` is held back (until
    /// ``release(clientNamed:)``, or for ever).
    func holdReplies(toClientNamed name: String) {
        for connection in named(name) { connection.held.withLock { $0 = [] } }
    }

    /// Sends what was held back for the connections named `name`, both ways, and what follows;
    /// new connections of that name are no longer stalled.
    func release(clientNamed name: String) {
        registry.stalled.withLock { _ = $0.remove(name) }
        for connection in named(name) {
            connection.client.eventLoop.execute {
                Self.send(connection.held, to: connection.client)
                Self.send(connection.stalled, to: connection.redis)
            }
        }
    }

    private static func send(_ held: borrowing Mutex<[ByteBuffer]?>, to peer: any Channel) {
        let bytes = held.withLock { held in
            defer { held = nil }
            return held ?? []
        }
        for chunk in bytes { peer.write(chunk, promise: nil) }
        peer.flush()
    }

    /// From now on, what a new connection named `name` sends is held back from Redis, its
    /// handshake included (until ``release(clientNamed:)``): a reconnect that takes its time.
    func stall(clientNamed name: String) {
        registry.stalled.withLock { _ = $0.insert(name) }
    }

    /// From now on, a new connection named `name` is closed as soon as its name is seen.
    func refuse(clientNamed name: String) {
        registry.refused.withLock { _ = $0.insert(name) }
    }

    /// Undoes ``refuse(clientNamed:)``: new connections named `name` are relayed again.
    func admit(clientNamed name: String) {
        registry.refused.withLock { _ = $0.remove(name) }
    }

    /// Closes the connections named `name`, on both sides.
    func cut(clientNamed name: String) {
        for connection in named(name) {
            connection.client.close(promise: nil)
            connection.redis.close(promise: nil)
        }
    }

    /// How many connections named `name` the proxy has seen (each reconnect is one more).
    func count(clientNamed name: String) -> Int { named(name).count }

    /// How many `PING`s the connections named `name` have sent toward Redis (held or not).
    func pings(fromClientNamed name: String) -> Int {
        named(name).reduce(0) { $0 + $1.pings.withLock { $0 } }
    }

    func stop() async {
        try? await server.close()
        for connection in registry.connections.withLock({ $0 }) {
            connection.client.close(promise: nil)
            connection.redis.close(promise: nil)
        }
    }

    private func named(_ name: String) -> [ProxiedConnection] {
        registry.connections.withLock { $0 }.filter { $0.name.withLock { $0 } == name }
    }
}

/// Every connection the proxy has relayed.
private final class Registry: Sendable {
    let connections = Mutex<[ProxiedConnection]>([])
    let refused = Mutex<Set<String>>([])
    let stalled = Mutex<Set<String>>([])
}

/// One client connection and its connection to Redis.
private final class ProxiedConnection: Sendable {
    let client: any Channel
    let redis: any Channel
    private let registry: Registry
    let name = Mutex<String?>(nil)
    /// What Redis sent while held back; nil: not held.
    let held = Mutex<[ByteBuffer]?>(nil)
    /// What the client sent while stalled; nil: not stalled.
    let stalled = Mutex<[ByteBuffer]?>(nil)
    /// `PING` commands the client sent (RESP arrays of the one word).
    let pings = Mutex(0)

    init(client: any Channel, redis: any Channel, registry: Registry) {
        self.client = client
        self.redis = redis
        self.registry = registry
    }

    /// Learns the client's name from its handshake (`CLIENT SETNAME` or `HELLO ... SETNAME`).
    func sniff(_ bytes: ByteBuffer) {
        guard name.withLock({ $0 == nil }) else { return }
        let text = String(buffer: bytes)
        guard let start = text.range(of: "chorus:") else { return }
        let rest = text[start.lowerBound...]
        let end = rest.firstIndex(where: { $0.isNewline || $0 == " " }) ?? rest.endIndex
        let found = String(rest[..<end])
        name.withLock { $0 = found }
        if registry.refused.withLock({ $0.contains(found) }) {
            client.close(promise: nil)
            redis.close(promise: nil)
        }
        if registry.stalled.withLock({ $0.contains(found) }) { stalled.withLock { $0 = [] } }
    }
}

/// Copies what one side reads to the other; closing one side closes the other.
private final class Relay: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    private let peer: any Channel
    private let connection: ProxiedConnection
    private let towardRedis: Bool

    init(to peer: any Channel, _ connection: ProxiedConnection, towardRedis: Bool) {
        self.peer = peer
        self.connection = connection
        self.towardRedis = towardRedis
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let bytes = unwrapInboundIn(data)
        if towardRedis {
            connection.sniff(bytes)
            let found = String(buffer: bytes).components(separatedBy: "*1\r\n$4\r\nPING\r\n").count - 1
            if found > 0 { connection.pings.withLock { $0 += found } }
            if connection.stalled.withLock({ held in held?.append(bytes) != nil }) { return }
        } else if connection.held.withLock({ held in held?.append(bytes) != nil }) {
            return
        }
        peer.writeAndFlush(bytes, promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        peer.close(promise: nil)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}
