import Broker
import Synchronization

/// What the connections of one event loop may want, in a form the adapter's thread can ask
/// before it hands the loop a batch (``ConnectionHub/deliver(_:)``).
///
/// A counting filter: every interest a connection of the loop holds (a topic, a user, a topic
/// whose presence it watches) adds one to a slot chosen by the interest's hash, and taking the
/// interest back removes it. A slot at zero proves that no connection of the loop wants a
/// message for that topic or user, so a batch with nothing for the loop is not handed to it:
/// no task and no wake-up. On a node with many loops, a message for a two-person room then
/// wakes one or two loops instead of all of them. Interests that share a slot only cost a
/// wake-up for nothing, never a missed delivery. A wildcard subscription may match any topic,
/// so a loop that holds one wants every topic's messages.
///
/// Fixed size (``slotCount`` counters), whatever the number of topics; thread-safe, the lock
/// is held to count or to look a batch up.
final class LoopInterest: Sendable {
    /// Where a delivery's recipients would be found: the slot of its topic or user, and whether
    /// wildcard subscriptions could match it.
    struct Target: Sendable, Equatable {
        /// Nil for a delivery that names neither: no loop would write it.
        let slot: Int?
        let wildcardsMatch: Bool
    }

    /// What a loop wants of a batch.
    enum Selection: Equatable {
        case all
        case none
        /// `wanted[i]` for the batch's `i`-th delivery.
        case some(_ wanted: [Bool])
    }

    /// A power of two: a hash picks its slot by masking.
    static let slotCount = 4_096

    private struct State {
        var counts = [UInt32](repeating: 0, count: LoopInterest.slotCount)
        var wildcards = 0
    }

    private let state = Mutex(State())

    /// A connection of this loop holds `interest`: counted once per holder, so that the slot
    /// returns to zero only when the last holder on the loop lets go.
    func add(_ interest: Interest) {
        state.withLock { state in
            if let slot = Self.slot(of: interest) {
                state.counts[slot] += 1
            } else {
                state.wildcards += 1
            }
        }
    }

    /// A holder of `interest` on this loop let it go.
    func remove(_ interest: Interest) {
        state.withLock { state in
            if let slot = Self.slot(of: interest) {
                precondition(state.counts[slot] > 0, "interest removed from \(slot) more often than added")
                state.counts[slot] -= 1
            } else {
                precondition(state.wildcards > 0, "wildcard interest removed more often than added")
                state.wildcards -= 1
            }
        }
    }

    /// Which of a batch's deliveries (given by their ``target(topic:userId:)``) this loop may want.
    func select(_ targets: [Target]) -> Selection {
        state.withLock { state in
            func wants(_ target: Target) -> Bool {
                guard let slot = target.slot else { return false }
                return state.counts[slot] > 0 || (target.wildcardsMatch && state.wildcards > 0)
            }
            // Counted first, so that the common answers (all of it, none of it) allocate nothing.
            var wanted = 0
            for target in targets where wants(target) { wanted += 1 }
            if wanted == targets.count { return .all }
            if wanted == 0 { return .none }
            return .some(targets.map(wants))
        }
    }

    /// The target of a delivery to the sessions of `userId` when set, else to those of `topic`
    /// (as ``ConnectionRegistry`` delivers). Presence and typing signals go to a topic's
    /// audience and use its target too.
    static func target(topic: Topic?, userId: String?) -> Target {
        if let userId { return Target(slot: slot(userKey: userId), wildcardsMatch: false) }
        guard let topic else { return Target(slot: nil, wildcardsMatch: false) }
        return Target(slot: slot(topicKey: topic.name), wildcardsMatch: true)
    }

    private static func slot(of interest: Interest) -> Int? {
        switch interest {
        case .topic(let topic): slot(topicKey: topic.name)
        case .user(let userId): slot(userKey: userId)
        case .pattern: nil
        }
    }

    private static func slot(topicKey name: String) -> Int { slot(name, kind: 0) }
    private static func slot(userKey id: String) -> Int { slot(id, kind: 1) }

    /// `Hasher` is seeded once per process, which is all a filter that lives in one process needs.
    private static func slot(_ key: String, kind: UInt8) -> Int {
        var hasher = Hasher()
        hasher.combine(kind)
        hasher.combine(key)
        return hasher.finalize() & (slotCount - 1)
    }
}
