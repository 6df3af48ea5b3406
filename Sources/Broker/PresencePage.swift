/// One page of a topic's members, in user id order: what a member list reads from a presence
/// store, so that a room of 100,000 costs a page per request, not the whole room.
public struct PresencePage: Sendable, Equatable {
    /// The most members one read returns. The node's byte budgets (a quarter of
    /// `WEBSOCKET_MAX_PENDING_BYTES`, 1 MiB over HTTP) may cut a page shorter still.
    public static let maxMembers = 1_000

    /// Members with user ids after the request's `after`, ascending, at most the limit asked.
    public var members: [PresenceMember]
    /// Every member of the topic, not only this page's.
    public var count: Int
    /// Members after the page's last remain.
    public var more: Bool

    public init(members: [PresenceMember], count: Int, more: Bool) {
        self.members = members
        self.count = count
        self.more = more
    }

    /// The page of `all` (sorted by user id) after `after`, at most `limit` long.
    public init(sorted all: [PresenceMember], after: String?, limit: Int) {
        let start = after.map { after in all.partitionPoint { $0.userId > after } } ?? 0
        let end = min(all.count, start + max(0, limit))
        self.init(members: Array(all[start..<end]), count: all.count, more: end < all.count)
    }
}

extension PresencePage {
    /// The page of `room` after `after`, at most `limit` long, each entry made a member by
    /// `member`.
    public init<Entry>(
        _ room: MemberTable<Entry>, after: String?, limit: Int, member: (String, Entry) -> PresenceMember
    ) {
        let page = room.page(after: after, limit: limit)
        self.init(members: page.members.map { member($0.userId, $0.entry) }, count: room.count, more: page.more)
    }
}

extension Array {
    /// The first index whose element satisfies `predicate`, for a predicate that is false up to
    /// some index and true from there on (binary search).
    fileprivate func partitionPoint(where predicate: (Element) -> Bool) -> Int {
        var low = 0
        var high = count
        while low < high {
            let middle = (low + high) / 2
            if predicate(self[middle]) { high = middle } else { low = middle + 1 }
        }
        return low
    }
}
