import Broker
import NIOCore
import Synchronization

/// Gathers other nodes' gap announcements (``PeerGap``) for a moment and reports them as one.
///
/// One node's announcements of an outage arrive over many read bursts (10,000 channels are
/// about 2.5 MB), and several nodes announce at about the same time after a Redis restart. Each
/// report is a pass over every session of the node, and each pass writes a subscriber one more
/// notice (one more reload); so the first announcement opens a ``window`` and everything that
/// arrives within it is reported once, when it closes. Thread-safe.
final class PeerGapReporter: Sendable {
    static let window = TimeAmount.milliseconds(250)

    private let loop: any EventLoop
    private let report: @Sendable (PeerGap) -> Void
    /// What arrived since the window opened; nil while no window is open.
    private let pending = Mutex<PeerGap?>(nil)

    /// `report` runs on `loop`, once per window.
    init(loop: any EventLoop, report: @escaping @Sendable (PeerGap) -> Void) {
        self.loop = loop
        self.report = report
    }

    /// Adds `gap` to the open window, or opens one.
    func add(_ gap: PeerGap) {
        let opens = pending.withLock { pending -> Bool in
            guard pending == nil else {
                pending!.formUnion(gap)
                return false
            }
            pending = gap
            return true
        }
        guard opens else { return }
        loop.scheduleTask(in: Self.window) { [self] in
            if let gathered = pending.withLock({ $0.take() }) { report(gathered) }
        }
    }
}
