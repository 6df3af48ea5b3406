import NIOCore
import Synchronization

/// Counts open WebSocket connections, per client network and for the whole node, and refuses
/// the one past either limit: `WEBSOCKET_MAX_CONNECTIONS_PER_IP`, and the node's total (see
/// ``NodeContext``), which keeps WebSockets within the open-file limit.
///
/// Admission is decided synchronously on the accepting event loop during the upgrade, and
/// connections from one address land on every loop, so the table is one mutex-protected
/// dictionary rather than a per-loop registry; it is touched once per connect and disconnect.
public final class ConnectionLimiter: Sendable {
    public enum Admission: Sendable, Equatable {
        case granted
        /// The address holds ``perAddress`` connections already.
        case addressFull
        /// The node holds ``total`` connections already.
        case nodeFull
    }

    private struct State {
        var counts: [String: Int] = [:]
        var open = 0
    }

    let perAddress: Int
    let total: Int
    private let state = Mutex(State())

    public init(perAddress: Int, total: Int) {
        self.perAddress = perAddress
        self.total = total
    }

    /// Takes a slot for `address`, unless a limit is reached. Addresses count by client network
    /// (``IPAddress/clientNetwork(of:)``): the IPv6 addresses of one /64 share one limit.
    public func acquire(_ address: String) -> Admission {
        let address = IPAddress.clientNetwork(of: address)
        return state.withLock { state in
            guard state.open < total else { return .nodeFull }
            let current = state.counts[address, default: 0]
            guard current < perAddress else { return .addressFull }
            state.counts[address] = current + 1
            state.open += 1
            return .granted
        }
    }

    public func release(_ address: String) {
        let address = IPAddress.clientNetwork(of: address)
        state.withLock { state in
            guard let current = state.counts[address] else { return }
            state.counts[address] = current > 1 ? current - 1 : nil
            state.open -= 1
        }
    }

    /// Lets through one warning per 10 s about refusals at the node's limit.
    let nodeFullWarnings = WarningThrottle()

    /// The client networks (IPv4 addresses, IPv6 /64s) with the most connections, most first.
    public func top(_ n: Int) -> [(address: String, connections: Int)] {
        state.withLock { state in
            state.counts.sorted { $0.value > $1.value || ($0.value == $1.value && $0.key < $1.key) }
                .prefix(n).map { (address: $0.key, connections: $0.value) }
        }
    }
}
