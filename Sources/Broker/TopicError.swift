/// Why a string is not a valid ``Topic`` or ``TopicPattern``.
///
/// Each case carries the offending value, and ``description`` is one sentence a client can
/// act on; it is what reaches the log, the HTTP body or the WebSocket `error` message.
/// Names are echoed only after the length check passed, so a description stays short.
public enum TopicError: Error, Equatable, CustomStringConvertible {
    /// The name is the empty string.
    case empty
    /// The name is longer than ``Topic/maxLength`` UTF-8 bytes.
    case tooLong(length: Int)
    /// The name has more than ``Topic/maxDepth`` segments.
    case tooDeep(depth: Int)
    /// The name starts or ends with a dot, or has two dots in a row.
    case emptySegment(String)
    /// A segment holds something other than ASCII letters, digits, `_`, `-` or `:`.
    case illegalCharacter(Character, in: String)
    /// A concrete topic (one that is published to) contains `*`.
    case wildcardInTopic(String)
    /// A pattern has `*` inside a segment (`a*`, `***`) instead of a whole `*` or `**` segment.
    case partialWildcard(String)

    public var description: String {
        switch self {
        case .empty:
            "topic is empty: use dot-separated segments such as 'chat.room-1'"
        case .tooLong(let length):
            "topic is \(length) bytes long: the limit is \(Topic.maxLength) bytes of UTF-8"
        case .tooDeep(let depth):
            "topic has \(depth) segments: the limit is \(Topic.maxDepth) dot-separated segments"
        case .emptySegment(let name):
            "topic '\(Self.printable(name))' has an empty segment: segments are separated by single dots, with none at the start or end"
        case .illegalCharacter(let character, let name):
            "topic '\(Self.printable(name))' contains \(Self.describe(character)): segments may contain only ASCII letters, digits, '_', '-' and ':'"
        case .wildcardInTopic(let name):
            "topic '\(Self.printable(name))' contains a wildcard: '*' and '**' are for subscriptions; publishing, presence and typing need a concrete topic"
        case .partialWildcard(let text):
            "pattern '\(Self.printable(text))' has '*' inside a segment: a wildcard is a whole segment, '*' for exactly one segment or '**' for one or more"
        }
    }

    /// The character and its code points, so that invisible or look-alike characters can be found.
    private static func describe(_ character: Character) -> String {
        let codePoints = character.unicodeScalars.map { "U+" + hex($0.value) }.joined(separator: " ")
        return "'\(printable(String(character)))' (\(codePoints))"
    }

    /// The text with control and other invisible scalars escaped, so one error stays one log line.
    private static func printable(_ text: String) -> String {
        var result = ""
        for scalar in text.unicodeScalars {
            switch scalar.properties.generalCategory {
            case .control, .format, .lineSeparator, .paragraphSeparator, .surrogate, .privateUse, .unassigned:
                result += "\\u{\(hex(scalar.value))}"
            default:
                result.unicodeScalars.append(scalar)
            }
        }
        return result
    }

    private static func hex(_ value: UInt32) -> String {
        let digits = String(value, radix: 16, uppercase: true)
        return String(repeating: "0", count: max(0, 4 - digits.count)) + digits
    }
}
