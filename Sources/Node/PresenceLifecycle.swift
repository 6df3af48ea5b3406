import Broker
import ServiceLifecycle

/// Ends the presence store with the node (the node starts it, leases and reaping, once it
/// listens): at shutdown (after the WebSockets have closed and left their topics, before the
/// adapter stops) the node withdraws whatever share is left, so its members leave at once
/// rather than after `PRESENCE_TTL`.
struct PresenceLifecycle: Service {
    let store: any PresenceStore

    func run() async throws {
        try? await gracefulShutdown()
        await store.shutdown()
    }
}
