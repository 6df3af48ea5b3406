import DequeModule
import Foundation
import Synchronization

/// Topic histories kept in this process: one bounded ring per topic (the memory adapter's
/// history, and the Redis adapter's while a server is unreachable).
///
/// **Epochs.** Each ring has an epoch of its own: a random prefix drawn once per
/// `MemoryHistory` (so per process start) followed by a per-ring generation. A ring that
/// expires (`HISTORY_TTL` after its last publish) and starts again gets a new epoch, as does
/// every ring after a restart, so a client's `since` from another stream never matches.
///
/// **Bytes.** All rings together hold at most `HISTORY_MAX_BYTES` (``HistoryPolicy/maxBytes``,
/// counted as ``cost(of:)`` per message and ``overheadPerRing`` per topic): past it, whole rings go, least recently published first, as if
/// their `HISTORY_TTL` had passed (their next publish starts a new epoch); the ring just
/// published to goes last, and then only its oldest messages. So no client can grow the node
/// by publishing large messages to many topics.
///
/// **Topics read before any publish.** A read of a topic without a ring answers offset 0 and
/// an epoch that its first publish will carry, without making a ring: the epoch waits in a
/// table of at most ``maxFreshTopics`` (the oldest forgotten first; a forgotten one only makes
/// that topic's first message start another epoch). So reading made-up topic names, which any
/// user may do, holds a bounded amount of memory.
///
/// **Threads.** Every method may be called from any thread; one mutex guards the rings, held
/// for a dictionary lookup and a ring update (or a copy of at most `size` envelopes for a read).
/// ``record(_:topic:)`` is called by the adapter in delivery order, which is what makes the
/// offsets and the live order agree.
public final class MemoryHistory: Sendable {
    public let policy: HistoryPolicy
    /// The random part of every epoch this history hands out.
    public let processEpoch: String

    private struct Ring {
        let epoch: String
        /// The ring's place in ``State/order``: the stamp of its last publish.
        var stamp = 0
        var offset = 0
        /// The last messages, oldest first.
        var storage: Deque<Envelope> = []
        /// Offsets by `messageId`, compared by bytes: `String` equality is canonical
        /// equivalence, which would take `"café"` composed and decomposed for one id.
        var ids: [[UInt8]: Int] = [:]
        var bytes = 0
        var touched: ContinuousClock.Instant

        var count: Int { storage.count }
        var oldest: Int? { storage.isEmpty ? nil : offset - storage.count + 1 }

        func message(at offset: Int) -> Envelope {
            storage[offset - oldest!]
        }

        /// Removes the oldest message; returns what it cost.
        mutating func dropOldest() -> Int {
            let evicted = storage.removeFirst()
            if let key = evicted.messageId { ids[Array(key.utf8)] = nil }
            let cost = MemoryHistory.cost(of: evicted)
            bytes -= cost
            return cost
        }
    }

    private struct State {
        var rings: [Topic: Ring] = [:]
        var generation = 0
        var nextSweep: ContinuousClock.Instant
        var messages = 0
        var bytes = 0
        var duplicates = 0
        /// Rings by last publish, oldest first, for eviction: each publish appends its topic
        /// with a new stamp, so an entry whose stamp is not its ring's any more is stale and
        /// skipped (and compacted away once stale entries outnumber the rings).
        var order: Deque<(topic: Topic, stamp: Int)> = []
        var stamps = 0
        /// Epochs handed out for topics without a ring, and the order they were handed out in
        /// (an entry whose stamp is not its topic's any more is stale and skipped, as in `order`).
        var fresh: [Topic: Fresh] = [:]
        var freshOrder: Deque<(topic: Topic, stamp: Int)> = []
    }

    /// An epoch told to a reader of a topic without history, for its first publish.
    private struct Fresh {
        let epoch: String
        let touched: ContinuousClock.Instant
        /// Its place in ``State/freshOrder``.
        let stamp: Int
    }

    /// At most this many epochs of topics read before any publish are remembered.
    static let maxFreshTopics = 10_000

    private let state: Mutex<State>
    private let ttl: Duration

    /// What one held message costs beyond the bytes of its `data`, `metadata`, id and topic:
    /// the envelope in its ring slot (with the ring's spare capacity) and the headers of its
    /// allocations. Measured, with the two below, as the node's resident memory per message
    /// (1-byte messages to 50,000 topics, and 100 messages to each of 500): within 5 % of it.
    static let overheadPerMessage = 420
    /// What a `messageId` costs beyond twice its bytes (the envelope's and the key of the
    /// ring's id table): the allocations' headers and the table slot.
    static let overheadPerMessageId = 140
    /// What a topic's ring costs before any message: its entry in the table of rings, its
    /// storage and id table, its epoch and its place in the eviction order.
    static let overheadPerRing = 400

    public init(policy: HistoryPolicy, processEpoch: String = MemoryHistory.randomEpoch()) {
        self.policy = policy
        self.processEpoch = processEpoch
        self.ttl = .milliseconds(policy.ttlMilliseconds)
        self.state = Mutex(State(nextSweep: .now + .milliseconds(policy.ttlMilliseconds)))
    }

    /// 8 random bytes in hex: an epoch no other stream has had.
    public static func randomEpoch() -> String {
        var generator = SystemRandomNumberGenerator()
        let hex = String(generator.next() as UInt64, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }

    /// Stores `envelope` (a message on `topic`, which the policy covers) and sets its
    /// `offset` and `epoch`; or, when its `messageId` was stored before on this topic, stores
    /// nothing and returns the earlier message's position with `duplicate`.
    public func record(_ envelope: inout Envelope, topic: Topic) -> PublishOutcome {
        let now = ContinuousClock.now
        return state.withLock { state in
            if now >= state.nextSweep { Self.sweep(&state, now: now, ttl: ttl) }
            var ring = take(topic, from: &state, now: now)
            ring.touched = now
            let key = envelope.messageId.map { Array($0.utf8) }
            if let key, let earlier = ring.ids[key] {
                state.rings[topic] = ring
                state.duplicates += 1
                return PublishOutcome(position: HistoryPosition(offset: earlier, epoch: ring.epoch), duplicate: true)
            }
            ring.offset += 1
            envelope.offset = ring.offset
            envelope.epoch = ring.epoch
            if ring.storage.count >= policy.size {
                state.bytes -= ring.dropOldest()
                state.messages -= 1
            }
            let cost = Self.cost(of: envelope)
            ring.storage.append(envelope)
            if let key { ring.ids[key] = ring.offset }
            ring.bytes += cost
            state.bytes += cost
            state.messages += 1
            state.stamps += 1
            ring.stamp = state.stamps
            state.order.append((topic, ring.stamp))
            state.rings[topic] = ring
            Self.evict(&state, publishedTo: topic, limit: policy.maxBytes)
            return PublishOutcome(position: HistoryPosition(offset: ring.offset, epoch: ring.epoch))
        }
    }

    /// The topic's position and the messages `query` asks for. A topic with no history yet
    /// (or an expired one) is at offset 0 of the epoch its next messages will carry.
    public func read(_ topic: Topic, _ query: HistoryQuery) -> HistoryPage {
        let now = ContinuousClock.now
        return state.withLock { state in
            if now >= state.nextSweep { Self.sweep(&state, now: now, ttl: ttl) }
            if let ring = state.rings[topic], now - ring.touched > ttl {
                Self.forget(ring, in: &state)
                state.rings[topic] = nil
            }
            guard let ring = state.rings[topic] else {
                let epoch = freshEpoch(for: topic, in: &state, now: now)
                return HistoryPage(position: HistoryPosition(offset: 0, epoch: epoch), messages: [], oldestHeld: nil)
            }
            let position = HistoryPosition(offset: ring.offset, epoch: ring.epoch)
            guard let oldest = ring.oldest, query.limit > 0 else {
                return HistoryPage(position: position, messages: [], oldestHeld: ring.oldest)
            }
            // After the newest there is nothing (and `after + 1` below cannot overflow).
            if let after = query.after, after >= ring.offset {
                return HistoryPage(position: position, messages: [], oldestHeld: oldest)
            }
            let low = max(oldest, (query.after ?? 0) + 1)
            let high = min(ring.offset, (query.before ?? Int.max) - 1)
            guard low <= high else { return HistoryPage(position: position, messages: [], oldestHeld: oldest) }
            let range = query.newest ? max(low, high - query.limit + 1)...high : low...min(high, low + query.limit - 1)
            guard let maxBytes = query.maxBytes else {
                return HistoryPage(position: position, messages: range.map { ring.message(at: $0) }, oldestHeld: oldest)
            }
            // From the end asked for, while the messages fit (the first always does).
            var messages: [Envelope] = []
            var bytes = 0
            var offset = query.newest ? range.upperBound : range.lowerBound
            while range.contains(offset) {
                let message = ring.message(at: offset)
                let cost = message.approximateBytes
                if !messages.isEmpty, bytes + cost > maxBytes { break }
                bytes += cost
                messages.append(message)
                offset += query.newest ? -1 : 1
            }
            if query.newest { messages.reverse() }
            return HistoryPage(position: position, messages: messages, oldestHeld: oldest, truncated: range.contains(offset))
        }
    }

    public func stats(backend: String) -> HistoryStats {
        let now = ContinuousClock.now
        return state.withLock { state in
            // Stats are read on every heartbeat and scrape: expired rings go even on a node
            // where nothing is published any more.
            if now >= state.nextSweep { Self.sweep(&state, now: now, ttl: ttl) }
            return HistoryStats(
                backend: backend, size: policy.size, ttlMilliseconds: policy.ttlMilliseconds, topics: state.rings.count,
                messages: state.messages, bytes: state.bytes, maxBytes: policy.maxBytes, duplicates: state.duplicates)
        }
    }

    /// Epochs remembered for topics read before any publish (for tests).
    var freshTopics: Int { state.withLock { $0.fresh.count } }

    static func cost(of envelope: Envelope) -> Int {
        var cost = envelope.data.bytes.count + (envelope.metadata?.bytes.count ?? 0) + envelope.id.utf8.count
            + (envelope.topic?.name.utf8.count ?? 0) + overheadPerMessage
        if let messageId = envelope.messageId { cost += 2 * messageId.utf8.count + overheadPerMessageId }
        return cost
    }

    /// The topic's live ring, or a new one when it has none or it expired: with the epoch
    /// a reader was told, if any.
    private func take(_ topic: Topic, from state: inout State, now: ContinuousClock.Instant) -> Ring {
        if let ring = state.rings.removeValue(forKey: topic) {
            if now - ring.touched <= ttl { return ring }
            Self.forget(ring, in: &state)
        }
        // A new ring counts from the start, so that a flood of one message per new topic is
        // bounded too; ``forget(_:in:)`` gives it all back.
        state.bytes += Self.overheadPerRing
        if let fresh = state.fresh.removeValue(forKey: topic), now - fresh.touched <= ttl {
            return Ring(epoch: fresh.epoch, bytes: Self.overheadPerRing, touched: now)
        }
        return Ring(epoch: newEpoch(&state), bytes: Self.overheadPerRing, touched: now)
    }

    private func newEpoch(_ state: inout State) -> String {
        state.generation += 1
        return "m\(processEpoch)-\(state.generation)"
    }

    /// The epoch the first publish to `topic` (which has no ring) will start, remembered.
    private func freshEpoch(for topic: Topic, in state: inout State, now: ContinuousClock.Instant) -> String {
        if let fresh = state.fresh[topic], now - fresh.touched <= ttl { return fresh.epoch }
        let epoch = newEpoch(&state)
        state.stamps += 1
        state.fresh[topic] = Fresh(epoch: epoch, touched: now, stamp: state.stamps)
        state.freshOrder.append((topic, state.stamps))
        while state.fresh.count > Self.maxFreshTopics, let oldest = state.freshOrder.popFirst() {
            if state.fresh[oldest.topic]?.stamp == oldest.stamp { state.fresh[oldest.topic] = nil }
        }
        if state.freshOrder.count > 2 * state.fresh.count + 16 {
            state.freshOrder = Deque(state.freshOrder.filter { state.fresh[$0.topic]?.stamp == $0.stamp })
        }
        return epoch
    }

    /// Drops the rings, and the epochs told to readers, of the topics `matching` says: their
    /// next publish starts a new epoch. For the fallback rings of a Redis server that is back:
    /// the stream went on in Redis meanwhile, so a position in a ring of the last outage
    /// must not be continued by the next one's messages as if nothing came between.
    public func forget(matching: (Topic) -> Bool) {
        state.withLock { state in
            for (topic, ring) in state.rings where matching(topic) {
                Self.forget(ring, in: &state)
                state.rings[topic] = nil
            }
            state.fresh = state.fresh.filter { !matching($0.key) }
        }
    }

    private static func forget(_ ring: Ring, in state: inout State) {
        state.messages -= ring.count
        state.bytes -= ring.bytes
    }

    private static func sweep(_ state: inout State, now: ContinuousClock.Instant, ttl: Duration) {
        for (topic, ring) in state.rings where now - ring.touched > ttl {
            forget(ring, in: &state)
            state.rings[topic] = nil
        }
        state.fresh = state.fresh.filter { now - $0.value.touched <= ttl }
        state.nextSweep = now + ttl
    }

    /// Brings the held bytes within `limit`: other rings first, least recently published
    /// first; then the oldest messages of `current` (the ring just published to), whose
    /// newest message always stays.
    private static func evict(_ state: inout State, publishedTo current: Topic, limit: Int) {
        while state.bytes > limit, let (topic, stamp) = state.order.first {
            guard let ring = state.rings[topic], ring.stamp == stamp else {
                state.order.removeFirst()  // stale: published to since, expired or evicted
                continue
            }
            if topic == current { break }  // the newest entry: every other ring is gone
            state.order.removeFirst()
            forget(ring, in: &state)
            state.rings[topic] = nil
        }
        if state.bytes > limit, var ring = state.rings[current] {
            while state.bytes > limit, ring.count > 1 {
                state.bytes -= ring.dropOldest()
                state.messages -= 1
            }
            state.rings[current] = ring
        }
        if state.order.count > 2 * state.rings.count + 16 {
            state.order = Deque(state.rings.map { (topic: $0.key, stamp: $0.value.stamp) }.sorted { $0.stamp < $1.stamp })
        }
    }
}
