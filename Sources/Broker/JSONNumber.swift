/// A JSON number as its text: what a client wrote (`12345678901234567890`, `1E+2`, `-0`), kept
/// exactly, so echoing it never rounds it through a `Double`.
///
/// Two numbers are equal when their texts are: `1` and `1.0` are different texts.
public struct JSONNumber: Sendable, Hashable, CustomStringConvertible, ExpressibleByIntegerLiteral, ExpressibleByFloatLiteral {
    /// The number in JSON syntax.
    public let text: String

    /// Wraps text ``JSONParser`` has checked.
    init(unchecked text: String) {
        self.text = text
    }

    public init(_ value: some BinaryInteger) {
        text = String(value)
    }

    /// A finite `Double`: integers below 2^53 without a fraction, others in Swift's shortest
    /// round-trip form (`1.5`, `1e-07`), which is valid JSON. Nil for NaN and infinities.
    public init?(_ value: Double) {
        guard value.isFinite else { return nil }
        if value.rounded() == value, abs(value) < 9_007_199_254_740_992 {
            text = String(Int64(value))
        } else {
            text = String(value)
        }
    }

    public init(integerLiteral value: Int) {
        self.init(value)
    }

    public init(floatLiteral value: Double) {
        self = JSONNumber(value) ?? 0
    }

    /// The nearest `Double` (±infinity past its range).
    public var doubleValue: Double { Double(text) ?? .nan }

    /// The value as an `Int` when the text is a whole number in its range, else nil.
    public var intValue: Int? { Int(text) }

    public var description: String { text }
}
