/// Why `PUBSUB_REDIS_SENTINELS` or `PUBSUB_REDIS_MASTER_NAME` cannot be used.
public enum RedisSentinelConfigurationError: Error, Equatable, CustomStringConvertible {
    case malformed(_ variable: String, _ value: String, reason: String)

    public var variable: String {
        switch self { case .malformed(let variable, _, _): variable }
    }

    public var description: String {
        switch self {
        case .malformed(let variable, let value, let reason): "\(variable): '\(value)': \(reason)"
        }
    }
}
