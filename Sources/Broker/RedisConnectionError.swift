/// Why a connection to one Redis server failed or was dropped; the description becomes the
/// backend's `lastError` in `/stats` and the warning logged on fallback.
public struct RedisConnectionError: Error, CustomStringConvertible {
    /// For example `connect to 127.0.0.1:6379: Connection refused` or `read: Server closed the connection`.
    public var description: String
    /// Redis did not answer within `PUBSUB_REDIS_TIMEOUT` (rather than refusing or closing).
    public var isTimeout: Bool
    /// Redis answered with an error reply (the connection itself is fine).
    public var isReplyError: Bool

    init(_ description: String, isTimeout: Bool = false, isReplyError: Bool = false) {
        self.description = description
        self.isTimeout = isTimeout
        self.isReplyError = isReplyError
    }
}
