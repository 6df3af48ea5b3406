/// One kind of database (SQLite, PostgreSQL) as ``ManagedStore`` uses it: opens, migrates,
/// lends the open database while the store serves, then closes it.
protocol DatabaseDriver: Sendable {
    associatedtype Database: UserRepository & MessageRepository & ReadReceiptRepository & ReadReceiptDatabase

    /// Opens the database and runs the migrations, calls `serve` with it, and closes the
    /// database when `serve` returns (or opening fails part-way). `serve` returns once no
    /// request uses the database any more.
    func withOpenDatabase(_ serve: (Database) async throws -> Void) async throws

    /// Which database, for the log: "SQLite at chorus.db", "PostgreSQL at db:5432/chat".
    var name: String { get }

    /// A one-line reason for an error of this driver's library, for ``StoreError/unavailable(_:)``:
    /// what failed, without passwords or internals.
    func reason(for error: any Error) -> String
}
