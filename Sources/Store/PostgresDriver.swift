import Foundation
import Logging
import NIOCore
import NIOPosix
import PostgresNIO

/// PostgreSQL through postgres-nio: what lets every node of a cluster share one store.
///
/// Migrations run first, over a connection of their own, so that a server that cannot be
/// reached or refuses the login is reported at once with its reason (the pool would only queue
/// requests). Then a `PostgresClient` (a pool of NIO connections) serves the requests; its
/// `run()` must be running for it to lend connections, and it runs for as long as the store
/// serves.
struct PostgresDriver: DatabaseDriver {
    let settings: PostgresSettings
    let configuration: StoreConfiguration
    let logger: Logger

    /// The key of the advisory lock migrations hold: "chorus" in ASCII, then 1.
    static let migrationLock: Int64 = 0x6368_6f72_7573_0001

    func withOpenDatabase(_ serve: (PostgresRepository) async throws -> Void) async throws {
        try await migrate()
        let client = PostgresClient(configuration: try clientConfiguration(), backgroundLogger: logger)
        // The pool runs in a task of its own, detached so that it does not inherit the store's
        // graceful-shutdown signal: the pool must outlive the requests in flight, which `serve`
        // waits for, and stops only when cancelled below. It is always awaited before returning.
        let pool = Task.detached { await client.run() }
        do {
            try await serve(PostgresRepository(client: client, logger: logger))
        } catch {
            pool.cancel()
            await pool.value
            throw error
        }
        pool.cancel()
        await pool.value
    }

    func reason(for error: any Error) -> String {
        if let error = error as? PostgresTransactionError {
            if let cause = error.beginError ?? error.closureError ?? error.commitError {
                return reason(for: cause)
            }
            return "PostgreSQL at \(place): transaction failed"
        }
        guard let error = error as? PSQLError else { return "PostgreSQL at \(place): \(error)" }
        if let message = error.serverInfo?[.message] {
            let state = error.serverInfo?[.sqlState].map { " (SQLSTATE \($0))" } ?? ""
            return "PostgreSQL at \(place): \(message)\(state)"
        }
        switch error.code {
        case .connectionError:
            let cause = error.underlying.map { ": \(Self.connectFailure($0))" } ?? ""
            return "cannot connect to PostgreSQL at \(place)\(cause)"
        case .poolClosed, .clientClosedConnection:
            return "the connection pool to PostgreSQL at \(place) is closed"
        case .serverClosedConnection:
            return "PostgreSQL at \(place) closed the connection"
        case .sslUnsupported:
            return "PostgreSQL at \(place) does not offer TLS, and sslmode=require"
        default:
            return "PostgreSQL at \(place): \(error.code)"
        }
    }

    /// Why a TCP connect failed, in the system's words ("Connection refused") where there are some.
    private static func connectFailure(_ error: any Error) -> String {
        var cause = error
        if let failure = error as? NIOConnectionError, let last = failure.connectionErrors.last {
            cause = last.error
        }
        if let failure = cause as? IOError { return String(cString: strerror(failure.errnoCode)) }
        return "\(cause)"
    }

    var name: String { "PostgreSQL at \(place)" }

    /// `host:port/database`, for messages (no user, no password).
    private var place: String {
        let host = settings.host.contains(":") ? "[\(settings.host)]" : settings.host
        return "\(host):\(settings.port)/\(settings.database)"
    }

    // MARK: - Migrations

    /// Connects (retrying while the server cannot be reached, up to the open timeout) and
    /// applies the pending migrations.
    private func migrate() async throws {
        let deadline = ContinuousClock.now + configuration.openTimeout
        var attempt = 0
        while true {
            do {
                let connection = try await PostgresConnection.connect(
                    configuration: try connectionConfiguration(), id: 0, logger: logger)
                do {
                    try await applyMigrations(on: connection)
                } catch {
                    try? await connection.close()
                    throw error
                }
                try await connection.close()
                return
            } catch let error as PSQLError where Self.isWorthRetrying(error) && ContinuousClock.now < deadline {
                attempt += 1
                let pause = min(Duration.milliseconds(100 << min(attempt, 5)), .seconds(2))
                logger.warning("store: \(reason(for: error)); trying again in \(pause)")
                try await Task.sleep(for: min(pause, deadline - ContinuousClock.now))
            }
        }
    }

    /// Refused, unreachable or still starting: the server may be on its way up.
    private static func isWorthRetrying(_ error: PSQLError) -> Bool {
        error.code == .connectionError || error.serverInfo?[.sqlState] == "57P03"
    }

    /// All pending migrations in one transaction holding an advisory lock, so two nodes starting
    /// at once on one database apply them once: the second waits for the lock, then finds them
    /// recorded. The lock is released with the transaction.
    private func applyMigrations(on connection: PostgresConnection) async throws {
        let logger = self.logger
        let place = self.place
        try await connection.withTransaction(logger: logger) { connection in
            try await connection.query("SELECT pg_advisory_xact_lock(\(Self.migrationLock))", logger: logger)
            try await connection.query(PostgresQuery(unsafeSQL: Migration.postgresVersionTable), logger: logger)
            var applied = Set<Int>()
            for try await version in try await connection.query("SELECT version FROM schema_migrations", logger: logger)
                .decode(Int.self)
            {
                applied.insert(version)
            }
            for migration in Migration.all where !applied.contains(migration.version) {
                logger.info("PostgreSQL at \(place): migration \(migration.version): \(migration.name)")
                for statement in migration.postgres {
                    try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger)
                }
                try await connection.query(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES (\(migration.version), \(migration.name), \(Milliseconds.now()))",
                    logger: logger)
            }
            if let newest = applied.max(), newest > Migration.all.last?.version ?? 0 {
                logger.warning("PostgreSQL at \(place): schema version \(newest) is newer than this node knows")
            }
        }
    }

    // MARK: - Configuration

    /// libpq's `prefer` and `require` encrypt without checking the certificate; so do these.
    private var tlsConfiguration: TLSConfiguration {
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.certificateVerification = .none
        return tls
    }

    private func connectionConfiguration() throws -> PostgresConnection.Configuration {
        let tls: PostgresConnection.Configuration.TLS
        switch settings.sslMode {
        case .disable: tls = .disable
        case .prefer: tls = .prefer(try NIOSSLContext(configuration: tlsConfiguration))
        case .require: tls = .require(try NIOSSLContext(configuration: tlsConfiguration))
        }
        var configuration = PostgresConnection.Configuration(
            host: settings.host, port: settings.port, username: settings.username, password: settings.password,
            database: settings.database, tls: tls)
        configuration.options.connectTimeout = .seconds(min(10, max(1, self.configuration.openTimeout.components.seconds)))
        return configuration
    }

    private func clientConfiguration() throws -> PostgresClient.Configuration {
        let tls: PostgresClient.Configuration.TLS
        switch settings.sslMode {
        case .disable: tls = .disable
        case .prefer: tls = .prefer(tlsConfiguration)
        case .require: tls = .require(tlsConfiguration)
        }
        var configuration = PostgresClient.Configuration(
            host: settings.host, port: settings.port, username: settings.username, password: settings.password,
            database: settings.database, tls: tls)
        configuration.options.maximumConnections = max(1, self.configuration.postgresMaximumConnections)
        return configuration
    }
}
