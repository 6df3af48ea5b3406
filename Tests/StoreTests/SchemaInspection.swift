import Foundation
import Logging
import PostgresNIO
import SQLiteNIO
import Store

/// Reads a database's `schema_migrations` table directly, with the driver libraries, as an
/// operator would with `sqlite3` or `psql`: the store's API has no business exposing it.
enum SchemaInspection {
    static func versions(ofSQLiteFile path: String) async throws -> [Int] {
        let connection = try await SQLiteConnection.open(storage: .file(path: path))
        do {
            let rows = try await connection.query("SELECT version FROM schema_migrations ORDER BY version")
            try await connection.close()
            return rows.compactMap { row -> Int? in row.column("version")?.integer.map { Int($0) } }
        } catch {
            try? await connection.close()
            throw error
        }
    }

    static func versions(ofPostgres settings: PostgresSettings) async throws -> [Int] {
        let configuration = PostgresConnection.Configuration(
            host: settings.host, port: settings.port, username: settings.username, password: settings.password,
            database: settings.database, tls: .disable)
        let connection = try await PostgresConnection.connect(configuration: configuration, id: 1, logger: StoreHarness.logger)
        do {
            var versions: [Int] = []
            let rows = try await connection.query("SELECT version FROM schema_migrations ORDER BY version", logger: StoreHarness.logger)
            for try await version in rows.decode(Int.self) { versions.append(version) }
            try await connection.close()
            return versions
        } catch {
            try? await connection.close()
            throw error
        }
    }

    /// Runs one statement as an operator would with `psql` (tests that set up a state the API
    /// cannot make).
    static func execute(_ statement: String, onPostgres settings: PostgresSettings) async throws {
        let configuration = PostgresConnection.Configuration(
            host: settings.host, port: settings.port, username: settings.username, password: settings.password,
            database: settings.database, tls: .disable)
        let connection = try await PostgresConnection.connect(configuration: configuration, id: 1, logger: StoreHarness.logger)
        do {
            try await connection.query(PostgresQuery(unsafeSQL: statement), logger: StoreHarness.logger)
            try await connection.close()
        } catch {
            try? await connection.close()
            throw error
        }
    }
}
