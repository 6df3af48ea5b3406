/// The statements of read receipts and conversation listings, written once for both dialects:
/// parameters are `$1`, `$2`, ... (PostgreSQL's form; SQLite reads them as `?1`, `?2`, ...,
/// see ``sqlite(_:)``), and everything else is SQL both databases accept (`ON CONFLICT` on a
/// partial unique index, `RETURNING`, common table expressions).
///
/// A conversation is a topic (`topic`) or a pair of users (`peer_low`, `peer_high`, ordered as
/// ``ConversationKey``); `read_receipts` has one row per member, holding the sequence number of
/// the last message read (`last_read_seq`, 0 before any) and that message's id.
enum ReadReceiptSQL {
    /// A statement's parameter, in either dialect.
    enum Value: Sendable {
        case text(String?)
        case integer(Int64)
    }

    /// `sql` with `$n` written `?n`, SQLite's numbered parameters.
    static func sqlite(_ sql: String) -> String { sql.replacingOccurrences(of: "$", with: "?") }

    /// The message with id `$1`, with its conversation's columns.
    static let message = """
        SELECT seq, id, author_id, topic, recipient_id, peer_low, peer_high, content, metadata, created_at, updated_at
        FROM messages WHERE id = $1
        """

    /// Moves user `$1`'s position in topic `$2` to message `$4` (sequence `$3`) read at `$5`,
    /// only forward; returns a row only when it moved.
    static let advanceInTopic = """
        INSERT INTO read_receipts (user_id, topic, last_read_seq, message_id, read_at) VALUES ($1, $2, $3, $4, $5)
        ON CONFLICT (topic, user_id) WHERE topic IS NOT NULL DO UPDATE
        SET last_read_seq = excluded.last_read_seq, message_id = excluded.message_id, read_at = excluded.read_at
        WHERE excluded.last_read_seq > read_receipts.last_read_seq
        RETURNING last_read_seq
        """

    /// The same in the direct conversation `$2`, `$3`; sequence `$4`, message `$5`, at `$6`.
    static let advanceInDirect = """
        INSERT INTO read_receipts (user_id, peer_low, peer_high, last_read_seq, message_id, read_at)
        VALUES ($1, $2, $3, $4, $5, $6)
        ON CONFLICT (peer_low, peer_high, user_id) WHERE peer_low IS NOT NULL DO UPDATE
        SET last_read_seq = excluded.last_read_seq, message_id = excluded.message_id, read_at = excluded.read_at
        WHERE excluded.last_read_seq > read_receipts.last_read_seq
        RETURNING last_read_seq
        """

    /// User `$2`'s position in topic `$1`.
    static let positionInTopic = """
        SELECT message_id, read_at FROM read_receipts WHERE topic = $1 AND user_id = $2
        """

    /// User `$3`'s position in the direct conversation `$1`, `$2`.
    static let positionInDirect = """
        SELECT message_id, read_at FROM read_receipts WHERE peer_low = $1 AND peer_high = $2 AND user_id = $3
        """

    /// The members of topic `$1` other than `$2` who have read something, furthest first, at most `$3`.
    static let readersInTopic = """
        SELECT user_id, message_id, read_at FROM read_receipts
        WHERE topic = $1 AND user_id <> $2 AND message_id IS NOT NULL
        ORDER BY last_read_seq DESC LIMIT $3
        """

    /// The same in the direct conversation `$1`, `$2`, other than `$3`, at most `$4`.
    static let readersInDirect = """
        SELECT user_id, message_id, read_at FROM read_receipts
        WHERE peer_low = $1 AND peer_high = $2 AND user_id <> $3 AND message_id IS NOT NULL
        ORDER BY last_read_seq DESC LIMIT $4
        """

    /// One page of user `$1`'s conversations, newest activity first, after the cursor
    /// (`$2` newest sequence, `$3` receipt id), at most `$4`: each with the member's position,
    /// unread count and newest message.
    ///
    /// Per conversation, every lookup is on an index: the newest message is the last entry of
    /// `messages_topic (topic, seq)` or `messages_conversation (peer_low, peer_high, seq)`, and
    /// the unread count counts that index's entries above `last_read_seq`, so it costs the
    /// unread messages, not the conversation's length. One of the two sub-queries of each pair
    /// finds nothing at once (a topic row has no peers, a direct one no topic). The listing
    /// sorts the user's conversations by their newest message, one index probe each.
    /// The messages of a conversation (`conversation`, a condition on `m`) after the page's
    /// read position, counted up to ``ConversationSummary/maximumUnreadCount``: whether the
    /// entry that many places on exists is one index probe; only a count under it is counted,
    /// so a listing costs at most that many index entries per conversation, however far
    /// behind its member is.
    static func unreadCount(among conversation: String) -> String {
        let most = ConversationSummary.maximumUnreadCount
        let after = "FROM messages m WHERE \(conversation) AND m.seq > page.last_read_seq"
        return """
            (CASE WHEN EXISTS (SELECT 1 \(after) ORDER BY m.seq LIMIT 1 OFFSET \(most - 1)) THEN \(most)
             ELSE (SELECT COUNT(*) \(after)) END)
            """
    }

    static let conversations = """
        WITH mine AS MATERIALIZED (
            SELECT r.id, r.topic, r.peer_low, r.peer_high, r.last_read_seq, r.message_id, r.read_at,
                   COALESCE(
                       (SELECT m.seq FROM messages m WHERE m.topic = r.topic ORDER BY m.seq DESC LIMIT 1),
                       (SELECT m.seq FROM messages m WHERE m.peer_low = r.peer_low AND m.peer_high = r.peer_high
                        ORDER BY m.seq DESC LIMIT 1),
                       0) AS newest_seq
            FROM read_receipts r WHERE r.user_id = $1
        ), page AS (
            SELECT * FROM mine WHERE newest_seq < $2 OR (newest_seq = $2 AND id < $3)
            ORDER BY newest_seq DESC, id DESC LIMIT $4
        )
        SELECT page.id AS receipt_id, page.topic AS conversation_topic, page.peer_low AS conversation_low,
               page.peer_high AS conversation_high, page.message_id AS read_message_id, page.read_at AS read_at,
               page.newest_seq AS newest_seq,
               \(unreadCount(among: "m.topic = page.topic"))
               + \(unreadCount(among: "m.peer_low = page.peer_low AND m.peer_high = page.peer_high"))
                   AS unread,
               last.seq AS seq, last.id AS id, last.author_id AS author_id, last.topic AS topic,
               last.recipient_id AS recipient_id, last.content AS content, last.metadata AS metadata,
               last.created_at AS created_at, last.updated_at AS updated_at
        FROM page LEFT JOIN messages last ON last.seq = page.newest_seq
        ORDER BY page.newest_seq DESC, page.id DESC
        """

    /// Records the members of message `$1`'s conversation once it is stored: its author, who has
    /// read it (forward only), and for a direct message its recipient, a member with nothing read
    /// yet unless they are one already. Each statement does nothing where it does not apply.
    static let recordMembers = [
        """
        INSERT INTO read_receipts (user_id, topic, last_read_seq, message_id, read_at)
        SELECT author_id, topic, seq, id, created_at FROM messages WHERE id = $1 AND topic IS NOT NULL
        ON CONFLICT (topic, user_id) WHERE topic IS NOT NULL DO UPDATE
        SET last_read_seq = excluded.last_read_seq, message_id = excluded.message_id, read_at = excluded.read_at
        WHERE excluded.last_read_seq > read_receipts.last_read_seq
        """,
        """
        INSERT INTO read_receipts (user_id, peer_low, peer_high, last_read_seq, message_id, read_at)
        SELECT author_id, peer_low, peer_high, seq, id, created_at FROM messages
        WHERE id = $1 AND topic IS NULL AND peer_low IS NOT NULL
        ON CONFLICT (peer_low, peer_high, user_id) WHERE peer_low IS NOT NULL DO UPDATE
        SET last_read_seq = excluded.last_read_seq, message_id = excluded.message_id, read_at = excluded.read_at
        WHERE excluded.last_read_seq > read_receipts.last_read_seq
        """,
        """
        INSERT INTO read_receipts (user_id, peer_low, peer_high, last_read_seq)
        SELECT recipient_id, peer_low, peer_high, 0 FROM messages
        WHERE id = $1 AND topic IS NULL AND peer_low IS NOT NULL AND recipient_id <> author_id
        ON CONFLICT (peer_low, peer_high, user_id) WHERE peer_low IS NOT NULL DO NOTHING
        """,
    ]
}
