import Foundation
import Testing

@testable import Broker

@Suite("Timestamps: ISO 8601 in UTC with milliseconds")
struct TimestampTests {
    /// Foundation's format style, as Chorus used it before: the reference for what is written.
    static let reference = Date.ISO8601FormatStyle(includingFractionalSeconds: true, timeZone: .gmt)

    @Test("writes what Foundation's ISO 8601 format style writes, to the millisecond, from 1900 to 2200")
    func matchesFoundation() {
        var generator = SystemRandomNumberGenerator()
        let range: ClosedRange<Int64> = -2_208_988_800_000...7_258_118_400_000  // 1900-01-01 ... 2200-01-01
        for _ in 0..<20_000 {
            let milliseconds = Int64.random(in: range, using: &generator)
            let date = Date(timeIntervalSince1970: Double(milliseconds) / 1000)
            // A tenth of a millisecond past the millisecond: the style truncates the fraction.
            let expected = Date(timeIntervalSince1970: Double(milliseconds) / 1000 + 0.0001).formatted(Self.reference)
            #expect(Timestamp.string(date) == expected)
            #expect(Timestamp.date(expected).map { ($0.timeIntervalSince1970 * 1000).rounded() } == Double(milliseconds))
        }
    }

    @Test("days and dates convert both ways across leap years and century rules")
    func calendar() {
        #expect(Timestamp.days(fromYear: 1970, month: 1, day: 1) == 0)
        #expect(Timestamp.days(fromYear: 2000, month: 3, day: 1) == 11_017)
        #expect(Timestamp.days(fromYear: 1969, month: 12, day: 31) == -1)
        for day in Int64(-800_000)...Int64(800_000) where day % 7 == 0 || abs(day) < 1_500 {
            let (year, month, dayOfMonth) = Timestamp.civil(fromDays: day)
            #expect(Timestamp.days(fromYear: year, month: month, day: dayOfMonth) == day)
        }
    }

    @Test("reads a timestamp without a fraction, or with 1 to 9 fraction digits")
    func fractions() {
        #expect(Timestamp.date("2026-12-01T10:00:00Z")?.timeIntervalSince1970 == 1_796_119_200)
        #expect(Timestamp.date("2026-12-01T10:00:00.5Z")?.timeIntervalSince1970 == 1_796_119_200.5)
        #expect(Timestamp.date("2026-12-01T10:00:00.125000000Z")?.timeIntervalSince1970 == 1_796_119_200.125)
        #expect(Timestamp.date("2024-02-29T23:59:59.999Z") != nil)
    }

    @Test(
        "refuses anything else, and dates the calendar does not have",
        arguments: [
            "", "2026-12-01", "2026-12-01T10:00:00", "2026-12-01T10:00:00z", "2026-12-01t10:00:00Z",
            "2026-12-01T10:00:00+00:00", "2026-12-01T10:00:00.Z", "2026-12-01T10:00:00.1234567890Z",
            "2026-12-01T10:00:00,123Z", "2026-12-01 10:00:00Z", "2026-12-1T10:00:00.123Z", "+026-12-01T10:00:00Z",
            "2025-02-29T12:00:00Z", "2100-02-29T12:00:00Z", "2025-04-31T12:00:00Z", "2025-00-10T12:00:00Z",
            "2025-01-00T12:00:00Z", "2025-01-01T24:00:00Z", "2025-01-01T23:60:00Z", "2025-01-01T23:59:60Z",
            "2025-01-01T12:00:00.12aZ", "２025-01-01T12:00:00Z",
        ])
    func refuses(text: String) {
        #expect(Timestamp.date(text) == nil)
    }
}
