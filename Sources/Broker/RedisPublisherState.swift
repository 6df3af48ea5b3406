import NIOCore
import Synchronization

/// The publisher side of a ``RedisServerLink`` that is not shared state: its connection, the
/// batch it has written, its backoff, its one timer. Everything here except ``loop`` and
/// ``wakeQueued`` is owned by ``loop`` (the link's event loop, the subscriber's) and touched
/// only there, by the methods of `RedisServerLink+Publisher.swift`; that is why the class may
/// be `@unchecked Sendable`.
final class RedisPublisherState: @unchecked Sendable {
    /// The event loop that runs the publisher connection and its timers.
    let loop: any EventLoop
    /// A turn is queued on ``loop`` already (wake-ups from any thread coalesce into one).
    let wakeQueued = Atomic<Bool>(false)

    var session: RedisPublisherSession?
    /// When the session answered its opening commands (nil: not yet).
    var readyAt: ContinuousClock.Instant?
    /// The digest of ``RedisHistory/publishScript`` on the session's server.
    var scriptDigest: [UInt8]?
    /// The batch written and not completely answered yet.
    var batch: RedisPublishBatch?
    var backoff = RedisServerLink.reconnectBackoff()
    var nextAttempt = ContinuousClock.now
    /// The current connection answered a round trip, or was not made by an immediate retry:
    /// if it closes, one immediate retry is allowed.
    var retryable = true
    /// When Redis's refusals of publishes are logged.
    var refusalLog = RedisRefusalLog()
    /// The next turn by time (a deadline, a keepalive, a reconnect).
    var timer = RedisTurnTimer()
    /// The link stopped and the connection is closed: no more turns.
    var finished = false

    init(loop: any EventLoop) {
        self.loop = loop
    }
}
