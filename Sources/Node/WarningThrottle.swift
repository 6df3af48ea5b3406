import NIOCore
import Synchronization

/// Lets a repeated warning through at most once per interval, so that a condition hit by every
/// connection of a flood (a cap reached, `accept` failing) is logged as one line, not thousands.
/// Thread-safe.
final class WarningThrottle: Sendable {
    let interval: TimeAmount
    private let last = Mutex<NIODeadline?>(nil)

    init(interval: TimeAmount = .seconds(10)) {
        self.interval = interval
    }

    /// True when no warning was let through within ``interval`` before `now`.
    func allows(now: NIODeadline = .now()) -> Bool {
        last.withLock { last in
            if let previous = last, now - previous < interval { return false }
            last = now
            return true
        }
    }
}
