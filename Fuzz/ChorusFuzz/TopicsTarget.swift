@testable import Broker

/// Target `topics`: topic and pattern parsing, matching, `covers`, the Redis glob and the
/// subscription index, against a reference written here from the documented rules.
///
/// Input: lines (split at `\n`, read as UTF-8 with repair). Each line is tried as a topic and as
/// a pattern; the valid patterns are matched against the valid lines and against topics built
/// from the patterns' own segments (so that matches happen). Reference rules:
/// - a name is 1 to 255 UTF-8 bytes and 1 to 16 dot-separated segments, each non-empty and made
///   of ASCII letters, digits, `_`, `-`, `:`; a pattern segment may instead be exactly `*` or `**`;
/// - `*` matches exactly one segment, `**` one or more (a recursive glob over segments);
/// - a pattern's Redis glob (Redis `*` matches any run of characters) matches every topic the
///   pattern matches;
/// - `p.covers(q)` implies every topic `q` matches is matched by `p`, and is exact when `q` has
///   no wildcard;
/// - the subscription index reports exactly the subscribers whose pattern matches, each once,
///   and removing every subscription empties it.
enum TopicsTarget {
    static func run(_ input: [UInt8]) {
        let lines = input.split(separator: 0x0A, omittingEmptySubsequences: false).prefix(8)
            .map { String(decoding: $0, as: UTF8.self) }
        var patterns: [(TopicPattern, [String])] = []
        var topics: [Topic] = []
        for line in lines {
            let reference = referenceSegments(line)
            let asTopic = try? Topic(line)
            let asPattern = try? TopicPattern(line)
            let validTopic = reference.map { !$0.contains { $0.hasPrefix("*") } } ?? false
            guard (asTopic != nil) == validTopic, (asPattern != nil) == (reference != nil) else {
                fuzzFailure(.topics, "\(line.debugDescription): topic \(asTopic != nil), pattern \(asPattern != nil), reference \(reference ?? [])")
            }
            if let asTopic {
                guard asTopic.segments.map(String.init) == reference else { fuzzFailure(.topics, "segments of \(line.debugDescription)") }
                topics.append(asTopic)
            }
            if let asPattern, let reference {
                guard asPattern.isWildcard == !validTopic, (asPattern.topic != nil) == validTopic else {
                    fuzzFailure(.topics, "wildcard flags of \(line.debugDescription)")
                }
                patterns.append((asPattern, reference))
            }
        }
        guard !patterns.isEmpty else { return }

        // Topics that the patterns can match: their literal segments and a fresh one.
        var literals = Set(patterns.flatMap(\.1).filter { !$0.hasPrefix("*") })
        literals.insert("fresh")
        let alphabet = literals.sorted()
        var random = SplitMix(state: UInt64(truncatingIfNeeded: input.reduce(5381) { $0 &* 33 &+ Int($1) }))
        for _ in 0..<8 {
            let depth = 1 + random.below(random.below(3) == 0 ? Topic.maxDepth : 4)
            let name = (0..<depth).map { _ in alphabet[random.below(alphabet.count)] }.joined(separator: ".")
            if let topic = try? Topic(name) { topics.append(topic) }
        }

        // Which pattern covers which, asked once per pair (the containment search is the costly part).
        let covering = patterns.indices.map { p in patterns.indices.filter { patterns[p].0.covers(patterns[$0].0) } }
        for topic in topics {
            let segments = topic.name.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
            for (p, (pattern, tokens)) in patterns.enumerated() {
                let expected = referenceMatch(tokens[...], segments[...])
                guard matches(pattern, topic) == expected else {
                    fuzzFailure(.topics, "\(pattern) matches \(topic): \(!expected), reference: \(expected)")
                }
                if expected && !globMatch(Array(pattern.redisGlob.utf8)[...], Array(topic.name.utf8)[...]) {
                    fuzzFailure(.topics, "Redis glob \(pattern.redisGlob) misses \(topic), which \(pattern) matches")
                }
                for q in covering[p] {
                    let (other, otherTokens) = patterns[q]
                    if referenceMatch(otherTokens[...], segments[...]) && !expected {
                        fuzzFailure(.topics, "\(pattern) covers \(other), yet \(other) matches \(topic) and \(pattern) does not")
                    }
                }
                let exact = TopicPattern(topic)
                guard pattern.covers(exact) == expected else {
                    fuzzFailure(.topics, "\(pattern) covers the topic \(topic): \(!expected), reference: \(expected)")
                }
            }
        }
        checkIndex(patterns.map(\.0), patterns.map(\.1), topics)
    }

    /// The adapter for matching.
    static func matches(_ pattern: TopicPattern, _ topic: Topic) -> Bool {
        pattern.matches(topic)
    }

    /// Subscribers 0..<n hold the patterns (and subscriber 0 holds them all, to exercise
    /// deduplication); lookups must agree with the reference.
    static func checkIndex(_ patterns: [TopicPattern], _ tokens: [[String]], _ topics: [Topic]) {
        var index = SubscriptionIndex<Int>()
        for (subscriber, pattern) in patterns.enumerated() {
            index.insert(pattern, subscriber + 1)
            index.insert(pattern, 0)
        }
        for topic in topics {
            let segments = topic.name.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
            var expected: Set<Int> = []
            for (subscriber, tokens) in tokens.enumerated() where referenceMatch(tokens[...], segments[...]) {
                expected.insert(subscriber + 1)
                expected.insert(0)
            }
            var reported: [Int] = []
            index.forEachMatch(topic) { reported.append($0) }
            guard index.matches(topic) == expected, reported.count == expected.count, Set(reported) == expected else {
                fuzzFailure(.topics, "index for \(topic): matches \(index.matches(topic)), forEachMatch \(reported), reference \(expected.sorted()) (patterns \(patterns))")
            }
        }
        for (subscriber, pattern) in patterns.enumerated() {
            index.remove(pattern, subscriber + 1)
            index.remove(pattern, 0)
        }
        guard index.isEmpty, index.count == 0, index.patternCount == 0, index.topicCount == 0, index.trieNodeCount == 0 else {
            fuzzFailure(.topics, "index not empty after removing every subscription of \(patterns)")
        }
    }

    /// The segments of a valid pattern (or topic), or nil when `text` is neither.
    static func referenceSegments(_ text: String) -> [String]? {
        guard (1...255).contains(text.utf8.count) else { return nil }
        let segments = text.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        guard segments.count <= 16 else { return nil }
        for segment in segments {
            if segment == "*" || segment == "**" { continue }
            guard !segment.isEmpty, segment.unicodeScalars.allSatisfy({ scalar in
                scalar.isASCII && (scalar.properties.isAlphabetic || ("0"..."9").contains(scalar) || "_-:".unicodeScalars.contains(scalar))
            }) else { return nil }
        }
        return segments
    }

    /// `*` is one segment, `**` one or more: the recursive glob over segments, memoized
    /// (`known[i][j]`: whether tokens from `i` match segments from `j`).
    static func referenceMatch(_ pattern: ArraySlice<String>, _ topic: ArraySlice<String>) -> Bool {
        let pattern = Array(pattern), topic = Array(topic)
        var known = [[Bool?]](repeating: [Bool?](repeating: nil, count: topic.count + 1), count: pattern.count + 1)
        func match(_ i: Int, _ j: Int) -> Bool {
            if let answer = known[i][j] { return answer }
            let answer: Bool
            if i == pattern.count {
                answer = j == topic.count
            } else if j == topic.count {
                answer = false
            } else {
                switch pattern[i] {
                case "**": answer = (j + 1...topic.count).contains { match(i + 1, $0) }
                case "*": answer = match(i + 1, j + 1)
                default: answer = pattern[i] == topic[j] && match(i + 1, j + 1)
                }
            }
            known[i][j] = answer
            return answer
        }
        return match(0, 0)
    }

    /// Redis glob with only `*` (any run of bytes, dots included), by dynamic programming.
    static func globMatch(_ glob: ArraySlice<UInt8>, _ text: ArraySlice<UInt8>) -> Bool {
        let glob = Array(glob), text = Array(text)
        // reachable[j]: the glob read so far can match the first j bytes of text.
        var reachable = [Bool](repeating: false, count: text.count + 1)
        reachable[0] = true
        for symbol in glob {
            if symbol == UInt8(ascii: "*") {
                for j in stride(from: 1, through: text.count, by: 1) where reachable[j - 1] { reachable[j] = true }
            } else {
                for j in stride(from: text.count, to: 0, by: -1) { reachable[j] = reachable[j - 1] && text[j - 1] == symbol }
                reachable[0] = false
            }
        }
        return reachable[text.count]
    }
}
