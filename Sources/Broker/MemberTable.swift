/// A room's members by user id, kept in user id order as well, so that a page of a large room
/// costs a binary search and its own length, not a sort of the whole room per request. A join
/// or leave moves the ids after it (a copy of pointers, cheaper than a sort per read).
public struct MemberTable<Entry: Sendable>: Sendable {
    private var entries: [String: Entry] = [:]
    /// The keys of `entries`, ascending.
    private var order: [String] = []

    public init() {}

    public var count: Int { entries.count }
    public var isEmpty: Bool { entries.isEmpty }

    /// The member `userId`'s entry; setting nil removes it.
    public subscript(userId: String) -> Entry? {
        get { entries[userId] }
        set {
            if let newValue {
                if entries.updateValue(newValue, forKey: userId) == nil { order.insert(userId, at: Self.index(of: userId, in: order)) }
            } else if entries.removeValue(forKey: userId) != nil {
                order.remove(at: Self.index(of: userId, in: order))
            }
        }
    }

    /// Up to `limit` members after `after` (from the first when nil), ascending, and whether
    /// more follow.
    public func page(after: String?, limit: Int) -> (members: [(userId: String, entry: Entry)], more: Bool) {
        let start = after.map { after in Self.index(of: after, in: order, past: true) } ?? 0
        let end = min(order.count, start + max(0, limit))
        return (order[start..<end].map { ($0, entries[$0]!) }, end < order.count)
    }

    /// The first index whose id is not below `userId` (past it too, with `past`).
    private static func index(of userId: String, in order: [String], past: Bool = false) -> Int {
        var low = 0
        var high = order.count
        while low < high {
            let middle = (low + high) / 2
            if order[middle] < userId || (past && order[middle] == userId) { low = middle + 1 } else { high = middle }
        }
        return low
    }
}
