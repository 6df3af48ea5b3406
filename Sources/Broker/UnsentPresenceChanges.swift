/// The presence keys whose latest change has not reached Redis (the server was unreachable, the
/// script failed, or it found no lease), with whether one of those changes was to announce new
/// data: resent after the next renewal, announced if the data differs.
///
/// Every change is numbered when it is sent or set aside, so that a script's success clears a
/// key only when it carried the key's latest change: a leave set aside while the server was
/// unreachable must not be cleared by the success of a join queued before it (the member
/// would then stay listed for good). Owned by ``RedisPresenceStore``'s state, under its lock.
struct UnsentPresenceChanges<Key: Hashable> {
    /// Key -> whether an unsent change was to announce new data.
    private var marks: [Key: Bool] = [:]
    /// Key -> the number of its latest change, while that change is in flight or unsent.
    private var latest: [Key: Int] = [:]
    private var count = 0

    /// The keys to resend.
    var keys: Dictionary<Key, Bool>.Keys { marks.keys }

    /// Whether one of `key`'s unsent changes was to announce new data.
    func announcing(_ key: Key) -> Bool { marks[key] == true }

    /// Numbers a change of `key` about to be sent; its script's outcome hands the number back.
    mutating func sending(_ key: Key) -> Int {
        count += 1
        latest[key] = count
        return count
    }

    /// A change of `key` set aside without being sent (its server unreachable).
    mutating func setAside(_ key: Key, announcing: Bool) {
        _ = sending(key)
        failed(key, announcing: announcing)
    }

    /// A change of `key` that was sent and did not take (failed, or no lease): resent later.
    mutating func failed(_ key: Key, announcing: Bool) {
        marks[key] = (marks[key] ?? false) || announcing
    }

    /// Change `number` of `key` is in Redis: the key is clean unless a later change was made.
    mutating func written(_ key: Key, change number: Int) {
        guard latest[key] == number else { return }
        latest[key] = nil
        marks[key] = nil
    }
}
