/// What every WebSocket of a node shares: the per-connection limits, the counters, and the
/// node's compressor. One object per node, so that each connection's ``WebSocketTransport``
/// holds one reference instead of copies of the same settings (they cost every idle connection
/// its share of memory). Immutable, so any event loop may read it.
final class WebSocketSettings: Sendable {
    /// `WEBSOCKET_MAX_MESSAGE_SIZE`, in bytes (inflated).
    let maxMessageSize: Int
    /// `WEBSOCKET_MAX_MESSAGES_PER_SECOND`.
    let rate: MessageRateLimiter.Rate
    /// `WEBSOCKET_MAX_BYTES_PER_SECOND`, with a burst of at least one message of the largest size.
    let budget: ReadBudget.Limit
    let counters: NodeCounters
    /// The node's compressor (`WEBSOCKET_COMPRESSION=on`), used by the connections that agreed
    /// to permessage-deflate; nil when compression is off.
    let deflate: OutboundDeflate?

    init(
        maxMessageSize: Int, maxMessagesPerSecond: Int, maxBytesPerSecond: Int, counters: NodeCounters,
        deflate: OutboundDeflate? = nil
    ) {
        self.maxMessageSize = maxMessageSize
        self.rate = .init(perSecond: maxMessagesPerSecond)
        self.budget = .init(perSecond: maxBytesPerSecond, burst: maxMessageSize)
        self.counters = counters
        self.deflate = deflate
    }
}
