/// A dictionary of at most `capacity` entries that forgets the least recently used one to make
/// room for a new one: reads and writes both count as use. O(1) per operation (a hash map over
/// a doubly linked list kept in arrays). A plain value; the owner serializes access.
struct RecencyTable<Key: Hashable, Value> {
    private struct Entry {
        var key: Key
        var value: Value
        var older: Int?
        var newer: Int?
    }

    let capacity: Int
    private var slots: [Int: Entry] = [:]
    private var index: [Key: Int] = [:]
    private var newest: Int?
    private var oldest: Int?
    private var free: [Int] = []
    private var nextSlot = 0

    init(capacity: Int) {
        precondition(capacity > 0)
        self.capacity = capacity
    }

    var count: Int { index.count }

    /// The value for `key`, which becomes the most recently used; setting nil removes it.
    subscript(key: Key) -> Value? {
        mutating get {
            guard let slot = index[key] else { return nil }
            touch(slot)
            return slots[slot]!.value
        }
        set {
            if let slot = index[key] {
                if let newValue {
                    slots[slot]!.value = newValue
                    touch(slot)
                } else {
                    unlink(slot)
                    slots[slot] = nil
                    index[key] = nil
                    free.append(slot)
                }
            } else if let newValue {
                if index.count >= capacity, let victim = oldest {
                    unlink(victim)
                    index[slots[victim]!.key] = nil
                    slots[victim] = nil
                    free.append(victim)
                }
                let slot = free.popLast() ?? { defer { nextSlot += 1 }; return nextSlot }()
                slots[slot] = Entry(key: key, value: newValue, older: nil, newer: nil)
                index[key] = slot
                linkNewest(slot)
            }
        }
    }

    /// Removes the least recently used entry and returns its value.
    mutating func removeOldest() -> Value? {
        guard let slot = oldest, let entry = slots[slot] else { return nil }
        self[entry.key] = nil
        return entry.value
    }

    /// Keys from the least to the most recently used (for tests).
    var keysByRecency: [Key] {
        var keys: [Key] = []
        var cursor = oldest
        while let slot = cursor {
            keys.append(slots[slot]!.key)
            cursor = slots[slot]!.newer
        }
        return keys
    }

    private mutating func touch(_ slot: Int) {
        guard newest != slot else { return }
        unlink(slot)
        linkNewest(slot)
    }

    private mutating func unlink(_ slot: Int) {
        let entry = slots[slot]!
        if let older = entry.older { slots[older]!.newer = entry.newer } else { oldest = entry.newer }
        if let newer = entry.newer { slots[newer]!.older = entry.older } else { newest = entry.older }
        slots[slot]!.older = nil
        slots[slot]!.newer = nil
    }

    private mutating func linkNewest(_ slot: Int) {
        slots[slot]!.older = newest
        slots[slot]!.newer = nil
        if let newest { slots[newest]!.newer = slot }
        newest = slot
        if oldest == nil { oldest = slot }
    }
}
