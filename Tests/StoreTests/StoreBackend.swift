import Foundation
import Logging
import ServiceLifecycle
import Store
import Testing
import TestSupport

/// The databases the contract suite runs against.
enum StoreBackend: String, CaseIterable, CustomTestStringConvertible, Sendable {
    case sqliteMemory = "SQLite in memory"
    case sqliteFile = "SQLite file"
    case postgres = "PostgreSQL"

    var testDescription: String { rawValue }

    /// Runs `body` with the URL of a fresh, empty database of this kind (a file, or a new
    /// PostgreSQL server), for a test that starts stores on it itself; removed afterwards.
    func withDatabase<Result: Sendable>(_ body: (DatabaseURL) async throws -> Result) async throws -> Result {
        switch self {
        case .sqliteMemory:
            preconditionFailure("an in-memory database ends with its store")
        case .sqliteFile:
            return try await StoreHarness.withTemporaryDirectory { directory in
                try await body(DatabaseURL.sqliteFile(directory.appendingPathComponent("chorus.db").path))
            }
        case .postgres:
            return try await PostgresProcess.withServer { server in
                try await server.createDatabase("chorus")
                return try await body(try DatabaseURL(parsing: server.url(database: "chorus")))
            }
        }
    }

    /// Runs `body` with a ready store on a fresh, empty database of this kind (a new PostgreSQL
    /// server for `postgres`, a new file for `sqliteFile`), then shuts the store down gracefully
    /// and removes the database, whatever happens.
    func withStore<Result: Sendable>(
        configuration: StoreConfiguration = .init(), _ body: (any ChatStore) async throws -> Result
    ) async throws -> Result {
        switch self {
        case .sqliteMemory:
            return try await StoreHarness.running(.sqliteMemory, configuration: configuration, body)
        case .sqliteFile, .postgres:
            return try await withDatabase { try await StoreHarness.running($0, configuration: configuration, body) }
        }
    }
}

/// Running stores the way a node does, inside a `ServiceGroup`.
enum StoreHarness {
    static let logger: Logger = {
        var logger = Logger(label: "store-tests")
        logger.logLevel = .error
        return logger
    }()

    /// Runs `body` with a store on `url` that is running in a `ServiceGroup` and ready; then
    /// triggers graceful shutdown and waits for `run()` to return.
    static func running<Result: Sendable>(
        _ url: DatabaseURL, configuration: StoreConfiguration = .init(), _ body: (any ChatStore) async throws -> Result
    ) async throws -> Result {
        try await runningAll([url], configuration: configuration) { try await body($0[0]) }
    }

    /// Like ``running(_:configuration:_:)`` with one store per URL, all started at once (as
    /// nodes of a cluster would start).
    static func runningAll<Result: Sendable>(
        _ urls: [DatabaseURL], configuration: StoreConfiguration = .init(),
        _ body: ([any ChatStore]) async throws -> Result
    ) async throws -> Result {
        let stores = urls.map { makeStore($0, logger: logger, configuration: configuration) }
        let groups = stores.map { ServiceGroup(services: [$0], logger: logger) }
        return try await withThrowingTaskGroup(of: Void.self) { tasks in
            for group in groups {
                tasks.addTask { try await group.run() }
            }
            do {
                for store in stores { try await store.ready() }
                let result = try await body(stores)
                for group in groups { await group.triggerGracefulShutdown() }
                try await tasks.waitForAll()
                return result
            } catch {
                for group in groups { await group.triggerGracefulShutdown() }
                tasks.cancelAll()
                while case .some = try? await tasks.next() {}
                throw error
            }
        }
    }

    /// Runs `body` with a fresh empty directory, removed afterwards.
    static func withTemporaryDirectory<Result>(_ body: (URL) async throws -> Result) async throws -> Result {
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("chorus-store-\(UUID().uuidString.prefix(8).lowercased())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        return try await body(directory)
    }
}
