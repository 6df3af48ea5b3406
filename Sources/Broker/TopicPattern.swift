/// What a client subscribes to: a concrete topic, or a pattern with wildcard segments.
///
/// The syntax is that of ``Topic``, except that a whole segment may be a wildcard:
/// - `*` matches exactly one segment: `chat.*` matches `chat.a`, not `chat` or `chat.a.b`;
/// - `**` matches one or more segments: `chat.**` matches `chat.a` and `chat.a.b`, not `chat`.
///
/// `**` may stand anywhere (`**.typing`, `a.**.z`) and several times. `*` inside a segment
/// (`a*`, `***`) is rejected, so that no client text turns into an unintended Redis glob.
///
/// Equality is on ``text``: `*.**` and `**.*` match the same topics but are distinct patterns.
public struct TopicPattern: Hashable, Sendable, CustomStringConvertible, Codable {
    /// The pattern as the client wrote it.
    public let text: String

    /// Validates `text` as a topic or a pattern.
    public init(_ text: String) throws(TopicError) {
        try Topic.validate(text, allowingWildcards: true)
        self.text = text
    }

    /// The pattern that matches exactly `topic`.
    public init(_ topic: Topic) {
        self.text = topic.name
    }

    /// Whether some segment is `*` or `**`.
    public var isWildcard: Bool {
        text.utf8.contains(UInt8(ascii: "*"))
    }

    /// The one topic this pattern matches, when it has no wildcard.
    public var topic: Topic? {
        isWildcard ? nil : Topic(unchecked: text)
    }

    public var description: String { text }

    /// The Redis `PSUBSCRIBE` glob (without the channel prefix) for this pattern.
    ///
    /// Every wildcard segment becomes `*`. Redis `*` matches any run of characters, dots
    /// included, so the glob matches a superset of the pattern's topics (`a.*` also brings
    /// `a.b.c`); the node filters what arrives with ``matches(_:)``. No other glob syntax can
    /// occur, because validation admits none.
    public var redisGlob: String {
        text.split(separator: ".").map { $0.first == "*" ? "*" : $0 }.joined(separator: ".")
    }

    /// Whether `topic` is one of the topics this pattern stands for.
    ///
    /// This is the reference semantics that ``SubscriptionIndex`` must agree with. It is the
    /// classic glob matcher with one backtracking point: `**` is read as "one segment, then
    /// zero or more", and on a mismatch only the latest `**` absorbs one more segment. Giving
    /// the latest `**` more is always at least as good as revisiting an earlier one, so this
    /// is exact, and it takes at most depth² steps instead of exploring every split.
    public func matches(_ topic: Topic) -> Bool {
        let pattern = tokens
        let segments = topic.segments
        var p = 0  // next pattern token
        var s = 0  // next topic segment
        var resumeToken: Int? = nil  // token after the latest `**`
        var resumeSegment = 0  // where that `**`'s optional part currently ends
        while s < segments.count {
            if p < pattern.count {
                switch pattern[p] {
                case .many:
                    resumeToken = p + 1
                    resumeSegment = s + 1
                    p += 1
                    s += 1
                    continue
                case .one:
                    p += 1
                    s += 1
                    continue
                case .literal(let literal) where literal == segments[s]:
                    p += 1
                    s += 1
                    continue
                case .literal:
                    break
                }
            }
            guard let resume = resumeToken else { return false }
            resumeSegment += 1
            p = resume
            s = resumeSegment
        }
        // Every token consumes at least one segment, so leftover tokens cannot match.
        return p == pattern.count
    }

    /// Whether every topic that `other` matches is also matched by `self`.
    ///
    /// Authorization uses this: a grant `chat.**` covers a request for `chat.*.typing`, but
    /// not one for `**`. The answer is exact over all valid topics (at most ``Topic/maxDepth``
    /// segments), except that the search gives up and answers `false` beyond a fixed budget,
    /// which only contrived patterns reach. See ``PatternContainment``.
    public func covers(_ other: TopicPattern) -> Bool {
        if self == other { return true }
        if let topic = other.topic { return matches(topic) }
        return PatternContainment(outer: tokens, inner: other.tokens).holds
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let text = try container.decode(String.self)
        do {
            try self.init(text)
        } catch {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: error.description)
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(text)
    }
}

extension TopicPattern {
    /// One segment of a pattern.
    enum Token: Hashable, Sendable {
        case literal(Substring)
        /// `*`: exactly one segment.
        case one
        /// `**`: one or more segments.
        case many

        /// Whether the token can consume a segment equal to `symbol`.
        func accepts(_ symbol: PatternContainment.Symbol) -> Bool {
            switch (self, symbol) {
            case (.literal(let literal), .literal(let segment)): literal == segment
            case (.literal, .fresh): false
            case (.one, _), (.many, _): true
            }
        }
    }

    var tokens: [Token] {
        text.split(separator: ".").map { segment in
            switch segment {
            case "*": .one
            case "**": .many
            default: .literal(segment)
            }
        }
    }
}

/// Decides whether every topic matched by the `inner` pattern is matched by the `outer` one.
///
/// Each pattern is a small automaton whose state `k` means "the first `k` tokens have matched
/// the segments read so far"; a `**` token at `k - 1` also lets state `k` read one more
/// segment and stay. The search walks `inner` one state at a time and `outer` as the set of
/// all its states at once (a bit mask; at most 17 states), breadth first by the number of
/// segments read, and looks for a topic that `inner` accepts while `outer` does not.
///
/// Only the literals of the two patterns matter as segment values: any other segment behaves
/// like every other one, so a single ``Symbol/fresh`` stands for all of them. Breadth first
/// order means a state pair is first reached with the fewest segments, so revisits can be
/// skipped and the search is exact for topics of up to ``Topic/maxDepth`` segments.
struct PatternContainment {
    enum Symbol: Hashable {
        case literal(Substring)
        /// A segment equal to no literal of either pattern.
        case fresh
    }

    /// State pairs the search may visit before it answers `false` for want of certainty.
    static let budget = 4096

    let outer: [TopicPattern.Token]
    let inner: [TopicPattern.Token]

    var holds: Bool {
        var symbols: [Symbol] = [.fresh]
        for case .literal(let literal) in outer + inner where !symbols.contains(.literal(literal)) {
            symbols.append(.literal(literal))
        }
        let outerAccepting: UInt32 = 1 << outer.count

        var visited: Set<UInt64> = []
        var frontier: [(inner: Int, outer: UInt32)] = [(0, 1)]
        for depth in 1...Topic.maxDepth {
            var next: [(inner: Int, outer: UInt32)] = []
            for (innerState, outerStates) in frontier {
                for symbol in symbols {
                    let outerNext = Self.step(outer, outerStates, symbol)
                    for innerNext in Self.successors(inner, innerState, symbol) {
                        if innerNext == inner.count && outerNext & outerAccepting == 0 {
                            return false  // a topic of `inner` that `outer` rejects
                        }
                        if outerNext == 0 && depth + (inner.count - innerNext) <= Topic.maxDepth {
                            return false  // `outer` is dead; `inner` can still finish in time
                        }
                        guard visited.insert(UInt64(innerNext) << 32 | UInt64(outerNext)).inserted else { continue }
                        guard visited.count <= Self.budget else { return false }
                        next.append((innerNext, outerNext))
                    }
                }
            }
            if next.isEmpty { break }
            frontier = next
        }
        return true
    }

    /// The states of `tokens` reachable from `state` by reading `symbol` (at most two).
    private static func successors(_ tokens: [TopicPattern.Token], _ state: Int, _ symbol: Symbol) -> [Int] {
        var result: [Int] = []
        if state > 0 && tokens[state - 1] == .many { result.append(state) }
        if state < tokens.count && tokens[state].accepts(symbol) { result.append(state + 1) }
        return result
    }

    /// The set of states of `tokens` reachable from the set `states` by reading `symbol`.
    private static func step(_ tokens: [TopicPattern.Token], _ states: UInt32, _ symbol: Symbol) -> UInt32 {
        var result: UInt32 = 0
        var remaining = states
        while remaining != 0 {
            let state = remaining.trailingZeroBitCount
            remaining &= remaining - 1
            if state > 0 && tokens[state - 1] == .many { result |= 1 << state }
            if state < tokens.count && tokens[state].accepts(symbol) { result |= 1 << (state + 1) }
        }
        return result
    }
}
