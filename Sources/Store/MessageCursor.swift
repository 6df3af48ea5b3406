/// A position in the message sequence, as handed to clients in ``MessagePage/nextCursor``.
///
/// Every message gets a sequence number from the database when it is stored (SQLite's
/// `AUTOINCREMENT`, a PostgreSQL identity column): it only grows, is never reused, and does not
/// depend on clocks, so listing "older than the cursor" neither skips nor repeats a message when
/// others arrive between two pages. The text form is `c` and the number in base 36; the prefix
/// lets the format change later without old cursors being misread.
struct MessageCursor: Equatable {
    /// Messages strictly below this sequence number come next.
    let sequence: Int64

    init(sequence: Int64) { self.sequence = sequence }

    /// Throws ``StoreError/invalidCursor`` for text no listing produced.
    init(parsing text: String) throws {
        guard text.hasPrefix("c"), text.count <= 14, let sequence = Int64(text.dropFirst(), radix: 36), sequence > 0,
              text == MessageCursor(sequence: sequence).text
        else { throw StoreError.invalidCursor }
        self.sequence = sequence
    }

    var text: String { "c" + String(sequence, radix: 36) }
}
