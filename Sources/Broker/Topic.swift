/// A concrete topic that messages are published to, such as `chat.room-1.typing`.
///
/// A topic is one to ``maxDepth`` segments separated by single dots; each segment is one or
/// more ASCII letters, digits, `_`, `-` or `:`, and the whole name is at most ``maxLength``
/// UTF-8 bytes. Because the alphabet is this small, no client string can carry Redis glob
/// syntax (`*`, `?`, `[`, `]`, `\`) or whitespace into a Redis command, and a topic never
/// contains `*`: wildcards belong to ``TopicPattern``.
///
/// A `Topic` is always valid: the only ways to make one are ``init(_:)`` and decoding, and
/// both validate. It encodes as a single JSON string.
public struct Topic: Hashable, Sendable, CustomStringConvertible, Codable {
    /// The most UTF-8 bytes a topic or pattern may have.
    public static let maxLength = 255
    /// The most segments a topic or pattern may have.
    public static let maxDepth = 16

    /// The name as the client wrote it.
    public let name: String

    /// Validates `name` as a concrete topic.
    public init(_ name: String) throws(TopicError) {
        try Self.validate(name, allowingWildcards: false)
        self.name = name
    }

    /// Wraps a name that has already been validated (by ``TopicPattern``, for instance).
    init(unchecked name: String) {
        self.name = name
    }

    /// The dot-separated segments, in order; never empty, and no segment is empty.
    public var segments: [Substring] {
        name.split(separator: ".")
    }

    public var description: String { name }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let name = try container.decode(String.self)
        do {
            try self.init(name)
        } catch {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: error.description)
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(name)
    }
}

extension Topic {
    /// Checks the syntax shared by topics and patterns, reporting the first problem found.
    ///
    /// With `allowingWildcards`, a segment may also be exactly `*` or `**`. The scan works on
    /// UTF-8 bytes, which is exact here: every allowed character is a single ASCII byte.
    static func validate(_ text: String, allowingWildcards: Bool) throws(TopicError) {
        let bytes = text.utf8
        guard !bytes.isEmpty else { throw .empty }
        guard bytes.count <= maxLength else { throw .tooLong(length: bytes.count) }
        let depth = 1 + bytes.count(where: { $0 == UInt8(ascii: ".") })
        guard depth <= maxDepth else { throw .tooDeep(depth: depth) }

        var length = 0  // bytes in the current segment
        var stars = 0  // `*` bytes in the current segment
        func endSegment() throws(TopicError) {
            guard length > 0 else { throw .emptySegment(text) }
            guard stars > 0 else { return }
            guard allowingWildcards else { throw .wildcardInTopic(text) }
            guard stars == length, stars <= 2 else { throw .partialWildcard(text) }
        }
        for byte in bytes {
            switch byte {
            case UInt8(ascii: "."):
                try endSegment()
                length = 0
                stars = 0
            case UInt8(ascii: "*"):
                stars += 1
                length += 1
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"),
                UInt8(ascii: "_"), UInt8(ascii: "-"), UInt8(ascii: ":"):
                length += 1
            default:
                throw .illegalCharacter(firstIllegalCharacter(in: text), in: text)
            }
        }
        try endSegment()
    }

    /// The first character that is not allowed anywhere in a name, for the error message.
    ///
    /// Every allowed byte is a whole `Character` of its own (no grapheme cluster is made only
    /// of these ASCII bytes), so a name with an illegal byte always has such a character.
    private static func firstIllegalCharacter(in text: String) -> Character {
        text.first { character in
            guard let ascii = character.asciiValue else { return true }
            switch ascii {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"),
                UInt8(ascii: "_"), UInt8(ascii: "-"), UInt8(ascii: ":"), UInt8(ascii: "."), UInt8(ascii: "*"):
                return false
            default:
                return true
            }
        } ?? "\u{FFFD}"
    }
}
