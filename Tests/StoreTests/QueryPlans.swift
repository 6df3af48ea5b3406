import Foundation
import PostgresNIO
import SQLiteNIO
@testable import Store
import TestSupport

/// A database a store runs on, opened directly with the driver libraries (as an operator would
/// with `sqlite3` or `psql`): to fill it in bulk and to read the query plans of the store's
/// statements.
enum RawDatabase: Sendable {
    case sqlite(path: String)
    case postgres(PostgresSettings)

    /// Runs `sql` (no parameters) for its effect.
    func execute(_ sql: String) async throws {
        _ = try await withConnection { sqlite, postgres in
            if let sqlite { _ = try await sqlite.query(sql) }
            if let postgres { try await postgres.query(PostgresQuery(unsafeSQL: sql), logger: StoreHarness.logger) }
            return [String]()
        }
    }

    /// The plan of one of the store's statements (`$n` parameters) with these parameters:
    /// `EXPLAIN QUERY PLAN`'s details on SQLite, `EXPLAIN`'s lines on PostgreSQL.
    func plan(_ sql: String, _ binds: [ReadReceiptSQL.Value]) async throws -> [String] {
        try await withConnection { sqlite, postgres in
            if let sqlite {
                let data = binds.map { value -> SQLiteData in
                    switch value {
                    case .text(let text): text.map { .text($0) } ?? .null
                    case .integer(let number): .integer(SQLiteInt64(number))
                    }
                }
                let rows = try await sqlite.query("EXPLAIN QUERY PLAN " + ReadReceiptSQL.sqlite(sql), data)
                return rows.compactMap { $0.column("detail")?.string }
            }
            guard let postgres else { return [] }
            var query = PostgresRepository.query(sql, binds)
            query.sql = "EXPLAIN " + query.sql
            var lines: [String] = []
            for try await line in try await postgres.query(query, logger: StoreHarness.logger).decode(String.self) {
                lines.append(line)
            }
            return lines
        }
    }

    private func withConnection(
        _ body: (SQLiteConnection?, PostgresConnection?) async throws -> [String]
    ) async throws -> [String] {
        switch self {
        case .sqlite(let path):
            let connection = try await SQLiteConnection.open(storage: .file(path: path))
            do {
                let result = try await body(connection, nil)
                try await connection.close()
                return result
            } catch {
                try? await connection.close()
                throw error
            }
        case .postgres(let settings):
            let configuration = PostgresConnection.Configuration(
                host: settings.host, port: settings.port, username: settings.username, password: settings.password,
                database: settings.database, tls: .disable)
            let connection = try await PostgresConnection.connect(configuration: configuration, id: 2, logger: StoreHarness.logger)
            do {
                let result = try await body(nil, connection)
                try await connection.close()
                return result
            } catch {
                try? await connection.close()
                throw error
            }
        }
    }
}

extension StoreBackend {
    /// Like ``withStore(configuration:_:)`` for the backends with a database another
    /// connection can open (a SQLite file, PostgreSQL), handing over that database too.
    func withStoreAndDatabase<Result: Sendable>(_ body: (any ChatStore, RawDatabase) async throws -> Result) async throws -> Result {
        switch self {
        case .sqliteMemory:
            throw TestFailure("an in-memory SQLite database cannot be opened twice")
        case .sqliteFile:
            return try await StoreHarness.withTemporaryDirectory { directory in
                let path = directory.appendingPathComponent("chorus.db").path
                return try await StoreHarness.running(.sqliteFile(path)) { try await body($0, .sqlite(path: path)) }
            }
        case .postgres:
            return try await PostgresProcess.withServer { server in
                try await server.createDatabase("chorus")
                let url = try DatabaseURL(parsing: server.url(database: "chorus"))
                guard case .postgres(let settings) = url else { throw TestFailure("not a PostgreSQL URL") }
                return try await StoreHarness.running(url) { try await body($0, .postgres(settings)) }
            }
        }
    }
}
