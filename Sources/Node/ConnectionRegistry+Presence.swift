import Broker
import Foundation
import NIOCore
import Synchronization

extension ConnectionRegistry {
    /// Session `id` receives the presence events of `topic` (it subscribed with `presenceEvents`).
    func watchPresence(_ id: Int, of topic: Topic) {
        guard let ref = session(id).map(SessionRef.init) else { return }
        if presenceWatchers[topic] == nil { loopInterest.add(.topic(topic)) }
        presenceWatchers[topic, default: []].insert(ref)
    }

    /// Session `id` no longer receives the presence events of `topic`.
    func unwatchPresence(_ id: Int, of topic: Topic) {
        guard let ref = session(id).map(SessionRef.init) else { return }
        unwatchPresence(ref, of: topic)
    }

    /// Writes `{"type":"presence","topic":..,"event":"resync","timestamp":..}` to the presence
    /// watchers of each topic that `holds` accepts: events of it may have been lost, and a
    /// watcher should read the list again (`presence.get`). Written at once: presence events
    /// waiting in the inbox for a paced drain (``DrainPacer``, at most `WEBSOCKET_WRITE_DELAY`)
    /// arrive after it, which a watcher that reads the list again is not misled by.
    func resyncPresence(where holds: (Topic) -> Bool, at timestamp: Date) {
        let allocator = ByteBufferAllocator()
        let deliveries = presenceWatchers.keys.filter(holds).map { topic in
            Delivery(
                topic: topic, userId: nil,
                frame: .text(PresenceFrames.resync(topic: topic, timestamp: timestamp), allocator: allocator),
                arrivedAt: .now(), audience: .presenceWatchers)
        }
        deliver(deliveries)
    }

    func unwatchPresence(_ ref: SessionRef, of topic: Topic) {
        guard presenceWatchers[topic]?.remove(ref) != nil else { return }
        if presenceWatchers[topic]!.isEmpty {
            presenceWatchers[topic] = nil
            loopInterest.remove(.topic(topic))
        }
    }
}

extension UserSessions {
    func contains(_ ref: SessionRef) -> Bool {
        switch self {
        case .one(let only): only == ref
        case .many(let set): set.contains(ref)
        }
    }
}

/// Presence events and typing indicators that reached this node (once per node, not per
/// client), for `/stats`.
final class SignalCounters: Sendable {
    let presenceEvents = Atomic<Int>(0)
    let typingIndicators = Atomic<Int>(0)
}
