/// Why a connection to one Redis server failed or was dropped; the description becomes the
/// backend's `lastError` in `/stats` and the warning logged on fallback.
struct RedisConnectionError: Error, CustomStringConvertible {
    /// For example `connect to 127.0.0.1:6379: Connection refused` or `read: Server closed the connection`.
    var description: String
    /// Redis did not answer within `PUBSUB_REDIS_TIMEOUT` (rather than refusing or closing).
    var isTimeout: Bool

    init(_ description: String, isTimeout: Bool = false) {
        self.description = description
        self.isTimeout = isTimeout
    }
}
