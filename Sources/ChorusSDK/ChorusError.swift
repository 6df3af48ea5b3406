/// Everything a ``ChorusClient`` call can throw, as a value an app can switch over.
public enum ChorusError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The node refused a request with an `error` reply: `code` is the node's (400 bad request,
    /// 401 not authenticated, 403 not allowed, 429 rate or subscription limit, ...), `details`
    /// its `details` object (`details.topic` names the topic, `details.field` a bad field).
    case server(code: Int, message: String, details: JSONValue?)
    /// The token was refused (HTTP 401 at the upgrade or an `auth_error`), and no new token
    /// could be had from the token provider: the client stops until
    /// ``ChorusClient/setToken(_:)`` or ``ChorusClient/connect()``.
    case authenticationFailed(code: Int, message: String)
    /// The token provider threw; `message` is its error's description.
    case tokenUnavailable(message: String)
    /// The node answered the WebSocket upgrade with HTTP `status` (503: draining or full).
    case upgradeRefused(status: Int, body: String)
    /// The offline publish queue already holds ``ChorusClient/Configuration/offlineQueueLimit``
    /// publishes.
    case queueFull(limit: Int)
    /// A subscription's consumer fell more than `limit` messages behind
    /// (``ChorusClient/Configuration/messageBufferLimit``).
    case bufferOverflow(limit: Int)
    /// A frame of `size` bytes (UTF-8) is over the connection's `limit`: the node's
    /// `maxMessageSize`, 1 MiB from a node that names none, or
    /// ``ChorusClient/Configuration/maxMessageSize``. It was not sent (the node would close the
    /// connection with 1009) and is not sent again; the connection goes on. Also thrown by the
    /// largest unacknowledged publish of a connection the node closed with 1009 anyway.
    case messageTooLarge(size: Int, limit: Int)
    /// No reply to a request within ``ChorusClient/Configuration/requestTimeout``.
    case timeout
    /// The connection ended before the reply, for a request that is not retried (a publish
    /// is: it stays queued with its `messageId`).
    case disconnected
    /// ``ChorusClient/close()`` was called, or the client was released.
    case closed
    /// The URL is not `ws://host[:port][/path]` or `wss://host[:port][/path]`.
    case invalidURL(String)
    /// The node sent something this client cannot read.
    case protocolViolation(String)

    /// The node's error code for ``server(code:message:details:)`` and
    /// ``authenticationFailed(code:message:)``, 413 for ``messageTooLarge(size:limit:)``; nil
    /// for the client's other errors.
    public var code: Int? {
        switch self {
        case .server(let code, _, _), .authenticationFailed(let code, _): code
        case .upgradeRefused(let status, _): status
        case .messageTooLarge: 413
        default: nil
        }
    }

    public var description: String {
        switch self {
        case .server(let code, let message, _): "node error \(code): \(message)"
        case .authenticationFailed(let code, let message): "authentication failed (\(code)): \(message)"
        case .tokenUnavailable(let message): "the token provider failed: \(message)"
        case .upgradeRefused(let status, let body): "WebSocket upgrade refused with HTTP \(status): \(body)"
        case .queueFull(let limit): "offline publish queue full (\(limit) publishes waiting)"
        case .bufferOverflow(let limit): "a consumer of messages fell more than \(limit) messages behind"
        case .messageTooLarge(let size, let limit): "a frame of \(size) bytes exceeds the node's maximum message size of \(limit) bytes"
        case .timeout: "no reply from the node in time"
        case .disconnected: "the connection ended before the node replied"
        case .closed: "the client was closed"
        case .invalidURL(let url): "not a ws:// or wss:// URL: \(url)"
        case .protocolViolation(let what): "unexpected message from the node: \(what)"
        }
    }
}
