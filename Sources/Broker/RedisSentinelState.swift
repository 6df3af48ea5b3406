import NIOCore
import Synchronization

/// The loop-owned state of a ``RedisServerLink``'s Sentinel watch (RedisServerLink+Sentinel.swift):
/// touched only on ``loop`` (the link's subscriber loop), hence `@unchecked Sendable`.
final class RedisSentinelState: @unchecked Sendable {
    let loop: any EventLoop
    /// A turn is queued on ``loop`` already (wake-ups from any thread coalesce into one).
    let wakeQueued = Atomic<Bool>(false)

    /// The subscription to `+switch-master`, and the Sentinel it goes to (and is asked first).
    var session: RedisSentinelSession?
    var next = 0
    var subscribeAt = ContinuousClock.now
    var subscribeBackoff = RedisServerLink.reconnectBackoff()

    /// A look-up of the master is wanted, when it may start, and the address a `+switch-master`
    /// announced (tried first).
    var wanted = true
    var discoverAt = ContinuousClock.now
    var discoverBackoff = RedisServerLink.reconnectBackoff()
    var candidate: RedisURL?
    /// A look-up is under way (one at a time), and its connections (closed when the link stops).
    var discovering = false
    let lookups = RedisOpenExchanges()
    /// The reason of the last look-up failure logged as a warning, and when: the same reason is
    /// logged at debug level for a minute after (a look-up fails several times a second).
    var warned: (reason: String, at: ContinuousClock.Instant)?

    /// The next turn by time (a deadline, a keepalive, a resubscribe, a look-up).
    var timer = RedisTurnTimer()
    /// The link stopped: no more turns; the watch counts out of ``RedisServerLink/stop()``'s
    /// wait once its connection is closed and its look-up is over.
    var finished = false
    var closing = false
    var exited = false

    init(loop: any EventLoop) {
        self.loop = loop
    }
}
