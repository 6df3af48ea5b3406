import Logging

/// The store for `url`: SQLite (a file or in memory) or PostgreSQL. Nothing is opened until the
/// store's `run()` starts.
public func makeStore(_ url: DatabaseURL, logger: Logger, configuration: StoreConfiguration = .init()) -> any ChatStore {
    switch url {
    case .sqliteFile(let path):
        ManagedStore(driver: SQLiteDriver(storage: .file(path: path), configuration: configuration, logger: logger),
                     configuration: configuration, logger: logger)
    case .sqliteMemory:
        ManagedStore(driver: SQLiteDriver(storage: .memory, configuration: configuration, logger: logger),
                     configuration: configuration, logger: logger)
    case .postgres(let settings):
        ManagedStore(driver: PostgresDriver(settings: settings, configuration: configuration, logger: logger),
                     configuration: configuration, logger: logger)
    }
}
