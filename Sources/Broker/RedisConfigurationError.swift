/// Why the Redis part of the configuration cannot be used.
///
/// Each case carries the offending value; ``description`` is one line naming the environment
/// variable, which is what the node prints before it refuses to start.
public enum RedisConfigurationError: Error, Equatable, CustomStringConvertible {
    /// One entry of `PUBSUB_REDIS_URL` is not `redis://[user:password@]host:port[/db]`.
    case malformedURL(String, reason: String)
    /// `PUBSUB_REDIS_URL` is empty (or only commas and spaces).
    case noURL
    /// Two entries of `PUBSUB_REDIS_URL` name the same server. Redis pub/sub ignores the
    /// database number, so the same `host:port` twice would deliver pattern messages twice.
    case duplicateServer(String)

    public var description: String {
        switch self {
        case .malformedURL(let value, let reason):
            "PUBSUB_REDIS_URL: expected redis://[user:password@]host:port[/db], got '\(Self.printable(value))' (\(reason))"
        case .noURL:
            "PUBSUB_REDIS_URL: expected redis://[user:password@]host:port[/db], got nothing"
        case .duplicateServer(let server):
            "PUBSUB_REDIS_URL: \(server) is listed twice; list each Redis server once (pub/sub ignores the database number)"
        }
    }

    /// The value with its password masked, so that an error line never leaks it to the log.
    private static func printable(_ value: String) -> String {
        guard let schemeEnd = value.range(of: "://"),
            let at = value[schemeEnd.upperBound...].lastIndex(of: "@"),
            let colon = value[schemeEnd.upperBound..<at].firstIndex(of: ":")
        else { return value }
        return value[..<value.index(after: colon)] + "***" + value[at...]
    }
}
