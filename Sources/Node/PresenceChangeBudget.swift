import NIOCore

/// How fast one connection may change presence (join a topic, or change its member data):
/// ``perSecond`` a second, in bursts of ``burst``. Each change costs a Redis script on the
/// node's serial presence queue and an event to every watcher in the cluster; at the plain
/// message rate, 100 connections of one address re-joining with 4 KB of data kept that queue
/// full (7-8k changes a second), and another user's join on the node waited up to 444 ms.
/// Leaving, and watching presence, are not counted. A pure value inside the session's
/// ``SessionPresence``, eight bytes: the time is kept as wrapping milliseconds.
struct PresenceChangeBudget {
    static let perSecond = 10
    static let burst = 20
    private static let millisecondsPerChange = 1_000 / perSecond

    /// When the budget was last refilled: milliseconds of the uptime clock, wrapping (a gap of
    /// 49 days reads as a shorter one, which only refills less).
    private var refilledAt: UInt32 = 0
    private var changes = UInt8(burst)

    /// Takes one change at `now`: nil when one was left, else the milliseconds until one is.
    mutating func take(now: NIODeadline) -> Int? {
        let milliseconds = UInt32(truncatingIfNeeded: now.uptimeNanoseconds / 1_000_000)
        let elapsed = Int(milliseconds &- refilledAt)
        let refill = elapsed / Self.millisecondsPerChange
        if Int(changes) + refill >= Self.burst {
            changes = UInt8(Self.burst)
            refilledAt = milliseconds
        } else if refill > 0 {
            changes += UInt8(refill)
            refilledAt &+= UInt32(refill * Self.millisecondsPerChange)
        }
        guard changes > 0 else { return Self.millisecondsPerChange - elapsed % Self.millisecondsPerChange }
        changes -= 1
        return nil
    }
}
