import Logging

/// A dependency (the store, Redis) that failed a request: the client is told which one, and to
/// try again, never why. The reason names addresses, database names and driver messages,
/// which are the operator's business, so it goes to the node's log instead: at most once per
/// 10 s, so that an outage under load is one line, not one per request.
struct BackendOutage: Sendable {
    let logger: Logger
    private let warnings = WarningThrottle()

    init(logger: Logger) {
        self.logger = logger
    }

    /// The 503 for a request that `what` (`store`, `history`, `presence store`) failed, after
    /// logging `reason`.
    func error(_ what: String, reason: Any) -> APIError {
        if warnings.allows() { logger.warning("\(what) unavailable", metadata: ["reason": "\(reason)"]) }
        return APIError(503, Self.message(what))
    }

    /// What the client reads: which dependency, and what to do.
    static func message(_ what: String) -> String { "\(what) unavailable: try again shortly" }
}
