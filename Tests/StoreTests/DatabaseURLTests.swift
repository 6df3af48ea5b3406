import Store
import Testing

@Suite("DATABASE_URL")
struct DatabaseURLTests {
    @Test(
        "the documented forms parse",
        arguments: [
            ("sqlite::memory:", DatabaseURL.sqliteMemory),
            ("sqlite:chorus.db", .sqliteFile("chorus.db")),
            ("sqlite:data/chorus.db", .sqliteFile("data/chorus.db")),
            ("sqlite:/var/lib/chorus/chorus.db", .sqliteFile("/var/lib/chorus/chorus.db")),
            ("sqlite:///var/lib/chorus/chorus.db", .sqliteFile("/var/lib/chorus/chorus.db")),
            ("sqlite://chorus.db", .sqliteFile("chorus.db")),
            ("  sqlite:chorus.db  ", .sqliteFile("chorus.db")),
            (
                "postgres://chorus:secret@db.internal:6543/chat",
                .postgres(PostgresSettings(host: "db.internal", port: 6543, username: "chorus", password: "secret", database: "chat"))
            ),
            (
                "postgresql://chorus@localhost/chat",
                .postgres(PostgresSettings(host: "localhost", port: 5432, username: "chorus", password: nil, database: "chat"))
            ),
            (
                "postgres://app:p%40ss%3Aw%2Frd@10.0.0.5:5432/chat?sslmode=require",
                .postgres(PostgresSettings(
                    host: "10.0.0.5", port: 5432, username: "app", password: "p@ss:w/rd", database: "chat", sslMode: .require))
            ),
            (
                "postgres://app:pw@[::1]:5433/chat?sslmode=prefer",
                .postgres(PostgresSettings(host: "::1", port: 5433, username: "app", password: "pw", database: "chat", sslMode: .prefer))
            ),
            (
                "POSTGRES://app:@host/db?sslmode=disable",
                .postgres(PostgresSettings(host: "host", username: "app", password: "", database: "db", sslMode: .disable))
            ),
        ])
    func parses(_ text: String, _ expected: DatabaseURL) throws {
        #expect(try DatabaseURL(parsing: text) == expected)
    }

    @Test(
        "a bad DATABASE_URL gives one clear line",
        arguments: [
            ("", "DATABASE_URL: empty; expected sqlite:PATH, sqlite::memory: or postgres://"),
            ("chorus.db", "DATABASE_URL: unsupported scheme 'chorus.db'"),
            ("mysql://root@localhost/chat", "DATABASE_URL: unsupported scheme 'mysql'"),
            ("sqlite:", "DATABASE_URL: sqlite: needs a file path"),
            ("sqlite://", "DATABASE_URL: sqlite: needs a file path"),
            ("postgres:localhost/chat", "DATABASE_URL: expected postgres://user:password@host:port/database"),
            ("postgres://localhost:5432/chat", "DATABASE_URL: the user name is missing"),
            ("postgres://:pw@localhost/chat", "DATABASE_URL: the user name is missing"),
            ("postgres://app:pw@/chat", "DATABASE_URL: the host is missing"),
            ("postgres://app:pw@localhost:5432", "DATABASE_URL: the database name is missing"),
            ("postgres://app:pw@localhost:5432/", "DATABASE_URL: the database name is missing"),
            ("postgres://app:pw@localhost/chat/more", "DATABASE_URL: 'chat/more' is not a database name"),
            ("postgres://app:pw@localhost:port/chat", "DATABASE_URL: expected a port in 1...65535, got 'port'"),
            ("postgres://app:pw@localhost:70000/chat", "DATABASE_URL: expected a port in 1...65535, got '70000'"),
            ("postgres://app:pw@localhost:0/chat", "DATABASE_URL: expected a port in 1...65535, got '0'"),
            ("postgres://app:pw@[::1/chat", "DATABASE_URL: malformed host '[::1'"),
            ("postgres://app:pw@localhost/chat?sslmode=verify-full", "DATABASE_URL: expected sslmode=disable, prefer or require, got 'verify-full'"),
            ("postgres://app:pw@localhost/chat?timeout=5", "DATABASE_URL: unknown parameter 'timeout'; only sslmode is supported"),
            ("postgres://app:p%zz@localhost/chat", "DATABASE_URL: bad percent-encoding in the password"),
        ])
    func refuses(_ text: String, _ expected: String) {
        do {
            let parsed = try DatabaseURL(parsing: text)
            Issue.record("'\(text)' parsed as \(parsed)")
        } catch {
            let description = "\(error)"
            #expect(description.hasPrefix(expected), "got: \(description)")
            #expect(!description.contains("\n"), "one line")
        }
    }

    @Test("no error message and no description shows the password")
    func passwordsStayHidden() throws {
        for text in ["postgres://app:hunter2@localhost:99999/chat", "postgres://app:hunter2@localhost/chat?sslmode=maybe"] {
            #expect(throws: DatabaseURLError.self) { try DatabaseURL(parsing: text) }
            do { _ = try DatabaseURL(parsing: text) } catch { #expect(!"\(error)".contains("hunter2")) }
        }
        let parsed = try DatabaseURL(parsing: "postgres://app:hunter2@localhost/chat")
        #expect("\(parsed)" == "postgres://app:***@localhost:5432/chat?sslmode=disable")
    }
}
