import Dispatch
import Synchronization

/// ``NodeDirectory`` in Redis: one key `<prefix>@node:<id>` per node, written with `SET ... PX`.
///
/// All Redis work happens on one serial dispatch queue, which alone owns the connection (a
/// hiredis context is not thread-safe); callers never block. The connection is opened on first
/// use and reopened after an error, so the directory follows Redis through outages. With several
/// Redis servers the directory lives on the first one listed. With Sentinel it lives on the
/// first master name's master, looked up (and checked with `ROLE`) at every reconnect: an error
/// (the master gone, or demoted and answering `READONLY`) drops the connection, so the next
/// heartbeat finds the new master.
public final class RedisNodeDirectory: NodeDirectory {
    private let url: RedisURL
    private let sentinel: RedisSentinelDiscovery?
    private let keyPrefix: String
    private let queue = DispatchQueue(label: "chorus.node-directory")
    /// Touched only on `queue`; the mutex makes that checkable rather than assumed.
    private let connection = Mutex<RedisConnection?>(nil)

    public init(url: RedisURL, prefix: String) {
        self.url = url
        self.sentinel = nil
        self.keyPrefix = prefix + "@node:"
    }

    /// The directory on the master of the first name of `sentinel`.
    public init(sentinel: RedisSentinelSettings, prefix: String, timeout: Duration = .seconds(1)) {
        self.url = sentinel.masters[0]
        self.sentinel = RedisSentinelDiscovery(sentinels: sentinel.sentinels, master: sentinel.masters[0], timeout: timeout)
        self.keyPrefix = prefix + "@node:"
    }

    public func announce(nodeId: String, document: [UInt8], ttl: Duration) {
        let key = keyPrefix + nodeId
        let milliseconds = String(max(1, ttl.components.seconds * 1000 + ttl.components.attoseconds / 1_000_000_000_000_000))
        let value = String(decoding: document, as: UTF8.self)
        queue.async {
            _ = try? self.run(["SET", key, value, "PX", milliseconds])
        }
    }

    public func withdraw(nodeId: String) async {
        let key = keyPrefix + nodeId
        await withCheckedContinuation { continuation in
            queue.async {
                _ = try? self.run(["DEL", key])
                continuation.resume()
            }
        }
    }

    public func members() async throws -> [[UInt8]] {
        try await withCheckedThrowingContinuation { continuation in
            queue.async {
                continuation.resume(with: Result { try self.readMembers() })
            }
        }
    }

    private func readMembers() throws -> [[UInt8]] {
        var keys: [String] = []
        var cursor = "0"
        repeat {
            guard case .array(let parts) = try run(["SCAN", cursor, "MATCH", keyPrefix + "*", "COUNT", "1000"]),
                parts.count == 2, let next = parts[0].string, case .array(let found) = parts[1]
            else { throw RedisConnectionError("unexpected SCAN reply") }
            keys += found.compactMap(\.string)
            cursor = next
        } while cursor != "0"
        guard !keys.isEmpty else { return [] }
        guard case .array(let values) = try run(["MGET"] + keys) else {
            throw RedisConnectionError("unexpected MGET reply")
        }
        return values.compactMap { if case .bulk(let bytes) = $0 { bytes } else { nil } }
    }

    /// One command on the queue's connection, connecting first if needed. Must run on `queue`.
    private func run(_ arguments: [String]) throws -> RedisReply {
        dispatchPrecondition(condition: .onQueue(queue))
        return try connection.withLock { connection in
            do {
                if connection == nil {
                    let target = try sentinel?.discover() ?? url
                    connection = try RedisConnection(connectingTo: target, timeout: .seconds(1), clientName: "chorus-directory")
                }
                let reply = try connection!.command(arguments)
                if case .error(let message) = reply { throw RedisConnectionError(message) }
                return reply
            } catch {
                connection = nil
                throw error
            }
        }
    }
}
