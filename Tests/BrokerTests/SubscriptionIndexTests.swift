import Testing
import TestSupport

@testable import Broker

@Suite("SubscriptionIndex")
struct SubscriptionIndexTests {
    @Test("an exact subscriber receives its topic and nothing else")
    func exactSubscriber() throws {
        var index = SubscriptionIndex<Int>()
        index.insert(try TopicPattern("chat.room-1"), 1)
        #expect(index.matches(try Topic("chat.room-1")) == [1])
        #expect(index.matches(try Topic("chat.room-2")).isEmpty)
        #expect(index.matches(try Topic("chat")).isEmpty)
        #expect(index.matches(try Topic("chat.room-1.typing")).isEmpty)
    }

    @Test("* takes one segment, ** one or more, in any position")
    func wildcards() throws {
        var index = SubscriptionIndex<String>()
        for text in ["a.*", "a.**", "**.z", "a.**.z", "*.*.*"] {
            index.insert(try TopicPattern(text), text)
        }
        #expect(index.matches(try Topic("a")).isEmpty)
        #expect(index.matches(try Topic("a.b")) == ["a.*", "a.**"])
        #expect(index.matches(try Topic("a.z")) == ["a.*", "a.**", "**.z"])
        #expect(index.matches(try Topic("a.b.z")) == ["a.**", "**.z", "a.**.z", "*.*.*"])
        #expect(index.matches(try Topic("a.b.c.z")) == ["a.**", "**.z", "a.**.z"])
        #expect(index.matches(try Topic("z")).isEmpty)
    }

    @Test("a subscriber holding several matching patterns is called once")
    func deduplicates() throws {
        var index = SubscriptionIndex<Int>()
        index.insert(try TopicPattern("a.b"), 1)
        index.insert(try TopicPattern("a.*"), 1)
        index.insert(try TopicPattern("a.**"), 1)
        index.insert(try TopicPattern("**"), 2)
        index.insert(try TopicPattern("*.b"), 2)
        index.insert(try TopicPattern("a.b"), 3)
        var calls: [Int] = []
        index.forEachMatch(try Topic("a.b")) { calls.append($0) }
        #expect(calls.sorted() == [1, 2, 3])
        #expect(index.count == 6)
    }

    @Test("insert and remove report whether anything changed")
    func insertAndRemoveReportChanges() throws {
        var index = SubscriptionIndex<Int>()
        let exact = try TopicPattern("a.b")
        let wildcard = try TopicPattern("a.**")
        // Mutations stay outside `#expect`, whose expansion cannot call mutating members.
        var changes: [Bool] = []
        changes.append(index.insert(exact, 1))
        changes.append(index.insert(exact, 1))
        changes.append(index.insert(wildcard, 1))
        changes.append(index.insert(wildcard, 1))
        changes.append(index.insert(wildcard, 2))
        #expect(changes == [true, false, true, false, true])
        #expect((index.count, index.topicCount, index.patternCount) == (3, 1, 1))

        changes = []
        changes.append(index.remove(exact, 2))
        changes.append(index.remove(try TopicPattern("a.*"), 1))
        changes.append(index.remove(wildcard, 1))
        changes.append(index.remove(wildcard, 1))
        #expect(changes == [false, false, true, false])
        #expect((index.count, index.topicCount, index.patternCount) == (2, 1, 1))
        #expect(index.matches(try Topic("a.c")) == [2])
    }

    @Test("removing the last subscriber prunes the topic and its trie nodes")
    func removePrunes() throws {
        var index = SubscriptionIndex<Int>()
        index.insert(try TopicPattern("a.**.b.c"), 1)
        index.insert(try TopicPattern("a.**.x"), 1)
        index.insert(try TopicPattern("a.b"), 1)
        #expect(index.trieNodeCount == 5)
        index.remove(try TopicPattern("a.**.b.c"), 1)
        #expect(index.trieNodeCount == 3)
        index.remove(try TopicPattern("a.**.x"), 1)
        index.remove(try TopicPattern("a.b"), 1)
        #expect(index.isEmpty)
        #expect(index.trieNodeCount == 0)
        #expect((index.count, index.topicCount, index.patternCount) == (0, 0, 0))
    }

    @Test("stacked ** patterns are matched without exploring every split", .timeLimit(.minutes(1)))
    func stackedDoubleWildcards() throws {
        var index = SubscriptionIndex<Int>()
        let stacked = Array(repeating: "**", count: 8).joined(separator: ".")
        index.insert(try TopicPattern(stacked), 1)
        index.insert(try TopicPattern(stacked + ".never"), 2)
        let deep = try Topic((1...16).map { "s\($0)" }.joined(separator: "."))
        // No wall-clock bound (a loaded machine could cross any): a match that explored every
        // split of the 16 segments among the 8 wildcards would make these 1000 matches run
        // past the test's time limit, and each answer must still be exact.
        for _ in 0..<1000 {
            #expect(index.matches(deep) == [1])
        }
    }

    /// Random insertions and removals, checked against a scan of every live pair with
    /// `TopicPattern.matches`. Small alphabets keep matches frequent; fixed seeds make any
    /// failure reproducible.
    @Test("agrees with a naive scan under random churn", arguments: [1, 2, 3, 42, 0xC0FFEE] as [UInt64])
    func agreesWithNaiveScan(seed: UInt64) throws {
        var random = SplitMix64(seed: seed)
        var index = SubscriptionIndex<Int>()
        var live: Set<Pair> = []
        var compared = 0

        for _ in 0..<20 {
            for _ in 0..<40 {
                let pair = Pair(pattern: try TopicPattern(random.patternText(maxDepth: 5)), subscriber: random.next(below: 12))
                let inserted = index.insert(pair.pattern, pair.subscriber)
                let expected = live.insert(pair).inserted
                #expect(inserted == expected)
            }
            for _ in 0..<25 {
                // Mostly live pairs, sometimes a pair that may not be there.
                let pair =
                    random.next(below: 4) == 0 || live.isEmpty
                    ? Pair(pattern: try TopicPattern(random.patternText(maxDepth: 5)), subscriber: random.next(below: 12))
                    : live[live.index(live.startIndex, offsetBy: random.next(below: live.count))]
                let removed = index.remove(pair.pattern, pair.subscriber)
                let expected = live.remove(pair) != nil
                #expect(removed == expected)
            }
            #expect(index.count == live.count)
            #expect(index.topicCount == Set(live.compactMap(\.pattern.topic)).count)
            #expect(index.patternCount == Set(live.map(\.pattern).filter(\.isWildcard)).count)

            for _ in 0..<60 {
                let topic = try Topic(random.topicText(maxDepth: 5))
                let expected = Set(live.filter { $0.pattern.matches(topic) }.map(\.subscriber))
                #expect(index.matches(topic) == expected, "topic \(topic), seed \(seed)")
                var calls: [Int] = []
                index.forEachMatch(topic) { calls.append($0) }
                #expect(calls.count == expected.count && Set(calls) == expected, "topic \(topic), seed \(seed)")
                compared += 1
            }
        }
        #expect(compared == 1200)

        for pair in live {
            let removed = index.remove(pair.pattern, pair.subscriber)
            #expect(removed)
        }
        #expect(index.isEmpty)
        #expect(index.count == 0)
        #expect((index.topicCount, index.patternCount, index.trieNodeCount) == (0, 0, 0))
    }

    struct Pair: Hashable {
        var pattern: TopicPattern
        var subscriber: Int
    }
}

extension SplitMix64 {
    /// A topic of 1...maxDepth segments from {a, b, c}.
    mutating func topicText(maxDepth: Int) -> String {
        let depth = 1 + next(below: maxDepth)
        return (0..<depth).map { _ in ["a", "b", "c"][next(below: 3)] }.joined(separator: ".")
    }

    /// A pattern of minDepth...maxDepth segments: mostly literals, often `*` or `**`.
    mutating func patternText(maxDepth: Int, literals: [String] = ["a", "b", "c"], minDepth: Int = 1) -> String {
        let depth = minDepth + next(below: maxDepth - minDepth + 1)
        let choices = literals + ["*", "**"]
        return (0..<depth).map { _ in choices[next(below: choices.count)] }.joined(separator: ".")
    }
}
