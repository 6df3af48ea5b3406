import Foundation
import NIOSSL

/// The state behind a ``ChorusClient``: the connection, its run loop, subscriptions, awaited
/// replies and the publish queue. Everything here is isolated to this actor; the run loop
/// (``run()``) is one task the engine owns, cancelled by ``shutdown()``. Sends to the node are
/// queued synchronously on the connection, so the order of calls is the order on the wire.
///
/// This file holds the engine's stored state; the work is in extensions, one file per concern:
/// `+State` (the per-topic, per-reply and per-publish types), `+Watching`, `+Lifecycle`,
/// `+RunLoop`, `+Incoming` (what the node sends), `+Renewal` (the token), `+Requests`,
/// `+Subscriptions`, `+Publishing` and `+Typing`.
actor ClientEngine {
    typealias TokenProvider = @Sendable () async throws -> String

    let url: ServerURL
    /// For `wss` URLs: made once from ``ChorusClient/Configuration/tls``.
    let tlsContext: NIOSSLContext?
    let configuration: ChorusClient.Configuration
    var token: String?
    /// Counts ``setToken(_:)`` calls: a provider's answer asked for before the latest one is
    /// older than the application's token, and dropped.
    var tokenGeneration = 0
    /// The ``tokenGeneration`` of the token the current connection presented.
    var presentedTokenGeneration = 0
    let tokenProvider: TokenProvider?

    var policy: ReconnectPolicy
    var state: ConnectionState = .disconnected
    var stateWatchers: [Int: AsyncStream<ConnectionState>.Continuation] = [:]
    var eventWatchers: [Int: AsyncStream<ClientEvent>.Continuation] = [:]
    /// Watchers of messages addressed to the user, each bounded like a subscription.
    var userMessageWatchers: [Int: AsyncStream<ChorusMessage>.Continuation] = [:]
    /// Callers parked until something happens (see ``Wait``).
    var waiters: [Int: (wait: Wait, continuation: CheckedContinuation<Void, any Error>)] = [:]
    var runner: Task<Void, Never>?
    /// Bumped by every start and stop, so that a stale run loop recognizes itself.
    var generation = 0

    var connection: WebSocketConnection?
    /// Authenticated on the current connection.
    var authenticated = false
    /// The node said the token expired and no new one has been accepted yet: requests wait
    /// (the node would refuse them with 401) until it is.
    var tokenExpired = false
    /// Asks the token provider ahead of the token's expiry (``scheduleRenewal(_:on:)``).
    var renewal: Task<Void, Never>?
    /// When the current connection's token expires, from the node's `expiresIn`.
    var tokenExpiresAt: ContinuousClock.Instant?
    /// The largest frame the current connection takes (UTF-8 bytes), from its `auth_success`.
    var maxMessageSize: Int?
    /// The current connection's node ends a membership on `presence: false` and keeps the
    /// subscription (`presenceLeave` in its `auth_success`).
    var presenceLeave = false
    /// What a node that does not announce `maxMessageSize` takes: its default.
    static let defaultMaxMessageSize = 1_048_576

    /// Requests may go out: authenticated with a token that has not expired.
    var canSend: Bool { authenticated && !tokenExpired }
    var userId: String?
    var connectedBefore = false

    var nextId = 0
    var awaited: [Int: Awaited] = [:]
    /// When the next request sent again after a rate refusal may go (``rateRetryDelay(_:attempt:atLeast:)``).
    var rateNext = ContinuousClock.now
    /// After a publish refused past the node's message rate: the wait before the queue goes out
    /// again (``pausePublishes(after:wait:on:)``), and the refusals in a row, each doubling it.
    var publishPause: Task<Void, Never>?
    /// The wait between reconnect attempts under way (``waitBackoff(_:)``), which ``connect()``
    /// ends early.
    var backoffSleep: Task<Void, Never>?
    var publishRefusals = 0
    /// Publishes sent per second while the queue drains after a refusal: two thirds of the
    /// node's limit (its `details.limit`).
    var publishBatch: Int?
    /// The liveness check under way (``checkAlive(_:)``), with the connection it pings.
    var liveness: (connection: WebSocketConnection, check: Task<Bool, Never>)?
    var topics: [String: TopicState] = [:]
    /// Positions of topics no longer subscribed, for ``position(of:)``.
    var leftPositions = LeftPositions()
    var publishes: [Int: QueuedPublish] = [:]
    var typing: [String: Typing] = [:]

    init(url: ServerURL, token: String?, tokenProvider: TokenProvider?, configuration: ChorusClient.Configuration) throws {
        self.url = url
        tlsContext = url.tls ? try NIOSSLContext(configuration: configuration.tls) : nil
        self.token = token
        self.tokenProvider = tokenProvider
        self.configuration = configuration
        self.policy = ReconnectPolicy(
            minimumDelay: configuration.minimumReconnectDelay, maximumDelay: configuration.maximumReconnectDelay,
            factor: configuration.reconnectFactor, stableAfter: configuration.stableConnectionAfter)
    }

    func newId() -> Int {
        nextId += 1
        return nextId
    }
}
