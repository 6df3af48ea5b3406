import Foundation

/// ISO 8601 timestamps in UTC with milliseconds (`2026-11-27T10:00:00.123Z`): the one form
/// Chorus writes, in the Redis envelope, in every server message and in `/stats`.
public enum Timestamp {
    private static let style = Date.ISO8601FormatStyle(includingFractionalSeconds: true, timeZone: .gmt)
    private static let styleWithoutFraction = Date.ISO8601FormatStyle(timeZone: .gmt)

    /// `date` rounded to the nearest millisecond.
    ///
    /// `ISO8601FormatStyle` truncates the fraction, and a parsed `…00.132Z` is a `Double` just
    /// below .132 s half of the time: formatted as it is, a timestamp relayed through Redis came
    /// back a millisecond early. Rounding, then formatting a tenth of a millisecond past the
    /// rounded value, writes back exactly the millisecond that was read.
    public static func string(_ date: Date) -> String {
        let milliseconds = (date.timeIntervalSince1970 * 1000).rounded()
        return Date(timeIntervalSince1970: milliseconds / 1000 + 0.0001).formatted(style)
    }

    /// Parses a timestamp with or without a fraction; nil for anything else, including dates
    /// the calendar does not have (`2025-02-31`, `24:00:00`), which the format style would
    /// otherwise roll over into another day.
    public static func date(_ text: String) -> Date? {
        guard let date = (try? style.parse(text)) ?? (try? styleWithoutFraction.parse(text)) else { return nil }
        // Whole seconds are exact in a Date, so the truncating style gives back the seconds read.
        guard date.formatted(styleWithoutFraction).utf8.prefix(19).elementsEqual(text.utf8.prefix(19)) else {
            return nil
        }
        return date
    }
}
