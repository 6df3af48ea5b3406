import PostgresNIO

/// Read receipts on PostgreSQL: ``ReadReceiptDatabase`` runs ``ReadReceiptSQL``'s statements,
/// whose `$n` parameters are PostgreSQL's own, on a pooled connection.
extension PostgresRepository: ReadReceiptDatabase {
    func rows(_ sql: String, _ binds: [ReadReceiptSQL.Value]) async throws -> [ReadReceiptRow] {
        var rows: [ReadReceiptRow] = []
        for try await row in try await client.query(Self.query(sql, binds), logger: logger) {
            var values: [String: ReadReceiptSQL.Value] = [:]
            for cell in row {
                if cell.bytes == nil {
                    values[cell.columnName] = .text(nil)
                } else if [.int2, .int4, .int8].contains(cell.dataType) {
                    values[cell.columnName] = .integer(try cell.decode(Int64.self))
                } else {
                    values[cell.columnName] = .text(try cell.decode(String.self))
                }
            }
            rows.append(ReadReceiptRow(values: values))
        }
        return rows
    }

    /// `sql` with its parameters bound, for PostgreSQL.
    static func query(_ sql: String, _ binds: [ReadReceiptSQL.Value]) -> PostgresQuery {
        var bindings = PostgresBindings(capacity: binds.count)
        for bind in binds {
            switch bind {
            case .text(let text): bindings.append(text)
            case .integer(let number): bindings.append(number)
            }
        }
        return PostgresQuery(unsafeSQL: sql, binds: bindings)
    }
}
