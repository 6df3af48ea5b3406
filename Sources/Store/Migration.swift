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
        Migration(
            version: 2,
            name: "read receipts",
            sqlite: [
                """
                CREATE TABLE read_receipts (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    user_id TEXT NOT NULL,
                    topic TEXT,
                    peer_low TEXT,
                    peer_high TEXT,
                    last_read_seq INTEGER NOT NULL,
                    message_id TEXT,
                    read_at INTEGER
                )
                """,
            ] + readReceiptIndexes + readReceiptBackfill,
            postgres: [
                """
                CREATE TABLE read_receipts (
                    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                    user_id TEXT NOT NULL,
                    topic TEXT,
                    peer_low TEXT,
                    peer_high TEXT,
                    last_read_seq BIGINT NOT NULL,
                    message_id TEXT,
                    read_at BIGINT
                )
                """,
            ] + readReceiptIndexes + readReceiptBackfill
        ),
        Migration(
            version: 3,
            name: "ids of deleted messages",
            // A client may post again with the id it chose (``NewMessage/id``); after a delete
            // that id must stay taken, or a late retry (or another user) would store it again.
            sqlite: ["CREATE TABLE deleted_messages (id TEXT PRIMARY KEY NOT NULL, author_id TEXT NOT NULL, deleted_at INTEGER NOT NULL)"],
            postgres: ["CREATE TABLE deleted_messages (id TEXT PRIMARY KEY, author_id TEXT NOT NULL, deleted_at BIGINT NOT NULL)"]
        ),
        Migration(
            version: 4,
            name: "messages and deleted ids by age",
            // ``StoreConfiguration/messageRetention`` deletes messages created, and frees the ids
            // of messages deleted, longest ago first, reading only what it deletes: not the
            // whole table when nothing is old, and not stopped by a young row stored early (a
            // node whose clock was ahead).
            sqlite: Self.byAge,
            postgres: Self.byAge
        ),
    ]

    /// Migration 4, the same in both dialects.
    private static let byAge = [
        "CREATE INDEX messages_created_at ON messages (created_at)",
        "CREATE INDEX deleted_messages_deleted_at ON deleted_messages (deleted_at)",
    ]

    /// The same in both dialects: one member per topic or direct conversation, its rows found by
    /// conversation (furthest reader first, for the listing) and by user.
    private static let readReceiptIndexes = [
        "CREATE UNIQUE INDEX read_receipts_topic ON read_receipts (topic, user_id) WHERE topic IS NOT NULL",
        "CREATE UNIQUE INDEX read_receipts_direct ON read_receipts (peer_low, peer_high, user_id) WHERE peer_low IS NOT NULL",
        "CREATE INDEX read_receipts_topic_position ON read_receipts (topic, last_read_seq) WHERE topic IS NOT NULL",
        "CREATE INDEX read_receipts_user ON read_receipts (user_id)",
    ]

    /// Members for the messages stored before receipts existed, with that history read: the
    /// authors of a topic, up to their own newest message there; both users of a direct
    /// conversation, up to its newest message. (Same SQL in both dialects.)
    private static let readReceiptBackfill = [
        """
        INSERT INTO read_receipts (user_id, topic, last_read_seq, message_id, read_at)
        SELECT latest.author_id, latest.topic, m.seq, m.id, m.created_at
        FROM (SELECT author_id, topic, MAX(seq) AS seq FROM messages WHERE topic IS NOT NULL GROUP BY author_id, topic) latest
        JOIN messages m ON m.seq = latest.seq
        """,
        """
        INSERT INTO read_receipts (user_id, peer_low, peer_high, last_read_seq, message_id, read_at)
        SELECT CASE side.n WHEN 0 THEN latest.peer_low ELSE latest.peer_high END, latest.peer_low, latest.peer_high,
               m.seq, m.id, m.created_at
        FROM (SELECT peer_low, peer_high, MAX(seq) AS seq FROM messages
              WHERE peer_low IS NOT NULL AND topic IS NULL GROUP BY peer_low, peer_high) latest
        JOIN messages m ON m.seq = latest.seq
        CROSS JOIN (SELECT 0 AS n UNION ALL SELECT 1) side
        WHERE side.n = 0 OR latest.peer_low <> latest.peer_high
        """,
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
