/// TCP connections per client network (`HTTP_MAX_CONNECTIONS_PER_IP`), counted where they are
/// accepted, before any byte is read: one client cannot hold the node's whole
/// `HTTP_MAX_CONNECTIONS` with idle sockets and lock everyone else out.
///
/// Peers in `TRUSTED_PROXIES` are not counted: a proxy carries many clients, whose WebSockets
/// `WEBSOCKET_MAX_CONNECTIONS_PER_IP` counts by `X-Forwarded-For`. Thread-safe: admitted on a
/// listener's loop, released on each connection's own.
final class PeerLimit: Sendable {
    enum Admission {
        /// Counted against its address: ``release(_:)`` the address when the connection closes.
        case counted
        /// Not counted: no peer address (not TCP), or a trusted proxy.
        case uncounted
        /// Its address holds ``perAddress`` connections already: close it.
        case refused
    }

    let perAddress: Int
    private let trusted: [IPRange]
    private let counts: ConnectionLimiter
    /// Lets through one warning per 10 s about refused connections.
    let warnings = WarningThrottle()

    init(perAddress: Int, trusted: [IPRange]) {
        self.perAddress = perAddress
        self.trusted = trusted
        self.counts = ConnectionLimiter(perAddress: perAddress, total: .max)
    }

    func admit(_ address: String?) -> Admission {
        guard let address, !ClientAddress.isTrusted(address, trusted) else { return .uncounted }
        return counts.acquire(address) == .granted ? .counted : .refused
    }

    /// Gives back the place of a connection ``admit(_:)`` counted.
    func release(_ address: String) {
        counts.release(address)
    }
}
