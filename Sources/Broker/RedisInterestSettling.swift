/// Which interest changes of one ``RedisServerLink`` Redis has confirmed, and who waits for them
/// (``RedisServerLink/whenInterestSettled(_:)``). A pure value, kept in the link's locked state.
///
/// Every interest change the link accepts is numbered (``requested`` counts them). When the
/// subscriber sends changes to Redis it notes the number reached, and the marker `PING`
/// after them carries it: its answer means every change up to that number is in effect on the
/// subscriber connection (``confirm(through:)``). A waiter registered when `requested` is `n`
/// runs once `confirmed >= n`, at once when that already holds (the common case: nothing new).
///
/// Waiters are released in the order they came (their numbers only grow), and never lost: the
/// link releases all of them when it falls back (local delivery is live at once) or stops
/// (``releaseAll()``). So each waits at most for one marker `PING`, whose answer is due within
/// `PUBSUB_REDIS_TIMEOUT` or the link falls back.
struct RedisInterestSettling<Waiter> {
    /// Interest changes accepted so far.
    private(set) var requested: UInt64 = 0
    /// Changes Redis has confirmed (the marker `PING` sent after them was answered).
    private(set) var confirmed: UInt64 = 0
    private var waiters: [(through: UInt64, waiter: Waiter)] = []

    /// Waiters not yet released.
    var waiting: Int { waiters.count }

    /// One more interest change (a channel or glob to subscribe or unsubscribe).
    mutating func changeRequested() {
        requested += 1
    }

    /// Holds `waiter` until every change requested so far is confirmed; returns it instead
    /// (to run now) when they are already.
    mutating func wait(_ waiter: Waiter) -> Waiter? {
        guard confirmed < requested else { return waiter }
        waiters.append((requested, waiter))
        return nil
    }

    /// Redis answered the marker sent after change number `through`: the waiters that it
    /// satisfies, in order.
    mutating func confirm(through: UInt64) -> [Waiter] {
        guard through > confirmed else { return [] }
        confirmed = min(through, requested)
        let ready = waiters.prefix { $0.through <= confirmed }.count
        guard ready > 0 else { return [] }
        defer { waiters.removeFirst(ready) }
        return waiters.prefix(ready).map(\.waiter)
    }

    /// Every waiter, to run now: the link fell back or is stopping.
    mutating func releaseAll() -> [Waiter] {
        defer { waiters.removeAll() }
        return waiters.map(\.waiter)
    }
}
