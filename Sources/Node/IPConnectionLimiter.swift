import Synchronization

/// Counts open WebSocket connections per client address and refuses the one past the limit
/// (`WEBSOCKET_MAX_CONNECTIONS_PER_IP`).
///
/// Admission is decided synchronously on the accepting event loop during the upgrade, and
/// connections from one address land on every loop, so the table is one mutex-protected
/// dictionary rather than a per-loop registry; it is touched once per connect and disconnect.
public final class IPConnectionLimiter: Sendable {
    private let limit: Int
    private let counts = Mutex<[String: Int]>([:])

    public init(limit: Int) {
        self.limit = limit
    }

    /// Takes a slot for `address`; false when it already holds `limit` connections.
    public func acquire(_ address: String) -> Bool {
        counts.withLock { counts in
            let current = counts[address, default: 0]
            guard current < limit else { return false }
            counts[address] = current + 1
            return true
        }
    }

    public func release(_ address: String) {
        counts.withLock { counts in
            guard let current = counts[address] else { return }
            counts[address] = current > 1 ? current - 1 : nil
        }
    }

    /// The addresses with the most connections, most first.
    public func top(_ n: Int) -> [(address: String, connections: Int)] {
        counts.withLock { counts in
            counts.sorted { $0.value > $1.value || ($0.value == $1.value && $0.key < $1.key) }
                .prefix(n).map { (address: $0.key, connections: $0.value) }
        }
    }
}
