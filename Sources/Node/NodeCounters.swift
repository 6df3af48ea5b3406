import Synchronization

/// Running totals of one node, shared by every event loop (relaxed atomics: they are statistics).
public final class NodeCounters: Sendable {
    /// Messages accepted for publishing (WebSocket `message` and `POST /api/publish`).
    let messagesIn = Atomic<Int>(0)
    /// Messages written to a client (one per receiving connection).
    let messagesOut = Atomic<Int>(0)
    /// WebSocket connections ever accepted.
    let connectionsAccepted = Atomic<Int>(0)
    /// Upgrades refused by the per-IP limit.
    let connectionsRefused = Atomic<Int>(0)
    /// Upgrades refused because the node held its connection limit (503).
    let connectionsRefusedNodeFull = Atomic<Int>(0)
    /// Connections closed as slow consumers (4008).
    let slowConsumers = Atomic<Int>(0)
    /// Messages an event loop dropped because its delivery backlog was full (``DeliveryInbox``),
    /// counted once per loop that dropped it.
    let backlogDropped = Atomic<Int>(0)
    /// Connections closed for not answering pings (4000).
    let pingTimeouts = Atomic<Int>(0)
    /// Connections closed for flooding past `WEBSOCKET_MAX_MESSAGES_PER_SECOND` (1008).
    let floods = Atomic<Int>(0)
    /// Times a connection's token expired (`auth_expired`): its delivery paused for
    /// `JWT_RENEWAL_GRACE` until a fresh `auth`. A burst of these is a token-issuing problem.
    let tokensExpired = Atomic<Int>(0)
    /// Connections closed because no fresh `auth` came within `JWT_RENEWAL_GRACE` (4001).
    let closedTokenExpired = Atomic<Int>(0)
    /// Times a connection was not read for a while, past `WEBSOCKET_MAX_BYTES_PER_SECOND`.
    let readsPaused = Atomic<Int>(0)
    /// Open connections that agreed to permessage-deflate; while there is one, the hub
    /// compresses delivered messages (once each) beside encoding them.
    let compressingConnections = Atomic<Int>(0)
    /// Delivered messages the hub compressed: one per message, whatever its number of
    /// receivers (the encode-once path), so at most ``messagesIn`` plus what other nodes published.
    let messagesCompressed = Atomic<Int>(0)
    /// Client messages that came compressed and were inflated.
    let messagesInflated = Atomic<Int>(0)
    /// Drains a busy event loop queued `WEBSOCKET_WRITE_DELAY` late (``DrainPacer``).
    let pacedDrains = Atomic<Int>(0)
    /// Times ``HeapTrimmer`` gave freed memory back to the kernel, and the resident bytes it gave.
    let heapTrims = Atomic<Int>(0)
    let heapTrimmedBytes = Atomic<Int>(0)
    /// `gap` notices written after a Redis server returned from fallback (``ConnectionHub/reportGaps(where:)``).
    let gapNotices = Atomic<Int>(0)

    public init() {}
}
