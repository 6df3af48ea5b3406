import Logging
import NIOCore
import NIOPosix
import SQLiteNIO

/// SQLite through sqlite-nio: one connection, a file or in memory.
///
/// sqlite-nio runs every SQLite call on NIO's shared thread pool, never on an event loop or
/// Swift's cooperative pool, and opens the connection in serialized mode, so concurrent requests
/// may share it. One connection is enough: SQLite writes one at a time anyway, and each request
/// is a single statement. The only multi-statement transaction is the migration, which runs
/// before the gate opens.
///
/// The file is opened in WAL mode (readers do not block the writer), with a busy timeout (another
/// process's write lock is waited for, boundedly, not failed at once) and foreign keys enforced.
///
/// The connection is always closed before it is released, also when the store's task has been
/// cancelled (a shutdown past `DRAIN_TIMEOUT`): see ``close(_:)``.
struct SQLiteDriver: DatabaseDriver {
    let storage: SQLiteConnection.Storage
    let configuration: StoreConfiguration
    let logger: Logger

    func withOpenDatabase(_ serve: (SQLiteRepository) async throws -> Void) async throws {
        let connection = try await SQLiteConnection.open(
            storage: storage, threadPool: .singleton, logger: logger, on: MultiThreadedEventLoopGroup.singleton.any())
        do {
            try await configure(connection)
            try await migrate(connection)
            try await serve(SQLiteRepository(connection: connection))
        } catch {
            try? await Self.close(connection)
            throw error
        }
        try await Self.close(connection)
    }

    /// Closes `connection`, whether or not the calling task is cancelled.
    ///
    /// Not sqlite-nio's `async` `close()`: it submits the close to NIO's thread pool with
    /// `runIfActive`, which drops work whose task is cancelled and throws `CancellationError`
    /// without running it. The handle then stays open, and releasing the connection trips
    /// sqlite-nio's `assert` in `deinit` ("SQLiteConnection was not closed before
    /// deinitializing"): a crash (SIGILL) of every debug build whose shutdown overran
    /// `DRAIN_TIMEOUT`, since the service group then cancels the store. The future-based
    /// `close()` always runs the close.
    private static func close(_ connection: SQLiteConnection) async throws {
        try await connection.close().get()
    }

    func reason(for error: any Error) -> String {
        guard let error = error as? SQLiteError else { return "SQLite: \(error)" }
        return "SQLite \(location): \(error.message) (\(error.reason))"
    }

    var name: String { "SQLite \(location)" }

    private var location: String {
        switch storage {
        case .memory: "in memory"
        case .file(let path): "at \(path)"
        }
    }

    private func configure(_ connection: SQLiteConnection) async throws {
        let milliseconds = configuration.sqliteBusyTimeout.components.seconds * 1000
            + configuration.sqliteBusyTimeout.components.attoseconds / 1_000_000_000_000_000
        _ = try await connection.query("PRAGMA busy_timeout = \(milliseconds)")
        _ = try await connection.query("PRAGMA foreign_keys = ON")
        if case .file = storage {
            let mode = try await switchToWAL(connection)
            if mode?.lowercased() != "wal" {
                logger.warning("SQLite \(location): WAL mode refused, journal mode is \(mode ?? "unknown")")
            }
            // With WAL, NORMAL loses no committed data on a crash of the process, only on power loss.
            _ = try await connection.query("PRAGMA synchronous = NORMAL")
        }
    }

    /// Sets `journal_mode = WAL`. Switching a new file to WAL takes its exclusive lock from a
    /// shared one; when two connections switch at once (two nodes starting on one new file),
    /// each holds the shared lock the other waits for, so SQLite answers busy at once instead of
    /// calling the busy handler. Trying again after a pause finds the file switched by the other.
    private func switchToWAL(_ connection: SQLiteConnection) async throws -> String? {
        try await startupStatement("PRAGMA journal_mode = WAL", on: connection).first?.column("journal_mode")?.string
    }

    /// How long a node starting on a file another node is migrating waits for it: the busy
    /// timeout bounds each request, but a migration on a loaded machine may take longer.
    static let startupLockWait: Duration = .seconds(60)

    /// Runs a statement of the startup, trying again while SQLite answers busy, for up to
    /// ``startupLockWait`` (or the busy timeout, if longer).
    private func startupStatement(_ sql: String, on connection: SQLiteConnection) async throws -> [SQLiteRow] {
        let deadline = ContinuousClock.now + max(Self.startupLockWait, configuration.sqliteBusyTimeout)
        while true {
            do {
                return try await connection.query(sql)
            } catch let error as SQLiteError where Self.isBusy(error) && ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(10))
            }
        }
    }

    private static func isBusy(_ error: SQLiteError) -> Bool {
        switch error.reason {
        case .busy, .busyInRecovery, .busyInSnapshot, .busyTimeout: true
        default: false
        }
    }

    /// Applies the migrations not yet recorded, in one `BEGIN IMMEDIATE` transaction: it takes
    /// the write lock first, so two processes starting on one file run them one after the other
    /// (the second waits, up to ``startupLockWait``, and then finds nothing to do).
    private func migrate(_ connection: SQLiteConnection) async throws {
        _ = try await startupStatement("BEGIN IMMEDIATE", on: connection)
        do {
            _ = try await connection.query(Migration.sqliteVersionTable)
            let rows = try await connection.query("SELECT version FROM schema_migrations")
            let applied = Set(rows.compactMap { row -> Int? in row.column("version")?.integer.map { Int($0) } })
            for migration in Migration.all where !applied.contains(migration.version) {
                logger.info("SQLite \(location): migration \(migration.version): \(migration.name)")
                for statement in migration.sqlite {
                    _ = try await connection.query(statement)
                }
                _ = try await connection.query(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                    [.integer(migration.version), .text(migration.name), .integer(SQLiteInt64(Milliseconds.now()))])
            }
            if let newest = applied.max(), newest > Migration.all.last?.version ?? 0 {
                logger.warning("SQLite \(location): schema version \(newest) is newer than this node knows")
            }
            _ = try await connection.query("COMMIT")
        } catch {
            _ = try? await connection.query("ROLLBACK")
            throw error
        }
    }
}
