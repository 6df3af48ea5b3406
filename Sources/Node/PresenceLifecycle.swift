import Broker
import ServiceLifecycle

/// Runs the presence store for the node's lifetime: leases and reaping from the start; at
/// shutdown (after the WebSockets have closed and left their topics, before the adapter stops)
/// the node withdraws whatever share is left, so its members leave at once rather than after
/// `PRESENCE_TTL`.
struct PresenceLifecycle: Service {
    let store: any PresenceStore

    func run() async throws {
        store.start()
        try? await gracefulShutdown()
        await store.shutdown()
    }
}
