import NIOCore
import Synchronization

/// The node's cap on accepted TCP connections (`HTTP_MAX_CONNECTIONS`), shared by its
/// listeners: plain HTTP, keep-alive and WebSocket connections all count, from accept to close.
///
/// At the cap a listener stops accepting (``AcceptGuard`` withholds its reads): further clients
/// wait in the kernel's listen backlog, and are accepted in turn as connections close. Nothing is
/// accepted that has no descriptor to live in, so the node never meets `EMFILE` at `accept`
/// because of its clients. Touched once per accept and once per close, from any event loop.
final class AcceptGate: Sendable {
    let limit: Int

    private struct State {
        var open = 0
        /// Listeners that stopped accepting at the cap, resumed once a connection closes.
        var waiting: [@Sendable () -> Void] = []
    }

    private let state = Mutex(State())

    init(limit: Int) {
        self.limit = limit
    }

    /// Descriptors kept, beyond those open when the node starts (event loops, logs), for what
    /// it opens later besides client connections (listeners, Redis, the database): 64, or a
    /// sixteenth of a small limit.
    static func reservedDescriptors(openFiles: Int) -> Int {
        min(64, openFiles / 16)
    }

    /// `HTTP_MAX_CONNECTIONS` if set, and never more than the open-file limit leaves after the
    /// `inUse` descriptors open at start and ``reservedDescriptors(openFiles:)``.
    static func connectionLimit(configured: Int?, openFiles: Int?, inUse: Int) -> Int {
        let byDescriptors = openFiles.map { max(1, $0 - inUse - reservedDescriptors(openFiles: $0)) } ?? Int.max
        return min(configured ?? Int.max, byDescriptors)
    }

    var open: Int { state.withLock { $0.open } }

    func opened() {
        state.withLock { $0.open += 1 }
    }

    /// Gives back a connection's place and resumes the listeners waiting for one.
    func closed() {
        let resume = state.withLock { state -> [@Sendable () -> Void] in
            state.open -= 1
            guard state.open < limit else { return [] }
            defer { state.waiting = [] }
            return state.waiting
        }
        for listener in resume { listener() }
    }

    /// False when the cap is reached; `resume` then runs once a connection has closed.
    func admitsMore(orWhenFreed resume: @escaping @Sendable () -> Void) -> Bool {
        state.withLock { state in
            guard state.open >= limit else { return true }
            state.waiting.append(resume)
            return false
        }
    }

    /// Lets through one warning per 10 s about a listener at its cap or out of descriptors.
    let warnings = WarningThrottle()
}
