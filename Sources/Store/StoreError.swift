/// What the store reports to its callers; the routes turn each case into an HTTP status
/// (409, 400, 503) and send the description as the message.
public enum StoreError: Error, Equatable, CustomStringConvertible {
    /// The username belongs to another account already.
    case duplicateUsername
    /// A message with the id given to ``NewMessage/id`` is stored already (the client's retry
    /// of a message it posted, or an id used for another).
    case duplicateMessageId
    /// A `before` cursor that no listing handed out.
    case invalidCursor
    /// The database cannot serve the request now: still opening, failed to open, shutting down,
    /// unreachable, or it refused the query. The reason is one line fit for a log or a client;
    /// it never holds a password.
    case unavailable(String)

    public var description: String {
        switch self {
        case .duplicateUsername: "username is already taken"
        case .duplicateMessageId: "a message with this id exists already"
        case .invalidCursor: "invalid cursor: pass a nextCursor from an earlier page"
        case .unavailable(let reason): "store unavailable: \(reason)"
        }
    }
}
