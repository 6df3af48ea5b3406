import Foundation
import Synchronization

/// The adapter-wide failover state: the worst state among the servers, and since when it holds.
///
/// Server links report each transition (from whichever thread saw it) with their transition
/// count, so that a late report never overwrites a newer one. Thread-safe behind a mutex.
final class RedisOverallState: Sendable {
    private struct Servers {
        var states: [AdapterStatus.State]
        var counts: [Int]
        var overall: AdapterStatus.State = .connecting
        var since = Date()
    }

    private let servers: Mutex<Servers>
    private let returned = Mutex<(@Sendable (_ server: Int) -> Void)?>(nil)
    private let peerGaps = Mutex<(@Sendable (PeerGap) -> Void)?>(nil)

    init(serverCount: Int) {
        servers = Mutex(Servers(states: Array(repeating: .connecting, count: serverCount), counts: Array(repeating: 0, count: serverCount)))
    }

    /// Server `index` made `transition`; one to connected runs the body given to
    /// ``onReturnFromFallback(_:)``: from fallback, and from connecting too (at start, or while
    /// Sentinel named no reachable master), when subscribes were answered without the server.
    func record(server index: Int, _ transition: RedisLinkStateMachine.Transition) {
        record(server: index, state: transition.to, count: transition.count)
        if transition.to == .connected, transition.from != .connected { returned.withLock { $0 }?(index) }
    }

    /// Runs `body` with the server's index each time one returns from fallback.
    func onReturnFromFallback(_ body: @escaping @Sendable (_ server: Int) -> Void) {
        returned.withLock { $0 = body }
    }

    /// Runs `body` with each batch of other nodes' gap announcements (``PeerGap``).
    func onPeerGap(_ body: @escaping @Sendable (PeerGap) -> Void) {
        peerGaps.withLock { $0 = body }
    }

    /// A server link heard other nodes' gap announcements.
    func record(_ gap: PeerGap) {
        peerGaps.withLock { $0 }?(gap)
    }

    /// Server `index` reached `state` with its `count`-th transition.
    func record(server index: Int, state: AdapterStatus.State, count: Int) {
        servers.withLock { servers in
            guard count > servers.counts[index] else { return }
            servers.counts[index] = count
            servers.states[index] = state
            let worst = servers.states.max(by: { Self.severity($0) < Self.severity($1) }) ?? .connecting
            if worst != servers.overall {
                servers.overall = worst
                servers.since = Date()
            }
        }
    }

    /// The worst state among the servers, and since when the adapter has been in it.
    var current: (state: AdapterStatus.State, since: Date) {
        servers.withLock { ($0.overall, $0.since) }
    }

    /// fallback is worse than connecting, which is worse than connected.
    private static func severity(_ state: AdapterStatus.State) -> Int {
        switch state {
        case .connected, .local: 0
        case .connecting: 1
        case .fallback: 2
        }
    }
}
