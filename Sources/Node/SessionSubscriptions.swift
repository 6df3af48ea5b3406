import Broker

/// The topics and patterns one session subscribed to.
///
/// Most connections subscribe to one topic (a room, a user's feed), so a single subscription
/// is held inline and a set is made only for a second: a `Set` of one cost an idle connection
/// about 100 bytes. Loop-bound: a value inside its ``WebSocketSession``.
struct SessionSubscriptions: Sequence {
    private enum Storage {
        case none
        case one(TopicPattern)
        case many(Set<TopicPattern>)
    }

    private var storage = Storage.none

    init() {}

    var count: Int {
        switch storage {
        case .none: 0
        case .one: 1
        case .many(let set): set.count
        }
    }

    func contains(_ pattern: TopicPattern) -> Bool {
        switch storage {
        case .none: false
        case .one(let only): only == pattern
        case .many(let set): set.contains(pattern)
        }
    }

    /// Adds `pattern`; false when it was there already.
    @discardableResult
    mutating func insert(_ pattern: TopicPattern) -> Bool {
        switch storage {
        case .none:
            storage = .one(pattern)
        case .one(let only):
            guard only != pattern else { return false }
            storage = .many([only, pattern])
        case .many(var set):
            storage = .none  // so that the insert does not copy the set
            defer { storage = .many(set) }
            return set.insert(pattern).inserted
        }
        return true
    }

    /// Removes `pattern`, returning it; nil when it was not there.
    @discardableResult
    mutating func remove(_ pattern: TopicPattern) -> TopicPattern? {
        switch storage {
        case .none:
            return nil
        case .one(let only):
            guard only == pattern else { return nil }
            storage = .none
            return only
        case .many(var set):
            storage = .none
            let removed = set.remove(pattern)
            storage = set.count == 1 ? .one(set.first!) : .many(set)
            return removed
        }
    }

    struct Iterator: IteratorProtocol {
        fileprivate var one: TopicPattern?
        fileprivate var many: Set<TopicPattern>.Iterator?

        mutating func next() -> TopicPattern? {
            if let only = one {
                one = nil
                return only
            }
            return many?.next()
        }
    }

    func makeIterator() -> Iterator {
        switch storage {
        case .none: Iterator(one: nil, many: nil)
        case .one(let only): Iterator(one: only, many: nil)
        case .many(let set): Iterator(one: nil, many: set.makeIterator())
        }
    }
}
