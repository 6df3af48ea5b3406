import Foundation
import Testing

@testable import Broker

@Suite("Topic")
struct TopicTests {
    static let valid: [String] = [
        "a",
        "chat",
        "chat.room-1",
        "messages.user.123",
        "A_b-C:9.x",
        "urn:chorus:room",
        Array(repeating: "s", count: Topic.maxDepth).joined(separator: "."),
        String(repeating: "a", count: Topic.maxLength),
    ]

    @Test("valid names are accepted unchanged", arguments: valid)
    func acceptsValidName(_ name: String) throws {
        let topic = try Topic(name)
        #expect(topic.name == name)
        #expect(topic.description == name)
    }

    static let invalid: [(String, TopicError)] = [
        ("", .empty),
        (String(repeating: "a", count: 256), .tooLong(length: 256)),
        (String(repeating: "é", count: 128), .tooLong(length: 256)),
        (Array(repeating: "s", count: 17).joined(separator: "."), .tooDeep(depth: 17)),
        (".", .emptySegment(".")),
        (".a", .emptySegment(".a")),
        ("a.", .emptySegment("a.")),
        ("a..b", .emptySegment("a..b")),
        ("a b", .illegalCharacter(" ", in: "a b")),
        ("a?", .illegalCharacter("?", in: "a?")),
        ("a.[b]", .illegalCharacter("[", in: "a.[b]")),
        ("a\\b", .illegalCharacter("\\", in: "a\\b")),
        ("a/b", .illegalCharacter("/", in: "a/b")),
        ("café", .illegalCharacter("é", in: "café")),
        ("cafe\u{301}", .illegalCharacter("e\u{301}", in: "cafe\u{301}")),
        ("a.b\n", .illegalCharacter("\n", in: "a.b\n")),
        ("a\u{0}", .illegalCharacter("\u{0}", in: "a\u{0}")),
        ("*", .wildcardInTopic("*")),
        ("a.*", .wildcardInTopic("a.*")),
        ("**.b", .wildcardInTopic("**.b")),
        ("a*", .wildcardInTopic("a*")),
    ]

    @Test("invalid names are rejected with the exact reason", arguments: invalid)
    func rejectsInvalidName(_ name: String, _ expected: TopicError) {
        #expect(throws: expected) { try Topic(name) }
    }

    @Test("segments are the dot-separated parts in order")
    func segments() throws {
        #expect(try Topic("a").segments == ["a"])
        #expect(try Topic("chat.room-1.typing").segments == ["chat", "room-1", "typing"])
    }

    @Test("errors explain what to do, with invisible characters escaped")
    func errorDescriptions() {
        #expect(
            TopicError.emptySegment("a..b").description
                == "topic 'a..b' has an empty segment: segments are separated by single dots, with none at the start or end"
        )
        #expect(
            TopicError.illegalCharacter("\n", in: "a\nb").description
                == "topic 'a\\u{000A}b' contains '\\u{000A}' (U+000A): segments may contain only ASCII letters, digits, '_', '-' and ':'"
        )
        #expect(TopicError.tooLong(length: 300).description == "topic is 300 bytes long: the limit is 255 bytes of UTF-8")
        #expect(TopicError.wildcardInTopic("a.*").description.hasPrefix("topic 'a.*' contains a wildcard"))
    }

    @Test("encodes as a single JSON string")
    func encodesAsString() throws {
        let data = try JSONEncoder().encode([try Topic("chat.room-1")])
        #expect(String(decoding: data, as: UTF8.self) == #"["chat.room-1"]"#)
        #expect(try JSONDecoder().decode([Topic].self, from: data) == [try Topic("chat.room-1")])
    }

    @Test("decoding validates", arguments: [#""a..b""#, #""a.*""#, #""""#, "42"])
    func decodingValidates(_ json: String) {
        #expect(throws: DecodingError.self) {
            try JSONDecoder().decode(Topic.self, from: Data(json.utf8))
        }
    }
}
