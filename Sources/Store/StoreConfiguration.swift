/// How long the store waits and how much it hands out. The defaults suit a node; tests shorten
/// the waits.
public struct StoreConfiguration: Sendable, Equatable {
    /// How long a request made before the store is ready waits for it before throwing
    /// ``StoreError/unavailable(_:)`` (the HTTP routes answer 503 then).
    public var readyWaitTimeout: Duration
    /// How long `run()` keeps trying to reach PostgreSQL (refused or unreachable) before it
    /// gives up; errors the server itself reports (bad password, no such database) fail at once.
    public var openTimeout: Duration
    /// How long SQLite waits for another connection's write lock (its `busy_timeout`).
    public var sqliteBusyTimeout: Duration
    /// The most connections one node opens to PostgreSQL.
    public var postgresMaximumConnections: Int
    /// The largest `limit` a listing honours; larger ones are clamped to it.
    public var maximumPageSize: Int
    /// How long one request may take, waiting for a connection included, before it throws
    /// ``StoreError/unavailable(_:)``: a database that stopped answering fails requests
    /// quickly instead of holding them.
    public var requestTimeout: Duration
    /// How long messages are kept: older ones, and the ids of messages deleted longer ago, are
    /// deleted by the store while it runs (``RetentionPruner``); nil keeps them for ever.
    public var messageRetention: Duration?

    public init(
        readyWaitTimeout: Duration = .seconds(10), openTimeout: Duration = .seconds(30),
        sqliteBusyTimeout: Duration = .seconds(5), postgresMaximumConnections: Int = 10, maximumPageSize: Int = 500,
        requestTimeout: Duration = .seconds(5), messageRetention: Duration? = nil
    ) {
        self.requestTimeout = requestTimeout
        self.messageRetention = messageRetention
        self.readyWaitTimeout = readyWaitTimeout
        self.openTimeout = openTimeout
        self.sqliteBusyTimeout = sqliteBusyTimeout
        self.postgresMaximumConnections = postgresMaximumConnections
        self.maximumPageSize = maximumPageSize
    }
}
