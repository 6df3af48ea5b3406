import Foundation

/// What an adapter reports about itself in `/stats`.
public struct AdapterStatus: Sendable, Equatable, Codable {
    /// Where a shared-backend adapter stands; the memory adapter is always `.local`.
    public enum State: String, Sendable, Codable {
        /// In-process only (memory adapter).
        case local
        /// First connection attempt under way.
        case connecting
        /// Publishing and receiving through the backend.
        case connected
        /// Backend unreachable: serving local clients only, retrying with backoff.
        case fallback
    }

    /// One backend server (for Redis: one URL of `PUBSUB_REDIS_URL`).
    public struct Backend: Sendable, Equatable, Codable {
        public var address: String
        public var state: State
        public var since: Date
        public var transitions: Int
        /// The last connection or command error, kept after the link recovers.
        public var lastError: String?
        /// When ``lastError`` happened: older than ``since`` on a connected backend means the
        /// link has recovered from it.
        public var lastErrorAt: Date?

        public init(
            address: String, state: State, since: Date, transitions: Int, lastError: String? = nil, lastErrorAt: Date? = nil
        ) {
            self.address = address
            self.state = state
            self.since = since
            self.transitions = transitions
            self.lastError = lastError
            self.lastErrorAt = lastErrorAt
        }
    }

    /// `memory` or `redis`.
    public var adapter: String
    /// The worst state among the backends (`connected` only when all are).
    public var state: State
    public var since: Date
    /// State changes since start, over all backends.
    public var transitions: Int
    /// Messages published while in fallback (delivered to local subscribers only).
    public var publishedInFallback: Int
    /// Messages dropped because a bounded queue was full.
    public var dropped: Int
    /// Messages Redis refused with an error reply (out of memory, `READONLY`, `NOPERM`): those
    /// with history were refused to their publishers (503 / `error`); those without had been
    /// acknowledged when queued. Optional only so that stats documents of older nodes still
    /// decode in the cluster view.
    public var refused: Int?
    /// Payloads received from the backend that were not valid envelopes (skipped).
    public var malformed: Int
    /// State changes over all backends by the state entered (`connected`, `fallback`); a shared
    /// backend's adapter only.
    public var transitionsTo: [String: Int]?
    public var backends: [Backend]

    public init(
        adapter: String, state: State, since: Date, transitions: Int = 0,
        publishedInFallback: Int = 0, dropped: Int = 0, refused: Int? = nil, malformed: Int = 0,
        transitionsTo: [String: Int]? = nil, backends: [Backend] = []
    ) {
        self.adapter = adapter
        self.state = state
        self.since = since
        self.transitions = transitions
        self.publishedInFallback = publishedInFallback
        self.dropped = dropped
        self.refused = refused
        self.malformed = malformed
        self.transitionsTo = transitionsTo
        self.backends = backends
    }
}
