/// Attempts counted for the whole cluster, so that a limit on them (logins per client network
/// and user name) is not multiplied by the number of nodes a balancer spreads them over.
public protocol AttemptCounter: Sendable {
    /// Counts one attempt under each of `keys` in that key's current window of `window` (a
    /// window starts at the key's first attempt) and returns each key's count so far in its
    /// window, in the order given; nil when they could not be counted (Redis unreachable or
    /// refusing), so that the caller decides on its own counts alone.
    func count(_ keys: [String], window: Duration) async -> [Int]?
}
