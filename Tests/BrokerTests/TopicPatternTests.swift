import Foundation
import Testing
import TestSupport

@testable import Broker

@Suite("TopicPattern", .serialized)
struct TopicPatternTests {
    static let matching: [(pattern: String, topic: String, matches: Bool)] = [
        ("a.b", "a.b", true),
        ("a.b", "a.c", false),
        ("a.b", "a.b.c", false),
        ("a.b", "a", false),
        // `*`: exactly one segment.
        ("*", "a", true),
        ("*", "a.b", false),
        ("a.*", "a.b", true),
        ("a.*", "a", false),
        ("a.*", "a.b.c", false),
        ("*.b", "a.b", true),
        ("a.*.c", "a.b.c", true),
        ("a.*.c", "a.c", false),
        ("*.*", "a.b", true),
        ("*.*", "a.b.c", false),
        // `**` last: one or more trailing segments.
        ("a.**", "a.b", true),
        ("a.**", "a.b.c.d", true),
        ("a.**", "a", false),
        ("a.**", "b.c", false),
        // `**` first.
        ("**", "a", true),
        ("**", "a.b.c", true),
        ("**.z", "a.z", true),
        ("**.z", "a.b.z", true),
        ("**.z", "z", false),
        ("**.z", "a.z.b", false),
        // `**` in the middle.
        ("a.**.z", "a.b.z", true),
        ("a.**.z", "a.b.c.z", true),
        ("a.**.z", "a.z", false),
        ("a.**.z", "a.z.z", true),
        ("a.**.z", "a.b.z.c", false),
        // Several wildcards, and backtracking.
        ("**.a.**", "x.a.y", true),
        ("**.a.**", "a.y", false),
        ("**.a.**", "x.a", false),
        ("**.a.**", "a.a.a", true),
        ("**.**", "a", false),
        ("**.**", "a.b", true),
        ("**.*.**", "a.b", false),
        ("**.*.**", "a.b.c", true),
        ("a.**.b.**.c", "a.b.b.c.c", true),
        ("a.**.b.**.c", "a.x.b.c", false),
        ("a.**.b.*", "a.b.b.b", true),
    ]

    @Test("matches follows the wildcard table", arguments: matching)
    func matches(_ pattern: String, _ topic: String, _ expected: Bool) throws {
        #expect(try TopicPattern(pattern).matches(Topic(topic)) == expected)
    }

    static let invalid: [(String, TopicError)] = [
        ("", .empty),
        ("a*", .partialWildcard("a*")),
        ("*a", .partialWildcard("*a")),
        ("***", .partialWildcard("***")),
        ("a.**b", .partialWildcard("a.**b")),
        ("a.b*c.d", .partialWildcard("a.b*c.d")),
        ("a..*", .emptySegment("a..*")),
        ("*.", .emptySegment("*.")),
        ("a.*?", .illegalCharacter("?", in: "a.*?")),
        ("a.[*]", .illegalCharacter("[", in: "a.[*]")),
        ("a. *", .illegalCharacter(" ", in: "a. *")),
        (Array(repeating: "*", count: 17).joined(separator: "."), .tooDeep(depth: 17)),
    ]

    @Test("invalid patterns are rejected with the exact reason", arguments: invalid)
    func rejectsInvalidPattern(_ text: String, _ expected: TopicError) {
        #expect(throws: expected) { try TopicPattern(text) }
    }

    @Test("a pattern without wildcards is a topic")
    func concretePattern() throws {
        let pattern = try TopicPattern("a.b")
        #expect(!pattern.isWildcard)
        #expect(pattern.topic == (try Topic("a.b")))
        #expect(TopicPattern(try Topic("a.b")) == pattern)
        #expect(try TopicPattern("a.*").isWildcard)
        #expect(try TopicPattern("**").topic == nil)
    }

    @Test(
        "redisGlob turns every wildcard segment into *",
        arguments: [
            ("a.b", "a.b"), ("a.*", "a.*"), ("**", "*"), ("a.**", "a.*"), ("a.**.b", "a.*.b"),
            ("*.**.*", "*.*.*"), ("room:1.*", "room:1.*"),
        ]
    )
    func redisGlob(_ text: String, _ glob: String) throws {
        #expect(try TopicPattern(text).redisGlob == glob)
    }

    @Test("the Redis glob matches every topic the pattern matches")
    func redisGlobOverMatches() throws {
        let patterns = Self.allPatterns(segments: ["a", "b", "*", "**"], maxDepth: 3)
        let topics = Self.allTopics(segments: ["a", "b", "c"], maxDepth: 5)
        for pattern in patterns {
            for topic in topics where pattern.matches(topic) {
                #expect(Self.globMatches(Array(pattern.redisGlob.utf8)[...], Array(topic.name.utf8)[...]))
            }
        }
    }

    @Test("matches agrees with a naive recursive matcher")
    func matchesAgreesWithNaiveMatcher() throws {
        let patterns = Self.allPatterns(segments: ["a", "b", "*", "**"], maxDepth: 3)
        let topics = Self.allTopics(segments: ["a", "b", "c"], maxDepth: 5)
        var disagreements: [String] = []
        for pattern in patterns {
            let tokens = pattern.text.split(separator: ".")
            for topic in topics where pattern.matches(topic) != Self.naiveMatches(tokens[...], topic.segments[...]) {
                disagreements.append("\(pattern) ~ \(topic)")
            }
        }
        #expect(disagreements.isEmpty)
    }

    static let covering: [(grant: String, request: String, covers: Bool)] = [
        ("a.b", "a.b", true),
        ("a.*", "a.b", true),
        ("a.*", "b.b", false),
        ("**", "a.*", true),
        ("**", "**.a.**", true),
        ("a.**", "a.*.typing", true),
        ("a.**", "a.**", true),
        ("a.**", "a.*", true),
        ("a.*", "a.**", false),
        ("a.**", "**", false),
        ("*", "**", false),
        ("*.*", "**", false),
        ("*.**", "**.*", true),
        ("**.*", "*.**", true),
        ("**.**", "*.*.**", true),
        ("**.z", "a.**.z", true),
        ("a.**.z", "**.z", false),
        ("**.a.**", "*.a.*", true),
        ("**.a.**", "a.**.a", false),
        ("a.*.c", "a.b.c", true),
        ("a.*.c", "a.**.c", false),
    ]

    @Test("covers follows the grant table", arguments: covering)
    func covers(_ grant: String, _ request: String, _ expected: Bool) throws {
        #expect(try TopicPattern(grant).covers(TopicPattern(request)) == expected)
    }

    /// Brute force: `covers` must agree with enumerating topics, over segments {a, b, c}
    /// where the patterns use only `a` and `b`, so `c` plays "any other segment".
    @Test("covers agrees with brute force over small alphabets")
    func coversAgreesWithBruteForce() throws {
        let patterns = Self.allPatterns(segments: ["a", "b", "*", "**"], maxDepth: 3)
        let topics = Self.allTopics(segments: ["a", "b", "c"], maxDepth: 5)
        let matched = patterns.map { pattern in topics.map { pattern.matches($0) } }
        var disagreements: [String] = []
        for (g, grant) in patterns.enumerated() {
            for (r, request) in patterns.enumerated() {
                let contained = !topics.indices.contains { matched[r][$0] && !matched[g][$0] }
                if grant.covers(request) != contained {
                    disagreements.append("\(grant) covers \(request): expected \(contained)")
                }
            }
        }
        #expect(disagreements.isEmpty)
    }

    @Test("covers never claims more than brute force, for longer random patterns")
    func coversIsSound() throws {
        var random = SplitMix64(seed: 7)
        let topics = Self.allTopics(segments: ["a", "b", "c"], maxDepth: 6)
        var unsound: [String] = []
        var proven = 0
        for _ in 0..<300 {
            let grant = try TopicPattern(random.patternText(maxDepth: 5))
            let request = try TopicPattern(random.patternText(maxDepth: 5))
            guard grant.covers(request) else { continue }
            proven += 1
            if let topic = topics.first(where: { request.matches($0) && !grant.matches($0) }) {
                unsound.append("\(grant) covers \(request), yet \(topic) escapes")
            }
        }
        #expect(unsound.isEmpty)
        #expect(proven > 10)
    }

    @Test("covers is exact at the depth limit, where longer topics cannot exist")
    func coversAtDepthLimit() throws {
        let sixteen = try TopicPattern(Array(repeating: "*", count: 16).joined(separator: "."))
        let atLeastSixteen = try TopicPattern(Array(repeating: "*", count: 15).joined(separator: ".") + ".**")
        #expect(sixteen.covers(atLeastSixteen))
        #expect(!atLeastSixteen.covers(try TopicPattern("**")))
    }

    @Test("covers answers quickly for the largest patterns, and each answer holds", .timeLimit(.minutes(1)))
    func coversIsBounded() throws {
        var random = SplitMix64(seed: 99)
        var pairs: [(grant: TopicPattern, request: TopicPattern, requestText: String)] = []
        for _ in 0..<200 {
            let grant = try TopicPattern(random.patternText(maxDepth: 16, literals: ["a", "b"], minDepth: 16))
            let requestText = random.patternText(maxDepth: 16, literals: ["a", "b"], minDepth: 16)
            pairs.append((grant, try TopicPattern(requestText), requestText))
        }
        // No wall-clock bound (a loaded machine could cross any): a `covers` that explored
        // every alignment of the largest patterns would run past the test's time limit.
        let answers = pairs.map { $0.grant.covers($0.request) }

        // Each answer checked: a pattern covers itself, and where `covers` says yes,
        // a topic the request matches (each wildcard as "c", a segment neither pattern names)
        // is matched by the grant too.
        var wrong: [String] = []
        for ((grant, request, requestText), covers) in zip(pairs, answers) {
            if !grant.covers(grant) { wrong.append("\(grant) does not cover itself") }
            guard covers else { continue }
            let topic = try Topic(requestText.split(separator: ".").map { $0.hasPrefix("*") ? "c" : String($0) }.joined(separator: "."))
            if !grant.matches(topic) { wrong.append("\(grant) covers \(request), yet \(topic) escapes") }
        }
        #expect(wrong.isEmpty)
    }

    @Test("encodes as a single JSON string and validates on decode")
    func codable() throws {
        let data = try JSONEncoder().encode(try TopicPattern("a.**"))
        #expect(String(decoding: data, as: UTF8.self) == #""a.**""#)
        #expect(try JSONDecoder().decode(TopicPattern.self, from: data) == (try TopicPattern("a.**")))
        #expect(throws: DecodingError.self) {
            try JSONDecoder().decode(TopicPattern.self, from: Data(#""a*""#.utf8))
        }
    }

    // MARK: - Helpers

    /// Every pattern of 1 to `maxDepth` segments drawn from `segments`.
    static func allPatterns(segments: [String], maxDepth: Int) -> [TopicPattern] {
        allNames(segments: segments, maxDepth: maxDepth).map { try! TopicPattern($0) }
    }

    static func allTopics(segments: [String], maxDepth: Int) -> [Topic] {
        allNames(segments: segments, maxDepth: maxDepth).map { try! Topic($0) }
    }

    static func allNames(segments: [String], maxDepth: Int) -> [String] {
        var result: [String] = []
        var level = segments
        for _ in 1...maxDepth {
            result += level
            level = level.flatMap { prefix in segments.map { prefix + "." + $0 } }
        }
        return result
    }

    /// The definition, literally: try every way `**` can take one or more segments.
    static func naiveMatches(_ pattern: ArraySlice<Substring>, _ topic: ArraySlice<Substring>) -> Bool {
        guard let first = pattern.first else { return topic.isEmpty }
        guard !topic.isEmpty else { return false }
        switch first {
        case "**":
            return (1...topic.count).contains { naiveMatches(pattern.dropFirst(), topic.dropFirst($0)) }
        case "*":
            return naiveMatches(pattern.dropFirst(), topic.dropFirst())
        default:
            return first == topic.first && naiveMatches(pattern.dropFirst(), topic.dropFirst())
        }
    }

    /// A Redis glob restricted to the syntax `redisGlob` can produce: literals and `*`.
    static func globMatches(_ glob: ArraySlice<UInt8>, _ text: ArraySlice<UInt8>) -> Bool {
        guard let first = glob.first else { return text.isEmpty }
        if first == UInt8(ascii: "*") {
            return (0...text.count).contains { globMatches(glob.dropFirst(), text.dropFirst($0)) }
        }
        return first == text.first && globMatches(glob.dropFirst(), text.dropFirst())
    }
}
