import NIOSSL

extension ChorusClient {
    /// How a ``ChorusClient`` reconnects, waits and buffers. The defaults are those of the
    /// JavaScript SDK (`clients/js`).
    public struct Configuration: Sendable {
        /// False: never reconnect; the first connection's end is final (``ConnectionState/disconnected``).
        public var reconnects = true
        /// Backoff: attempt `n` (from 0) waits a random fraction of
        /// `min(maximumReconnectDelay, minimumReconnectDelay * reconnectFactor^n)` (full jitter).
        public var minimumReconnectDelay: Duration = .milliseconds(500)
        public var maximumReconnectDelay: Duration = .seconds(20)
        public var reconnectFactor: Double = 2
        /// A connection that stayed up this long resets the backoff.
        public var stableConnectionAfter: Duration = .seconds(10)
        /// TCP connect and WebSocket upgrade together; also the most a token provider's call
        /// may take (one that does not answer by then fails, and is asked again after the backoff).
        public var connectTimeout: Duration = .seconds(15)
        /// How long a sent request (publish with acknowledgements, `members`, `markRead`,
        /// ping) waits for its reply before it throws ``ChorusError/timeout``. A subscribe
        /// unanswered this long is sent again, up to 5 times with the reconnect backoff's delays
        /// (the node drops messages past its rate without a reply), then throws.
        public var requestTimeout: Duration = .seconds(15)
        /// Most publishes waiting at once, for a connection or for their acknowledgement; one
        /// more throws ``ChorusError/queueFull(limit:)``.
        public var offlineQueueLimit = 100
        /// The largest frame (UTF-8 bytes) to send. The limit is the node's `maxMessageSize`
        /// from `auth_success` (its WEBSOCKET_MAX_MESSAGE_SIZE), or 1 MiB from a node that names
        /// none; this replaces that default and may lower an announced limit (a proxy's). A
        /// publish, join or request over it throws ``ChorusError/messageTooLarge(size:limit:)``
        /// (code 413) unsent, and the connection goes on.
        public var maxMessageSize: Int?
        /// True: a publish returns on the node's `published` reply (or throws its `error`).
        /// False, for nodes without publish acknowledgements (before the history protocol): a
        /// `ping` follows each publish, and the publish returns, unacknowledged, on its `pong`
        /// (the node answers in order, so a refusal comes first and is thrown). Either way the
        /// publish stays queued, and is sent again with its `messageId`, until then.
        public var publishAcknowledgements = true
        /// A `ping` request goes out this often, and at once when a publish gets no reply
        /// within ``requestTimeout``. Nil: no periodic pings (the node's own keep-alive pings
        /// are still answered).
        public var pingInterval: Duration? = .seconds(25)
        /// A `ping` without an answer this long means a dead connection (half-open TCP: a NAT
        /// entry gone, a peer gone without a FIN): it is dropped, publishes not yet answered go
        /// back to the queue, and the client reconnects.
        public var pongTimeout: Duration = .seconds(10)
        /// Most messages a ``Subscription`` holds for a consumer that has not taken them yet.
        /// One more ends the subscription with ``ChorusError/bufferOverflow(limit:)`` (announced
        /// as ``ClientEvent/subscriptionEnded(topic:error:)``) after the messages already held,
        /// so a consumer that cannot keep up neither grows the app's memory without bound nor
        /// silently skips messages: subscribe again, with `since` on a topic with history.
        public var messageBufferLimit = 10_000
        /// TLS for `wss://` URLs: the system's trust roots and full certificate verification by
        /// default; set trust roots (a private CA) or a client certificate here.
        public var tls: TLSConfiguration = .makeClientConfiguration()
        /// ``ChorusClient/typing(_:)`` sends `start` at most this often per topic.
        public var typingThrottle: Duration = .seconds(2)
        /// `stop` goes out this long after the last ``ChorusClient/typing(_:)`` call.
        public var typingTimeout: Duration = .seconds(4)
        /// With a token provider: a fresh token is asked for this long before the current one
        /// expires (at most half its life ahead; the node tells the time left, by its own
        /// clock, in `auth_success`) and sent on the open connection, so delivery never pauses
        /// at the expiry. Nil: renewed only when the node says the token expired.
        public var renewBefore: Duration? = .seconds(30)
        /// The random source of the backoff's jitter, a value in 0..<1 (tests make it fixed).
        public var random: @Sendable () -> Double = { Double.random(in: 0..<1) }

        public init() {}
    }
}
