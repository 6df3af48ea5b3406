/// The failover state of one Redis server link, as a pure value: an event goes in, the new
/// state and the actions to perform come out. No sockets, threads, clocks or locks: the
/// ``RedisServerLink`` feeds it under its mutex and performs the actions after releasing it.
///
/// **The two connections.** The *subscriber* connection carries the node's `(P)SUBSCRIBE`s and
/// brings back every message, the node's own included; the *publisher* connection sends
/// `PUBLISH`es. Each fails and reconnects on its own: a publisher reconnect does not end the
/// subscriber's session, and the reverse.
///
/// **The phase** (what `/stats` shows):
/// - `connecting`: the first attempt is under way (publishes are delivered locally).
/// - `connected`: the subscriber answered the *readiness marker* (a `PING` sent after all its
///   re-subscribes, so every subscription before it is in place) and the publisher is up;
///   publishes go through Redis.
/// - `fallback`: either side failed; publishes are delivered locally only.
///
/// **Failures.**
/// - The subscriber failing always means fallback: the node's own publishes come back to it
///   only through that connection.
/// - The publisher's connection *closed* (idle timeout, `CLIENT KILL`, a proxy) while connected:
///   the publisher reconnects at once and the batch Redis did not acknowledge is retried there;
///   the link stays `connected` and counts no transition. Only if that reconnect fails too does
///   the link fall back.
/// - The publisher's answer *late* (past `PUBSUB_REDIS_TIMEOUT`: a hung Redis) means fallback
///   at once: waiting longer would hold the node's own messages.
/// - Sentinel naming a new master (``masterMoved(_:)``) falls back at once and reconnects both.
/// On every fall back, the messages waiting for Redis (queued, and the batch in flight) are
/// delivered locally (``Action/deliverPendingLocally``).
struct RedisLinkStateMachine: Equatable, Sendable {
    /// Where one connection stands.
    enum Connection: Equatable, Sendable {
        case down
        /// Connecting, authenticating, and (subscriber) re-subscribing up to the marker.
        case connecting
        case up
    }

    /// How a connection failed.
    enum Failure: Equatable, Sendable {
        /// Redis did not answer within the timeout (hung server, partition).
        case timeout
        /// The connection was refused, closed or reset, or Redis answered with an error.
        case closed
    }

    struct Transition: Equatable, Sendable {
        let from: AdapterStatus.State
        let to: AdapterStatus.State
        let error: String?
        /// The link's transition count after this one (orders reports from different threads).
        let count: Int
    }

    enum Action: Equatable, Sendable {
        /// Log the change, count it, update the adapter's overall state.
        case report(Transition)
        /// Hand the publish queue and the batch in flight to local delivery.
        case deliverPendingLocally
        /// Connect the publisher now (no backoff): the subscriber is ready, or the publisher's
        /// connection closed under a healthy link.
        case connectPublisher
        /// Close the publisher's connection (the link is stopping).
        case closeConnections
        /// Sentinel named another master: drop the connections to the old one and connect to
        /// the new one now (no backoff).
        case followMaster
    }

    private(set) var phase: AdapterStatus.State = .connecting
    private(set) var subscriber: Connection = .down
    private(set) var publisher: Connection = .down
    /// Phase changes so far.
    private(set) var transitions = 0
    private(set) var lastError: String?
    /// Errors recorded so far: each one sets ``lastError`` (the link stamps its time when this
    /// changes, as the same error may come again).
    private(set) var errors = 0
    private(set) var stopping = false
    /// The publisher is reconnecting after its connection closed under a connected link; the
    /// publish queue waits for it instead of falling back.
    private(set) var publisherRetrying = false

    /// Publishes go through Redis (else they are delivered locally).
    var publishesThroughRedis: Bool { phase == .connected && !stopping }

    /// The publisher should (re)connect: the subscriber is ready (or a retry is due)
    /// and the publisher has no connection.
    var publisherWanted: Bool {
        !stopping && publisher == .down && (subscriber == .up || publisherRetrying)
    }

    // MARK: - Subscriber events

    /// The subscriber starts a connection attempt.
    mutating func subscriberConnecting() -> [Action] {
        guard !stopping else { return [] }
        subscriber = .connecting
        return []
    }

    /// The readiness marker came back: every subscription is in place.
    mutating func subscriberReady() -> [Action] {
        guard !stopping, subscriber == .connecting else { return [] }
        subscriber = .up
        switch publisher {
        case .up: return connectIfBothUp()
        case .down: return [.connectPublisher]
        case .connecting: return []
        }
    }

    mutating func subscriberFailed(_ error: String) -> [Action] {
        guard !stopping else { return [] }
        subscriber = .down
        record(error)
        return fallBack(error)
    }

    // MARK: - Publisher events

    /// The publisher starts a connection attempt.
    mutating func publisherConnecting() -> [Action] {
        guard !stopping else { return [] }
        publisher = .connecting
        return []
    }

    mutating func publisherConnected() -> [Action] {
        guard !stopping, publisher == .connecting else { return [] }
        publisher = .up
        publisherRetrying = false
        return connectIfBothUp()
    }

    /// - Parameter retryable: false when the connection was itself an immediate retry and failed
    ///   before answering any command, so that a server closing every connection cannot spin
    ///   the publisher: the link then falls back and reconnects with the backoff.
    mutating func publisherFailed(_ error: String, _ failure: Failure, retryable: Bool) -> [Action] {
        guard !stopping else { return [] }
        let wasUp = publisher == .up
        publisher = .down
        record(error)
        if failure == .closed, wasUp, retryable, phase == .connected, subscriber == .up {
            // One quick retry on a fresh connection; the queue and the unacknowledged batch wait.
            publisherRetrying = true
            return [.connectPublisher]
        }
        publisherRetrying = false
        return fallBack(error)
    }

    // MARK: - Sentinel

    /// Sentinel named a new master (`+switch-master`, or a re-discovery). A connection that is up
    /// is to the old master, so it counts as down at once (a marker that still comes back no
    /// longer makes the link ready, and the link cannot become connected over the old
    /// publisher), and the link falls back before either thread notices anything. A publisher
    /// still *connecting* is left to report its outcome: it may already be connecting to the new
    /// master; if not, its thread drops the connection and reports it failed. Both reconnect to
    /// the new master without waiting for the backoff.
    mutating func masterMoved(_ error: String) -> [Action] {
        guard !stopping else { return [] }
        subscriber = .down
        if publisher == .up { publisher = .down }
        publisherRetrying = false
        record(error)
        return fallBack(error) + [.followMaster]
    }

    /// No Sentinel named a master the link could reach (Sentinels down, a master named that
    /// does not answer or is a replica): the state stays, the error is kept, so that a link
    /// still connecting (or in fallback) says why.
    mutating func masterLookUpFailed(_ error: String) -> [Action] {
        guard !stopping else { return [] }
        record(error)
        return []
    }

    private mutating func record(_ error: String) {
        lastError = error
        errors += 1
    }

    // MARK: - Lifecycle

    mutating func stop() -> [Action] {
        guard !stopping else { return [] }
        stopping = true
        publisherRetrying = false
        return [.closeConnections]
    }

    // MARK: - Transitions

    private mutating func connectIfBothUp() -> [Action] {
        guard subscriber == .up, publisher == .up, phase != .connected else { return [] }
        return [.report(move(to: .connected, error: nil))]
    }

    private mutating func fallBack(_ error: String) -> [Action] {
        guard phase != .fallback else { return [.deliverPendingLocally] }
        return [.report(move(to: .fallback, error: error)), .deliverPendingLocally]
    }

    private mutating func move(to next: AdapterStatus.State, error: String?) -> Transition {
        transitions += 1
        defer { phase = next }
        return Transition(from: phase, to: next, error: error, count: transitions)
    }
}
