import Synchronization

/// ``NodeDirectory`` in Redis: one key `<prefix>@node:<id>` per node, written with `SET ... PX`.
///
/// The commands go through a ``RedisCommandQueue`` of its own, so callers never block and the
/// directory follows Redis through outages. With several Redis servers the directory lives on
/// the first one listed; with Sentinel, on the first master name's master (the queue looks it
/// up at every reconnect).
public final class RedisNodeDirectory: NodeDirectory {
    private let keyPrefix: String
    private let commands: RedisCommandQueue
    /// Redis's answer to the last announcement when it was not stored (a full `noeviction`
    /// Redis refuses the `SET`, and every node's entry expires meanwhile).
    private let problem = Mutex<String?>(nil)

    public var announcementProblem: String? { problem.withLock { $0 } }

    public init(url: RedisURL, prefix: String, timeout: Duration = .seconds(1)) {
        self.keyPrefix = prefix + "@node:"
        self.commands = RedisCommandQueue(url: url, timeout: timeout, clientName: "directory")
    }

    /// The directory on the master of the first name of `sentinel`.
    public init(sentinel: RedisSentinelSettings, prefix: String, timeout: Duration = .seconds(1)) {
        self.keyPrefix = prefix + "@node:"
        self.commands = RedisCommandQueue(
            sentinel: RedisSentinelDiscovery(sentinels: sentinel.sentinels, master: sentinel.masters[0], timeout: timeout),
            clientName: "directory")
    }

    public func announce(nodeId: String, document: [UInt8], ttl: Duration) {
        let milliseconds = max(1, ttl.components.seconds * 1000 + ttl.components.attoseconds / 1_000_000_000_000_000)
        let arguments = [Array("SET".utf8), Array((keyPrefix + nodeId).utf8), document, Array("PX".utf8), Array(String(milliseconds).utf8)]
        commands.send(arguments) { [self] result in
            self.problem.withLock { problem in
                switch result {
                case .success: problem = nil
                case .failure(let error) where error.isReplyError: problem = "Redis refused this node's announcement: \(error)"
                case .failure(let error): problem = "this node's announcement failed: \(error)"
                }
            }
        }
    }

    public func withdraw(nodeId: String) async {
        _ = try? await commands.command(["DEL", keyPrefix + nodeId])
    }

    public func members() async throws -> [[UInt8]] {
        var keys: [String] = []
        var cursor = "0"
        repeat {
            guard case .array(let parts) = try await commands.command(["SCAN", cursor, "MATCH", keyPrefix + "*", "COUNT", "1000"]),
                parts.count == 2, let next = parts[0].string, case .array(let found) = parts[1]
            else { throw RedisConnectionError("unexpected SCAN reply") }
            keys += found.compactMap(\.string)
            cursor = next
        } while cursor != "0"
        guard !keys.isEmpty else { return [] }
        guard case .array(let values) = try await commands.command(["MGET"] + keys) else {
            throw RedisConnectionError("unexpected MGET reply")
        }
        return values.compactMap { if case .bulk(let bytes) = $0 { bytes } else { nil } }
    }
}
