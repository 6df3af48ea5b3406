import SQLiteNIO

/// Read receipts on SQLite: ``ReadReceiptDatabase`` runs ``ReadReceiptSQL``'s statements with
/// `?n` parameters on the shared connection.
extension SQLiteRepository: ReadReceiptDatabase {
    func rows(_ sql: String, _ binds: [ReadReceiptSQL.Value]) async throws -> [ReadReceiptRow] {
        let data = binds.map { value -> SQLiteData in
            switch value {
            case .text(let text): Self.text(text)
            case .integer(let number): .integer(SQLiteInt64(number))
            }
        }
        return try await connection.query(ReadReceiptSQL.sqlite(sql), data).map { row in
            var values: [String: ReadReceiptSQL.Value] = [:]
            for column in row.columns {
                switch column.data {
                case .integer(let number): values[column.name] = .integer(Int64(number))
                case .text(let text): values[column.name] = .text(text)
                case .float(let number): values[column.name] = .integer(Int64(number))
                case .blob, .null: values[column.name] = .text(nil)
                }
            }
            return ReadReceiptRow(values: values)
        }
    }
}
