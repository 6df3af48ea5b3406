import Broker
import ServiceLifecycle

/// Ends the presence store with the node (the node starts it, leases and reaping, once it
/// listens): at shutdown (after the WebSockets have closed, before the adapter stops) the node
/// withdraws whatever share is left, so its members leave now rather than after
/// `PRESENCE_TTL`. When the drain held the closed connections' leaves
/// (``PresenceService/holdLeaves()``), that is `PRESENCE_DRAIN_GRACE` later: time for their
/// users to reconnect to another node, which counts them before this node's share goes.
struct PresenceLifecycle: Service {
    let presence: PresenceService

    func run() async throws {
        try? await gracefulShutdown()
        if presence.heldLeaves {
            // Cancelled past DRAIN_TIMEOUT: the share is withdrawn at once then.
            try? await Task.sleep(for: presence.drainGrace)
        }
        presence.stop()
        await presence.store.shutdown()
    }
}
