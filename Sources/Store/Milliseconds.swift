import Foundation

/// Timestamps as the databases store them: whole milliseconds since 1970 in a 64-bit integer.
///
/// Integers compare, sort and index the same in SQLite and PostgreSQL (SQLite has no date type),
/// and a `Date` made from one is exactly the `Date` read back later, so a stored value equals
/// the one returned when it was created.
enum Milliseconds {
    /// Now, truncated to the millisecond.
    static func now() -> Int64 { of(Date()) }

    /// `date`, truncated to the millisecond.
    static func of(_ date: Date) -> Int64 { Int64((date.timeIntervalSince1970 * 1000).rounded(.down)) }

    static func date(_ milliseconds: Int64) -> Date { Date(timeIntervalSince1970: Double(milliseconds) / 1000) }
}
