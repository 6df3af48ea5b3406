import NIOCore

/// Decides whether a loop drains its inbox at once or a little later (`WEBSOCKET_WRITE_DELAY`).
///
/// A drain writes each subscriber what waits for it with one system call, so messages that
/// arrive close together and are drained together cost one write per socket instead of one
/// each. While a loop is mostly idle every message is drained at once: holding it would add
/// latency and save nothing worth having. Once writing deliveries takes a good share of the
/// loop's time (``busyShare`` of the last ``window``), a message that finds the inbox empty
/// waits `delay` for others to join it, which bounds what the pacing adds to any message.
/// Measured at 1,000 subscribers (docs/benchmarks.md, run AF): p99 halved at 500 and 1,000
/// msg/s, with nothing added at 100 msg/s, where the loops are under the share.
///
/// A value type owned by one ``ConnectionRegistry`` and used on its loop only.
struct DrainPacer {
    /// How long the drain time is summed before the loop's share is judged again.
    static let window = TimeAmount.milliseconds(100)
    /// The share of the window spent draining from which the loop counts as busy: a quarter.
    /// A busy loop stays busy until the share falls under half of that, so the pacing, which
    /// makes drains cheaper, does not turn itself off and on again every window.
    static let busyShare: Int64 = 4

    /// The wait of a drain while busy; zero turns the pacing off.
    let delay: TimeAmount
    private var windowStart: NIODeadline
    private var drained: TimeAmount = .zero
    /// Whether the next drain waits ``delay``, as judged at the end of the last window.
    private(set) var isBusy = false

    init(delay: TimeAmount, now: NIODeadline) {
        self.delay = delay
        self.windowStart = now
    }

    /// The delay before a drain that a message finding the inbox empty queues; nil: at once.
    var nextDrainDelay: TimeAmount? { isBusy && delay > .zero ? delay : nil }

    /// Counts one drain that ran from `start` to `end`. Judges the window once it has passed:
    /// busy when drains took at least ``busyShare`` of it (half that to stay busy). A window
    /// that ended long ago (the loop had nothing to do) counts its idle time too, so the first
    /// drain after a lull (itself still delayed: it was queued before this judgement) ends the
    /// pacing.
    mutating func drained(from start: NIODeadline, to end: NIODeadline) {
        drained = drained + (end - start)
        let elapsed = end - windowStart
        guard elapsed >= Self.window else { return }
        let share = isBusy ? Self.busyShare * 2 : Self.busyShare
        isBusy = drained.nanoseconds * share >= elapsed.nanoseconds
        windowStart = end
        drained = .zero
    }
}
