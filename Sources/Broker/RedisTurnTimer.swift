import NIOCore

/// The one timer of a Redis link's subscriber or publisher: it fires at the earliest time
/// asked for since it last fired. Owned by the link's event loop, like the state that holds it.
struct RedisTurnTimer {
    private var task: Scheduled<Void>?
    private var at: ContinuousClock.Instant?

    /// Runs `turn` on `loop` at `wakeUp`, unless the timer fires earlier already (that turn
    /// asks again). `turn` must call ``fired()`` first.
    mutating func schedule(at wakeUp: ContinuousClock.Instant, on loop: any EventLoop, _ turn: @escaping @Sendable () -> Void) {
        if let at, at <= wakeUp { return }
        task?.cancel()
        at = wakeUp
        task = loop.scheduleTask(in: TimeAmount(wakeUp - ContinuousClock.now), turn)
    }

    mutating func fired() {
        task = nil
        at = nil
    }

    mutating func cancel() {
        task?.cancel()
        fired()
    }
}
