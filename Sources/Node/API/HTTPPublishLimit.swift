/// What one user may publish over HTTP (`POST /api/publish`; `POST`, `PATCH` and `DELETE
/// /api/messages`): what one WebSocket connection may send, in messages
/// (`WEBSOCKET_MAX_MESSAGES_PER_SECOND`) and in bytes of request bodies
/// (`WEBSOCKET_MAX_BYTES_PER_SECOND`, with a burst of one `WEBSOCKET_MAX_MESSAGE_SIZE`). Past
/// either, 429 with `Retry-After: 1`. The application's `API_KEY` is not limited.
///
/// The bytes matter most for stored messages: at the message rate alone, one user's posts of
/// 40 KB of content and 16 KiB of metadata grew the database by about 5 MB a second.
///
/// Per node (each node counts its own requests). Thread-safe, as ``KeyedThrottle``.
final class HTTPPublishLimit: Sendable {
    let messagesPerSecond: Int
    let bytesPerSecond: Int
    private let messages: KeyedThrottle
    private let bytes: KeyedThrottle

    init(messagesPerSecond: Int, bytesPerSecond: Int, maxMessageSize: Int) {
        self.messagesPerSecond = messagesPerSecond
        self.bytesPerSecond = bytesPerSecond
        messages = KeyedThrottle(perSecond: Double(messagesPerSecond), burst: messagesPerSecond)
        bytes = KeyedThrottle(perSecond: Double(bytesPerSecond), burst: maxMessageSize)
    }

    /// Counts one publish of `userId`, before its body is read.
    func admit(_ userId: String) throws(APIError) {
        guard messages.attempt(userId) else {
            var error = APIError(
                429, "more than \(messagesPerSecond) publishes per second (WEBSOCKET_MAX_MESSAGES_PER_SECOND): slow down")
            error.retryAfter = 1
            throw error
        }
    }

    /// Charges a publish's body of `size` bytes to `userId`.
    func charge(_ userId: String, bytes size: Int) throws(APIError) {
        guard bytes.attempt(userId, cost: Double(size)) else {
            var error = APIError(
                429, "more than \(bytesPerSecond) bytes of publishes per second (WEBSOCKET_MAX_BYTES_PER_SECOND): slow down")
            error.retryAfter = 1
            throw error
        }
    }
}
