/// The close codes a Chorus node sends. Codes 4000-4999 are Chorus's own (RFC 6455 §7.4.2).
public enum CloseCode: UInt16, Sendable {
    /// The client closed, or the exchange ended normally.
    case normal = 1000
    /// The node is shutting down: reconnect (through the load balancer) to another node.
    case goingAway = 1001
    /// The client broke the WebSocket protocol (for example an unmasked frame).
    case protocolError = 1002
    /// A text message, or a close frame's reason, was not valid UTF-8.
    case invalidPayload = 1007
    /// The client kept sending past `WEBSOCKET_MAX_MESSAGES_PER_SECOND` (a flood): see
    /// ``MessageRateLimiter``.
    case policyViolation = 1008
    /// A message was larger than `WEBSOCKET_MAX_MESSAGE_SIZE`.
    case messageTooBig = 1009
    /// The node failed unexpectedly while serving this connection.
    case internalError = 1011
    /// Nothing arrived from the client within `WEBSOCKET_PING_TIMEOUT` (it did not answer pings).
    case pingTimeout = 4000
    /// The token expired (`auth_expired`) and no fresh `auth` came within `JWT_RENEWAL_GRACE`.
    case tokenExpired = 4001
    /// The client did not read fast enough: more than `WEBSOCKET_MAX_PENDING_BYTES` were waiting
    /// when the node had something more to send it (a delivery, a reply, a pong, a ping).
    case slowConsumer = 4008
}
