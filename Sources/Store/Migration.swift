/// One step of the schema, in both dialects.
///
/// Migrations are applied in order of ``version`` at start, each recorded in `schema_migrations`,
/// all in one transaction: a node sees either the old schema or the whole new one. Once
/// released, a migration is never edited; a change to the schema is a new migration appended
/// to ``all``.
struct Migration: Sendable {
    let version: Int
    /// What it does, for the log.
    let name: String
    /// SQLite statements, run one by one.
    let sqlite: [String]
    /// PostgreSQL statements, run one by one.
    let postgres: [String]

    /// Every migration, oldest first.
    static let all: [Migration] = [
        Migration(
            version: 1,
            name: "users and messages",
            sqlite: [
                """
                CREATE TABLE users (
                    id TEXT PRIMARY KEY NOT NULL,
                    username TEXT NOT NULL,
                    password_hash TEXT NOT NULL,
                    created_at INTEGER NOT NULL
                )
                """,
                // BINARY collation: case-sensitive, like PostgreSQL's default.
                "CREATE UNIQUE INDEX users_username ON users (username)",
                """
                CREATE TABLE messages (
                    seq INTEGER PRIMARY KEY AUTOINCREMENT,
                    id TEXT NOT NULL UNIQUE,
                    author_id TEXT NOT NULL,
                    topic TEXT,
                    recipient_id TEXT,
                    peer_low TEXT,
                    peer_high TEXT,
                    content TEXT NOT NULL,
                    metadata TEXT,
                    created_at INTEGER NOT NULL,
                    updated_at INTEGER
                )
                """,
                "CREATE INDEX messages_topic ON messages (topic, seq) WHERE topic IS NOT NULL",
                "CREATE INDEX messages_conversation ON messages (peer_low, peer_high, seq) WHERE peer_low IS NOT NULL",
            ],
            postgres: [
                """
                CREATE TABLE users (
                    id TEXT PRIMARY KEY,
                    username TEXT NOT NULL,
                    password_hash TEXT NOT NULL,
                    created_at BIGINT NOT NULL
                )
                """,
                "CREATE UNIQUE INDEX users_username ON users (username)",
                """
                CREATE TABLE messages (
                    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                    id TEXT NOT NULL UNIQUE,
                    author_id TEXT NOT NULL,
                    topic TEXT,
                    recipient_id TEXT,
                    peer_low TEXT,
                    peer_high TEXT,
                    content TEXT NOT NULL,
                    metadata TEXT,
                    created_at BIGINT NOT NULL,
                    updated_at BIGINT
                )
                """,
                "CREATE INDEX messages_topic ON messages (topic, seq) WHERE topic IS NOT NULL",
                "CREATE INDEX messages_conversation ON messages (peer_low, peer_high, seq) WHERE peer_low IS NOT NULL",
            ]
        ),
    ]

    /// The table that records which versions are applied (made before any migration runs).
    static let sqliteVersionTable = """
        CREATE TABLE IF NOT EXISTS schema_migrations (
            version INTEGER PRIMARY KEY NOT NULL,
            name TEXT NOT NULL,
            applied_at INTEGER NOT NULL
        )
        """
    static let postgresVersionTable = """
        CREATE TABLE IF NOT EXISTS schema_migrations (
            version INTEGER PRIMARY KEY,
            name TEXT NOT NULL,
            applied_at BIGINT NOT NULL
        )
        """
}
