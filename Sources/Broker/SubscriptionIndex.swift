/// The subscriptions of one node shard: which subscribers hold a pattern matching a topic.
///
/// Concrete topics, the common case, live in a dictionary, so a publish to a topic that only
/// exact subscribers hold costs one hash lookup and allocates nothing. Wildcard patterns live
/// in a trie keyed by segment, with `*` and `**` as children of their own; a lookup walks
/// only the branches that can match the topic, so its cost grows with the topic's depth and
/// the number of matching branches, not with the number of subscriptions.
///
/// A value type: the owner (one shard, one isolation domain) mutates it in place.
public struct SubscriptionIndex<Subscriber: Hashable & Sendable>: Sendable {
    /// Subscribers of each concrete topic; a topic is removed with its last subscriber.
    /// (`@usableFromInline` for ``forEachMatch(_:_:)``.)
    @usableFromInline private(set) var exact: [Topic: Set<Subscriber>] = [:]
    /// Subscribers of wildcard patterns. The root holds no subscribers of its own.
    private var root = Node()

    /// The number of (pattern, subscriber) pairs.
    public private(set) var count = 0
    /// The number of distinct wildcard patterns that some subscriber holds.
    public private(set) var patternCount = 0

    public init() {}

    public var isEmpty: Bool { count == 0 }

    /// The number of distinct concrete topics that some subscriber holds.
    public var topicCount: Int { exact.count }

    /// Adds `subscriber` to `pattern`; returns `false` if it already held it.
    @discardableResult
    public mutating func insert(_ pattern: TopicPattern, _ subscriber: Subscriber) -> Bool {
        let inserted: Bool
        if let topic = pattern.topic {
            inserted = exact[topic, default: []].insert(subscriber).inserted
        } else {
            let change = root.insert(pattern.text.split(separator: ".")[...], subscriber)
            inserted = change.changed
            if change.patternAppearedOrVanished { patternCount += 1 }
        }
        if inserted { count += 1 }
        return inserted
    }

    /// Removes `subscriber` from `pattern`; returns `false` if it did not hold it.
    ///
    /// Emptied topics and trie nodes are dropped, so memory follows the live subscriptions.
    @discardableResult
    public mutating func remove(_ pattern: TopicPattern, _ subscriber: Subscriber) -> Bool {
        let removed: Bool
        if let topic = pattern.topic {
            removed = exact[topic]?.remove(subscriber) != nil
            if removed && exact[topic]?.isEmpty == true { exact[topic] = nil }
        } else {
            let change = root.remove(pattern.text.split(separator: ".")[...], subscriber)
            removed = change.changed
            if change.patternAppearedOrVanished { patternCount -= 1 }
            if root.children.isEmpty { root.children = [:] }  // release the storage, too
        }
        if removed { count -= 1 }
        return removed
    }

    /// Calls `body` once for each distinct subscriber holding a pattern that matches `topic`.
    ///
    /// Exact subscribers come first. A subscriber is deduplicated only when a wildcard matched
    /// it: against the exact subscribers, and by a set built once a second trie node matches.
    ///
    /// `@inlinable` so that the exact subscribers, every delivery's path, are walked by code
    /// specialized for the caller's `Subscriber` (unspecialized, each element went through the
    /// generic `Set` iterator and value witnesses: 5 % of a delivery's instructions, callgrind).
    @inlinable
    public func forEachMatch(_ topic: Topic, _ body: (Subscriber) -> Void) {
        let exactSubscribers = exact[topic]
        exactSubscribers?.forEach(body)
        guard hasPatterns else { return }
        forEachWildcardMatch(topic, excluding: exactSubscribers, body)
    }

    @usableFromInline var hasPatterns: Bool { !root.children.isEmpty }

    /// The wildcard half of ``forEachMatch(_:_:)``: subscribers of patterns matching `topic`
    /// that are not in `exactSubscribers`, each once.
    @usableFromInline
    func forEachWildcardMatch(_ topic: Topic, excluding exactSubscribers: Set<Subscriber>?, _ body: (Subscriber) -> Void) {
        var firstMatch: Set<Subscriber>? = nil
        var seen: Set<Subscriber>? = nil
        root.forEachMatch(topic.segments, reached: 1) { subscribers in
            if firstMatch == nil {
                firstMatch = subscribers
                for subscriber in subscribers where exactSubscribers?.contains(subscriber) != true {
                    body(subscriber)
                }
                return
            }
            if seen == nil { seen = firstMatch }
            for subscriber in subscribers where exactSubscribers?.contains(subscriber) != true {
                if seen!.insert(subscriber).inserted { body(subscriber) }
            }
        }
    }

    /// The distinct subscribers holding a pattern that matches `topic`.
    public func matches(_ topic: Topic) -> Set<Subscriber> {
        var result = exact[topic] ?? []
        guard !root.children.isEmpty else { return result }
        root.forEachMatch(topic.segments, reached: 1) { result.formUnion($0) }
        return result
    }

    /// The number of trie nodes below the root, to check in tests that removal prunes.
    var trieNodeCount: Int { root.descendantCount }
}

extension SubscriptionIndex {
    /// A trie node: the subscribers of the pattern spelled by the path from the root.
    ///
    /// Children are keyed by literal segment, or by `*` and `**`; validation keeps literal
    /// segments from ever being `*` or `**`, so the keys cannot collide. Keys are `Substring`
    /// so that a topic's segments are looked up without copying them.
    struct Node: Sendable {
        var subscribers: Set<Subscriber> = []
        var children: [Substring: Node] = [:]

        /// Whether the subscribers changed, and whether this pattern's node went from no
        /// subscribers to some (insert) or from some to none (remove).
        typealias Change = (changed: Bool, patternAppearedOrVanished: Bool)

        mutating func insert(_ path: ArraySlice<Substring>, _ subscriber: Subscriber) -> Change {
            guard let segment = path.first else {
                let wasEmpty = subscribers.isEmpty
                let inserted = subscribers.insert(subscriber).inserted
                return (inserted, wasEmpty && inserted)
            }
            if children[segment] == nil {
                // A key of its own storage, rather than a slice retaining the whole pattern text.
                children[Substring(String(segment))] = Node()
            }
            return children[segment]!.insert(path.dropFirst(), subscriber)
        }

        mutating func remove(_ path: ArraySlice<Substring>, _ subscriber: Subscriber) -> Change {
            guard let segment = path.first else {
                let removed = subscribers.remove(subscriber) != nil
                return (removed, removed && subscribers.isEmpty)
            }
            guard children[segment] != nil else { return (false, false) }
            let change = children[segment]!.remove(path.dropFirst(), subscriber)
            if children[segment]!.subscribers.isEmpty && children[segment]!.children.isEmpty {
                children[segment] = nil
                if children.isEmpty { children = [:] }
            }
            return change
        }

        /// Reports the subscriber set of every node below this one whose pattern matches.
        ///
        /// `reached` is the set of positions (bit `i`: the first `i` segments) at which the
        /// path to this node matches a prefix of `segments`. Without `**` it holds one bit;
        /// `**` can make it hold several, and carrying them all down at once visits every
        /// node at most once, where trying each split of each `**` separately would revisit
        /// nodes below stacked `**` a combinatorial number of times. `segments.count` is at
        /// most ``Topic/maxDepth``, so the positions fit in a `UInt32`.
        func forEachMatch(_ segments: [Substring], reached: UInt32, _ report: (Set<Subscriber>) -> Void) {
            let end: UInt32 = 1 << segments.count
            if reached & end != 0 && !subscribers.isEmpty { report(subscribers) }
            let open = reached & (end - 1)  // positions with segments still to read
            guard open != 0, !children.isEmpty else { return }

            if let one = children["*"] {
                one.forEachMatch(segments, reached: open << 1, report)
            }
            if let many = children["**"] {
                // One or more segments past the earliest open position.
                let first = UInt32(open.trailingZeroBitCount)
                let beyond = ~((2 << first) - 1) & ((end << 1) - 1)
                many.forEachMatch(segments, reached: beyond, report)
            }
            var pending = open
            while pending != 0 {
                let position = pending.trailingZeroBitCount
                pending &= pending - 1
                let segment = segments[position]
                guard let child = children[segment] else { continue }
                // Take every open position whose segment is the same, so `child` is entered once.
                var childReached: UInt32 = 1 << (position + 1)
                var later = pending
                while later != 0 {
                    let other = later.trailingZeroBitCount
                    later &= later - 1
                    if segments[other] == segment {
                        childReached |= 1 << (other + 1)
                        pending &= ~(1 << other)
                    }
                }
                child.forEachMatch(segments, reached: childReached, report)
            }
        }

        var descendantCount: Int {
            children.values.reduce(children.count) { $0 + $1.descendantCount }
        }
    }
}
