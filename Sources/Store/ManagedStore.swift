import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// A ``ChatStore`` over one ``DatabaseDriver``: the lifecycle (open, serve, drain, close) and the
/// gate in front of the database, the same for SQLite and PostgreSQL.
///
/// Every repository call goes through ``StoreGate``, so it waits while the store is starting and
/// is counted while it runs; shutdown closes the database only after the last one has left.
/// Errors of the database library become ``StoreError/unavailable(_:)`` with a one-line reason,
/// which is also logged (never the query: its binds hold password hashes), at most once per
/// 10 s: a full disk fails every write, and under load that would be a line per request.
/// ``StoreError`` and cancellation pass through as they are.
final class ManagedStore<Driver: DatabaseDriver>: ChatStore {
    private let driver: Driver
    private let configuration: StoreConfiguration
    private let logger: Logger
    private let gate = StoreGate<Driver.Database>()
    private let started = Atomic<Bool>(false)
    private let prunedSoFar = Mutex(PrunedRows())
    /// When each database error (by reason) was last logged, and how many like it were not since.
    private let failuresLogged = Mutex<[String: (at: ContinuousClock.Instant, unlogged: Int)]>([:])

    init(driver: Driver, configuration: StoreConfiguration, logger: Logger) {
        self.driver = driver
        self.configuration = configuration
        self.logger = logger
    }

    func run() async throws {
        guard !started.exchange(true, ordering: .relaxed) else {
            throw StoreError.unavailable("the store's run() was called twice")
        }
        logger.info("store: opening \(driver.name)")
        do {
            try await driver.withOpenDatabase { database in
                gate.open(database)
                logger.info("store: \(driver.name) is ready")
                await withDiscardingTaskGroup { group in
                    if let pruner = retentionPruner() { group.addTask { await pruner.run() } }
                    // Throws CancellationError when the task is cancelled: stop serving just the same.
                    try? await gracefulShutdown()
                    group.cancelAll()
                }
                logger.info("store: shutting down, waiting for the requests in flight")
                // At most as long as a request may take: one stuck in the database library past
                // its own deadline does not hold shutdown (the database closes under it).
                // In a task of its own: a cancelled run (the node failed to start) still waits
                // for what is in flight, and only an expired deadline is reported as one.
                let gate = self.gate
                let timeout = configuration.requestTimeout
                let closing = Task {
                    try await RequestDeadline.run(timeout, expired: { StoreError.unavailable("requests still in flight") }) {
                        await gate.close()
                    }
                }
                do {
                    try await closing.value
                } catch {
                    logger.warning("store: requests still in flight after \(configuration.requestTimeout); closing the database under them")
                }
            }
        } catch {
            let failure = storeError(error, while: "opening the database")
            gate.shut(failure as? StoreError ?? .unavailable("the store stopped before the database was open"))
            throw failure
        }
        gate.shut(.unavailable("the store has stopped"))
        logger.info("store: \(driver.name) closed")
    }

    func ready() async throws {
        try await gate.waitUntilOpen()
    }

    var pruned: PrunedRows { prunedSoFar.withLock { $0 } }

    private func retentionPruner() -> RetentionPruner? {
        guard let retention = configuration.messageRetention else { return nil }
        logger.info("store: messages are kept for \(RetentionPruner.describe(retention)) (MESSAGE_RETENTION), then deleted")
        return RetentionPruner(
            retention: retention,
            prune: { [self] cutoff, limit in try await prune(before: cutoff, limit: limit) },
            pruned: { [self] rows in prunedSoFar.withLock { $0 += rows } },
            logger: logger)
    }

    // MARK: - UserRepository

    func createUser(username: String, passwordHash: String) async throws -> UserAccount {
        try await using("creating a user") { try await $0.createUser(username: username, passwordHash: passwordHash) }
    }

    func user(named username: String) async throws -> UserAccount? {
        try await using("finding a user") { try await $0.user(named: username) }
    }

    func user(id: String) async throws -> UserAccount? {
        try await using("finding a user") { try await $0.user(id: id) }
    }

    // MARK: - MessageRepository

    /// Stores the message, then records its author and recipient as members of its conversation
    /// (``ReadReceiptRepository``). The message is stored once the first step succeeds: a
    /// failure of the second is logged, not thrown, so that a client does not post it again.
    /// Two steps: the message, then its conversation's members (read positions that only move
    /// forward, so doing it again is harmless). A retry with the same id, which the first try
    /// stored, does the second step again: the first may have lost it (a deadline that passed
    /// between the two, a failure only logged), and the retry is what repairs it.
    func createMessage(_ message: NewMessage) async throws -> StoredMessage {
        let stored: StoredMessage
        do {
            stored = try await using("storing a message") { try await $0.createMessage(message) }
        } catch StoreError.duplicateMessageId {
            if let id = message.id {
                try? await using("recording a message's members") { try await $0.recordMembers(ofMessage: id.lowercased()) }
            }
            throw StoreError.duplicateMessageId
        }
        do {
            try await using("recording a message's members") { try await $0.recordMembers(ofMessage: stored.id) }
        } catch {
            logger.warning(
                "store: message \(stored.id) is stored, but its conversation's members were not recorded: \(error)")
        }
        return stored
    }

    // Message ids are UUIDs, stored lowercase (``MessageRepository``): a client's own id in
    // uppercase (Swift's `UUID().uuidString`) finds its message too.

    func message(id: String) async throws -> StoredMessage? {
        try await using("reading a message") { try await $0.message(id: id.lowercased()) }
    }

    func messages(in scope: MessageScope, before cursor: String?, limit: Int, maxBytes: Int) async throws -> MessagePage {
        let limit = min(max(limit, 1), configuration.maximumPageSize)
        return try await using("listing messages") {
            try await $0.messages(in: scope, before: cursor, limit: limit, maxBytes: maxBytes)
        }
    }

    func updateMessage(id: String, content: String, metadata: MetadataEdit) async throws -> StoredMessage? {
        try await using("updating a message") { try await $0.updateMessage(id: id.lowercased(), content: content, metadata: metadata) }
    }

    func deleteMessage(id: String) async throws -> Bool {
        try await using("deleting a message") { try await $0.deleteMessage(id: id.lowercased()) }
    }

    func prune(before cutoff: Date, limit: Int) async throws -> PrunedRows {
        try await using("pruning old messages") { try await $0.prune(before: cutoff, limit: limit) }
    }

    // MARK: - ReadReceiptRepository

    func markRead(messageId: String, by userId: String) async throws -> ReadRecord? {
        try await using("recording a read") { try await $0.markRead(messageId: messageId.lowercased(), by: userId) }
    }

    func conversations(of userId: String, before cursor: String?, limit: Int) async throws -> ConversationPage {
        let limit = min(max(limit, 1), configuration.maximumPageSize)
        return try await using("listing conversations") { try await $0.conversations(of: userId, before: cursor, limit: limit) }
    }

    // MARK: - Helpers

    private func using<T: Sendable>(
        _ action: String, _ body: @escaping @Sendable (Driver.Database) async throws -> T
    ) async throws -> T {
        let (gate, configuration) = (self.gate, self.configuration)
        do {
            return try await Self.within(configuration.requestTimeout) {
                try await gate.withDatabase(waitingAtMost: configuration.readyWaitTimeout, body)
            }
        } catch {
            throw storeError(error, while: action)
        }
    }

    /// `work`'s result, or ``StoreError/unavailable(_:)`` once `timeout` has passed; `work` is
    /// then cancelled but not waited for (see ``RequestDeadline``).
    private static func within<T: Sendable>(
        _ timeout: Duration, _ work: @escaping @Sendable () async throws -> T
    ) async throws -> T {
        try await RequestDeadline.run(timeout, expired: {
            StoreError.unavailable("no answer from the database within \(timeout)")
        }, work)
    }

    /// `error` as the store reports it; a database library's error is logged first.
    private func storeError(_ error: any Error, while action: String) -> any Error {
        switch error {
        case let error as StoreError:
            return error
        case let error as CancellationError:
            return error
        default:
            let reason = driver.reason(for: error)
            let now = ContinuousClock.now
            let unlogged = failuresLogged.withLock { logged -> Int? in
                if let last = logged[reason], now - last.at < .seconds(10) {
                    logged[reason]?.unlogged += 1
                    return nil
                }
                if logged.count >= 64 { logged = logged.filter { now - $0.value.at < .seconds(10) } }
                defer { logged[reason] = (now, 0) }
                return logged[reason]?.unlogged ?? 0
            }
            if let unlogged {
                logger.error(
                    "store: \(action) failed: \(reason)\(unlogged > 0 ? " (\(unlogged) more like it in the 10 s before, not logged)" : "")",
                    metadata: ["error.type": "\(type(of: error))"])
            }
            return StoreError.unavailable(reason)
        }
    }
}
