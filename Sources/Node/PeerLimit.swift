import NIOCore
import Synchronization

/// TCP connections per client network (`HTTP_MAX_CONNECTIONS_PER_IP`), counted where they are
/// accepted, before any byte is read: one client cannot hold the node's whole
/// `HTTP_MAX_CONNECTIONS` with idle sockets and lock everyone else out.
///
/// Peers in `TRUSTED_PROXIES` are not counted: a proxy carries many clients, whose WebSockets
/// `WEBSOCKET_MAX_CONNECTIONS_PER_IP` counts by `X-Forwarded-For`. Thread-safe: admitted on a
/// listener's loop, released on each connection's own.
final class PeerLimit: Sendable {
    let perAddress: Int
    private let trusted: [IPRange]
    private let counts: ConnectionLimiter
    private let lastWarning = Mutex<NIODeadline?>(nil)

    init(perAddress: Int, trusted: [IPRange]) {
        self.perAddress = perAddress
        self.trusted = trusted
        self.counts = ConnectionLimiter(perAddress: perAddress, total: .max)
    }

    /// Whether a connection from `address` may stay; when it may, and is counted, the caller
    /// must ``release(_:)`` the address when the connection closes. A connection without a
    /// peer address (not TCP) or from a trusted proxy is admitted uncounted.
    func admit(_ address: String?) -> Bool {
        guard let address, !ClientAddress.isTrusted(address, trusted) else { return true }
        return counts.acquire(address) == .granted
    }

    /// Gives back the slot of a connection ``admit(_:)`` counted.
    func release(_ address: String) {
        guard !ClientAddress.isTrusted(address, trusted) else { return }
        counts.release(address)
    }

    /// True at most once per `interval`, so that a flood of refusals logs one line, not one each.
    func shouldWarn(now: NIODeadline = .now(), interval: TimeAmount = .seconds(10)) -> Bool {
        lastWarning.withLock { last in
            if let previous = last, now - previous < interval { return false }
            last = now
            return true
        }
    }
}
