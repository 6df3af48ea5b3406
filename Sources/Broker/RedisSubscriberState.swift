import NIOCore
import Synchronization

/// The subscriber side of a ``RedisServerLink`` that is not shared state: its connection, its
/// backoff, its one timer. Everything here except ``loop`` and ``wakeQueued`` is owned by
/// ``loop`` (one event loop of the node) and touched only there, by the methods of
/// `RedisServerLink+Subscriber.swift`; that is why the class may be `@unchecked Sendable`.
final class RedisSubscriberState: @unchecked Sendable {
    /// The event loop that runs the subscriber connection, its timers and its deliveries.
    let loop: any EventLoop
    /// A turn is queued on ``loop`` already (wake-ups from any thread coalesce into one).
    let wakeQueued = Atomic<Bool>(false)

    var session: RedisSubscriberSession?
    var backoff = RedisServerLink.reconnectBackoff()
    var reconnectAt = ContinuousClock.now
    /// The master generation of the last attempt: a new master is tried without the backoff.
    var triedGeneration = -1
    var warnedMalformed = false
    /// The number of the session's `PING` whose answer passes the echo barrier
    /// (``RedisServerLink/State/echoBarrier``).
    var echoBarrierPing: Int?
    /// The next turn by time (a deadline, a keepalive, a reconnect).
    var timer = RedisTurnTimer()
    /// The link stopped and the connection is closed: no more turns.
    var finished = false
    /// The newest history position seen per topic, read here or answered to the publisher
    /// (which shares this loop): checked against Redis at each connect of either.
    var positions = RedisStreamPositions()

    init(loop: any EventLoop) {
        self.loop = loop
    }
}
