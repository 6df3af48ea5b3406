import ServiceLifecycle

/// Users, messages and read receipts in a database, run as a swift-service-lifecycle `Service`.
///
/// `run()` opens the database, runs the migrations, serves until graceful shutdown, waits for
/// the requests in flight, then closes the database and returns. Put the store in the
/// `ServiceGroup` before the HTTP server: the group stops services in reverse order, so the
/// server drains its requests while the store still answers them.
///
/// Requests made before the store is ready wait for it, at most
/// ``StoreConfiguration/readyWaitTimeout``, then throw ``StoreError/unavailable(_:)``; so do
/// requests made after it failed to open or began shutting down.
public protocol ChatStore: UserRepository, MessageRepository, ReadReceiptRepository, Service {
    /// Returns once the database is open and migrated; throws ``StoreError/unavailable(_:)``
    /// with the reason when `run()` failed to open it (or the store has stopped). Waits, without a
    /// limit of its own, for as long as `run()` is opening the database, which gives up on an
    /// unreachable PostgreSQL after ``StoreConfiguration/openTimeout``; cancel the task to stop waiting.
    func ready() async throws

    /// What ``StoreConfiguration/messageRetention`` has deleted since the store started.
    var pruned: PrunedRows { get }
}
