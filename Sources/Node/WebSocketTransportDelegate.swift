import NIOCore

/// What a ``WebSocketTransport`` hands to the protocol above it (``WebSocketSession``): whole
/// messages, already checked against RFC 6455 and the per-connection limits.
///
/// Every call comes on the connection's event loop.
protocol WebSocketTransportDelegate: AnyObject {
    /// The transport is in its channel's pipeline: the connection is open.
    func transportDidOpen(_ transport: WebSocketTransport)

    /// A whole text message (fragments joined), valid UTF-8, within the message rate.
    func transport(_ transport: WebSocketTransport, didReceiveText message: ByteBuffer)

    /// A whole binary message, within the message rate.
    func transport(_ transport: WebSocketTransport, didReceiveBinary message: ByteBuffer)

    /// A text message past `WEBSOCKET_MAX_MESSAGES_PER_SECOND`, dropped unhandled; returns true
    /// when the delegate answered it (a request with an `id`).
    func transport(_ transport: WebSocketTransport, answeredDropped text: ByteBuffer) -> Bool

    /// Messages past `WEBSOCKET_MAX_MESSAGES_PER_SECOND` that were not answered are being
    /// dropped; called at most once a second, so that a reply saying so cannot become a flood.
    func transportIsDroppingMessages(_ transport: WebSocketTransport)

    /// The transport starts closing the connection with `code`, sent in a close frame (or
    /// echoed from the client's): deliveries have stopped. Called once.
    func transport(_ transport: WebSocketTransport, willCloseWith code: UInt16, reason: String)

    /// The channel is gone; nothing more is called after this.
    func transportDidClose(_ transport: WebSocketTransport)
}
