import Foundation

/// Which database a node uses, parsed from `DATABASE_URL`.
///
/// - `sqlite:PATH`: a SQLite file, relative to the working directory or absolute;
///   `sqlite://PATH` means the same (so `sqlite:///var/lib/chorus.db` is absolute).
/// - `sqlite::memory:`: a SQLite database in memory, gone when the store stops.
/// - `postgres://user:password@host:port/database` (or `postgresql://`), with an optional
///   `?sslmode=disable|prefer|require` (default `disable`). The port defaults to 5432 and the
///   password may be left out; percent-encode `@`, `:`, `/` and `%` in the user or password.
public enum DatabaseURL: Sendable, Equatable, CustomStringConvertible {
    case sqliteFile(String)
    case sqliteMemory
    case postgres(PostgresSettings)

    /// Throws ``DatabaseURLError`` naming what is wrong.
    public init(parsing text: String) throws {
        let text = text.trimmingCharacters(in: .whitespaces)
        guard !text.isEmpty else { throw DatabaseURLError.empty }
        guard let colon = text.firstIndex(of: ":") else { throw DatabaseURLError.unsupportedScheme(text) }
        let scheme = text[..<colon].lowercased()
        let rest = text[text.index(after: colon)...]
        switch scheme {
        case "sqlite":
            self = try Self.sqlite(rest)
        case "postgres", "postgresql":
            self = .postgres(try Self.postgres(rest))
        default:
            throw DatabaseURLError.unsupportedScheme(String(text[..<colon]))
        }
    }

    public var description: String {
        switch self {
        case .sqliteFile(let path): "sqlite:\(path)"
        case .sqliteMemory: "sqlite::memory:"
        case .postgres(let settings): settings.description
        }
    }

    private static func sqlite(_ rest: Substring) throws -> DatabaseURL {
        if rest == ":memory:" || rest == "//:memory:" { return .sqliteMemory }
        let path = rest.hasPrefix("//") ? rest.dropFirst(2) : rest
        guard !path.isEmpty else { throw DatabaseURLError.missingSQLitePath }
        return .sqliteFile(String(path))
    }

    private static func postgres(_ rest: Substring) throws -> PostgresSettings {
        guard rest.hasPrefix("//") else { throw DatabaseURLError.missingSlashes }
        var remainder = rest.dropFirst(2)

        var query: Substring = ""
        if let mark = remainder.firstIndex(of: "?") {
            query = remainder[remainder.index(after: mark)...]
            remainder = remainder[..<mark]
        }
        // The user info ends at the last '@' before the path: a password may hold an unencoded '@'.
        let pathStart = remainder.lastIndex(of: "@").flatMap { at in remainder[at...].firstIndex(of: "/") }
            ?? remainder.firstIndex(of: "/")
        var databasePart: Substring = ""
        var authority = remainder
        if let slash = pathStart {
            databasePart = remainder[remainder.index(after: slash)...]
            authority = remainder[..<slash]
        }

        guard let at = authority.lastIndex(of: "@") else { throw DatabaseURLError.missingUsername }
        let userInfo = authority[..<at]
        let hostPort = authority[authority.index(after: at)...]
        let userPart: Substring
        var password: String?
        if let separator = userInfo.firstIndex(of: ":") {
            userPart = userInfo[..<separator]
            password = try decode(userInfo[userInfo.index(after: separator)...], part: "password")
        } else {
            userPart = userInfo
        }
        let username = try decode(userPart, part: "user name")
        guard !username.isEmpty else { throw DatabaseURLError.missingUsername }

        let (host, port) = try hostAndPort(hostPort)
        let database = try decode(databasePart, part: "database name")
        guard !database.isEmpty else { throw DatabaseURLError.missingDatabase }
        guard !database.contains("/") else { throw DatabaseURLError.invalidDatabase(database) }

        var sslMode = PostgresSettings.SSLMode.disable
        for parameter in query.split(separator: "&") where !parameter.isEmpty {
            let pair = parameter.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let name = String(pair[0])
            let value = pair.count > 1 ? String(pair[1]) : ""
            guard name == "sslmode" else { throw DatabaseURLError.unknownParameter(name) }
            guard let mode = PostgresSettings.SSLMode(rawValue: value) else { throw DatabaseURLError.invalidSSLMode(value) }
            sslMode = mode
        }
        return PostgresSettings(host: host, port: port, username: username, password: password, database: database, sslMode: sslMode)
    }

    private static func hostAndPort(_ text: Substring) throws -> (String, Int) {
        var host: Substring
        var portText: Substring?
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { throw DatabaseURLError.invalidHost(String(text)) }
            host = text[text.index(after: text.startIndex)..<close]
            let after = text[text.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":") else { throw DatabaseURLError.invalidHost(String(text)) }
                portText = after.dropFirst()
            }
        } else if let colon = text.lastIndex(of: ":") {
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
        } else {
            host = text
        }
        guard !host.isEmpty else { throw DatabaseURLError.missingHost }
        var port = 5432
        if let portText {
            guard let number = Int(portText), (1...65_535).contains(number) else {
                throw DatabaseURLError.invalidPort(String(portText))
            }
            port = number
        }
        return (String(host), port)
    }

    private static func decode(_ text: Substring, part: String) throws -> String {
        guard let decoded = String(text).removingPercentEncoding else {
            throw DatabaseURLError.invalidPercentEncoding(part: part)
        }
        return decoded
    }
}
