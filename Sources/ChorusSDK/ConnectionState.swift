/// Where a ``ChorusClient``'s connection stands; watch it with ``ChorusClient/states()``.
public enum ConnectionState: Sendable, Equatable {
    /// Not connected and not trying: before ``ChorusClient/connect()``, after
    /// ``ChorusClient/close()``.
    case disconnected
    /// Opening the first connection.
    case connecting
    /// Connected and authenticated as `userId`; every subscription has been (re)sent.
    case connected(userId: String)
    /// The connection ended; the next attempt (`attempt`, from 1) starts after `delay`
    /// (zero after a node's 1001 drain).
    case reconnecting(attempt: Int, delay: Duration)
    /// Stopped for good: the token was refused and no new one could be had. A new token
    /// (``ChorusClient/setToken(_:)``) or ``ChorusClient/connect()`` starts again.
    case failed(ChorusError)

    public var isConnected: Bool {
        if case .connected = self { return true }
        return false
    }
}
