import Broker
import Foundation
import NIOCore

/// A `subscribe` to a topic with history: its answer carries the topic's position, and for a
/// `since` or a `replay` the messages from history, then the live ones, none missing and none
/// repeated, even while messages are being published.
///
/// **How.** The subscription goes live first, but the registry *holds* this session's live
/// deliveries of the topic (``RecoveryTable``) instead of writing them. Then the history is read
/// (``PubSubAdapter/readHistory(_:_:completion:)``: on Redis only once the node's `SUBSCRIBE` is
/// in place, so every message is in the page or among the held ones, or both). Back on the
/// event loop the session answers `subscribed` with the page's position, writes the page's
/// messages, then the held messages past the position, and the topic goes live. Offsets are
/// what makes the join exact: a held message at or before the page's position was in history.
///
/// **Honest failure.** `recovered: false` (with the current position, and no history sent)
/// when the epoch differs, the offset is ahead of the topic, a message after it has been
/// trimmed (more than `HISTORY_SIZE` behind, or expired), the messages missed are more bytes
/// than one read takes (``ConnectionRegistry/historyBytes``: the client catches up over
/// `GET /api/history`, page by page), or the held messages passed ``RecoveryTable/limit``
/// while the read took. A history read that fails (Redis unreachable in the middle) answers
/// `recovered: false` without a position.
///
/// **Bounded reads.** Every read stops at ``ConnectionRegistry/historyBytes``: a `replay` of
/// large messages gets the newest that fit, and a `since` that does not fit reads no more than
/// that from Redis before it answers `recovered: false`. Without the bound one `subscribe`
/// could make the node read `HISTORY_SIZE` times the largest message, only to close the client
/// for having too much waiting.
///
/// Everything here runs on the session's event loop, the registry's executor.
enum HistoryRecovery {
    /// The read that answers `request` (nil: the position only).
    static func query(for request: HistoryRequest?, policy: HistoryPolicy, maxBytes: Int) -> HistoryQuery {
        switch request {
        case .since(let offset, _)?: HistoryQuery(after: offset, limit: policy.size, maxBytes: maxBytes)
        case .replay(let count)?: HistoryQuery(limit: min(count, policy.size), newest: true, maxBytes: maxBytes)
        case nil: HistoryQuery(limit: 0)
        }
    }

    /// What the session answers and sends, from the page read and the live messages held.
    struct Plan {
        var recovered: Bool?
        var position: HistoryPosition?
        /// The page came from the node's fallback rings (``HistoryPage/nodeOnly``).
        var nodeOnly = false
        var history: [Envelope]
        var live: [Delivery]
        /// All held messages at or before `position` of a subscription live before this
        /// `subscribe`: what it owed the client when the read was done.
        var owed: [Delivery] = []
        /// The `since` asked for: the client has what is at or before it.
        var since: HistoryPosition?
        /// Such a subscription's held messages overflowed: some are lost, which the connection's
        /// subscriptions of the topic hear as a `gap`.
        var gap = false
        /// What the recovery keeps dropping once answered (``RecoveryTable``): live messages at or
        /// before it still on their way were in the page. Nil when no page handed a live
        /// subscription's messages over: those still on their way are owed to the client too.
        var watermark: HistoryPosition?

        /// What is ``owed`` and the page written does not hold (a `replay` shorter than what came
        /// during the read, a page cut to fit, none at all), nor the client by its `since`:
        /// written ahead of the answer, as it would have been without it (a `subscribe` that
        /// only changes presence, or a `replay` on a topic a pattern delivers, must miss
        /// nothing). A page is the newest messages, so it holds those from its first on.
        var earlier: [Delivery] {
            let first = history.first?.historyPosition
            return owed.filter { delivery in
                guard let offset = delivery.offset else { return true }
                if let first, delivery.epoch == first.epoch, offset >= first.offset { return false }
                if let since, delivery.epoch == since.epoch, offset <= since.offset { return false }
                return true
            }
        }
    }

    /// Joins the page and the held live messages (a pure function; see the type's doc).
    /// `wasLive`: the connection received the topic before this `subscribe` (it subscribed the
    /// topic, or a pattern matching it).
    static func plan(
        request: HistoryRequest?, page: Result<HistoryPage, HistoryError>, held: RecoveryBuffer, wasLive: Bool = false
    ) -> Plan {
        let wantsRecovery: Bool = if case .since = request { true } else { false }
        // Without a page to hand them over in, a live subscription's messages go as they are.
        let passesThrough = request == nil && wasLive
        guard case .success(let page) = page else {
            return Plan(recovered: wantsRecovery ? false : nil, position: nil, history: [], live: held.deliveries)
        }
        var position = page.position
        if held.overflowed {
            // Live messages were dropped while the read took: start the client after the last
            // one seen, from which on nothing is missing.
            if let last = held.lastOffset, held.lastEpoch == position.epoch, last > position.offset {
                position.offset = last
            } else if let epoch = held.lastEpoch, let last = held.lastOffset {
                position = HistoryPosition(offset: last, epoch: epoch)
            }
            return Plan(
                recovered: false, position: position, nodeOnly: page.nodeOnly, history: [], live: [],
                gap: wasLive, watermark: passesThrough ? nil : position)
        }
        var history = page.messages
        var recovered: Bool? = nil
        if case .since(let offset, let epoch)? = request {
            recovered = !page.truncated && isComplete(page: page, after: offset, epoch: epoch)
            if recovered == false { history = [] }
        }
        let isLater = { (delivery: Delivery) -> Bool in
            guard let offset = delivery.offset, delivery.epoch == position.epoch else { return true }
            return offset > position.offset
        }
        return Plan(
            recovered: recovered, position: position, nodeOnly: page.nodeOnly, history: history,
            live: held.deliveries.filter(isLater), owed: wasLive ? held.deliveries.filter { !isLater($0) } : [],
            since: request?.since, watermark: passesThrough ? nil : position)
    }

    /// For a session that takes no deliveries now (its token expired while the history was
    /// read): nothing is written, and the answer names the position before the first message
    /// `plan` would have written, so that the `since` the client sends once it has a fresh token
    /// asks for every one of them (answered at the page's end, they would be lost).
    static func deferred(_ plan: Plan) -> Plan {
        var deferred = plan
        deferred.history = []
        deferred.live = []
        deferred.owed = []
        deferred.gap = false  // its catch-up (`since`) after the renewal reads them from history
        if let first = plan.earlier.first?.historyPosition ?? plan.history.first?.historyPosition ?? plan.live.first?.historyPosition, first.epoch == plan.position?.epoch, first.offset > 0 {
            deferred.position = HistoryPosition(offset: first.offset - 1, epoch: first.epoch)
        }
        return deferred
    }

    /// Cuts `plan` to `room` bytes, what the connection can still take before it counts as a
    /// slow consumer (other writes, an earlier recovery's page, may be waiting for the client
    /// already): a `since` that does not fit answers `recovered: false` without the history (the
    /// client reads it over `GET /api/history`), a `replay` gets its newest messages that fit.
    /// The live messages are kept: they are what the subscription delivers from now on.
    /// `historyBytes` and `liveBytes` are the frame sizes of `plan`'s messages.
    static func fit(_ plan: inout Plan, historyBytes: [Int], liveBytes: Int, room: Int, request: HistoryRequest?) {
        var total = historyBytes.reduce(liveBytes, +)
        guard total > room, !plan.history.isEmpty else { return }
        if case .since? = request {
            plan.recovered = false
            plan.history = []
            return
        }
        var first = 0
        while first < plan.history.count, total > room {
            total -= historyBytes[first]
            first += 1
        }
        plan.history.removeFirst(first)
    }

    /// True when `page` holds every message of stream `epoch` after `offset`, up to its position.
    static func isComplete(page: HistoryPage, after offset: Int, epoch: String) -> Bool {
        let current = page.position.offset
        guard epoch == page.position.epoch, offset <= current else { return false }
        guard offset < current else { return true }
        return page.messages.first?.offset == offset + 1 && page.messages.last?.offset == current
            && page.messages.count == current - offset
    }
}

/// The live messages a session's recovery holds back for one topic.
struct RecoveryBuffer {
    var deliveries: [Delivery] = []
    /// Frame bytes of `deliveries`.
    private(set) var bytes = 0
    var overflowed = false
    /// The last held (or dropped) message's position.
    var lastOffset: Int?
    var lastEpoch: String?

    /// Holds `delivery`, or gives up holding (``overflowed``) past `limit` messages or
    /// `byteLimit` bytes of frames.
    mutating func hold(_ delivery: Delivery, limit: Int, byteLimit: Int = .max) {
        if let offset = delivery.offset {
            lastOffset = offset
            lastEpoch = delivery.epoch
        }
        guard !overflowed else { return }
        let size = delivery.frame.bytes.readableBytes
        guard deliveries.count < limit, bytes + size <= byteLimit else {
            overflowed = true
            deliveries = []
            bytes = 0
            return
        }
        deliveries.append(delivery)
        bytes += size
    }
}

/// The recoveries on one registry: per session (its transport), per topic, either holding
/// live deliveries while the history is read, or, once answered, a *watermark*: live messages
/// at or before the answered position may still be on their way to this loop (the history page
/// and the live path race), and are dropped until the first one past it arrives, or until the
/// housekeeping sweep after next (``age()``) on a topic that gets no further message.
/// Empty almost always, and counted per topic, which keeps the delivery path of every other
/// topic at one check (``involves(_:)``).
struct RecoveryTable {
    /// Live messages held per recovery before it gives up (`recovered: false`).
    static let limit = 10_000
    /// Frame bytes held per recovery before it gives up: set by the registry to a quarter of
    /// `WEBSOCKET_MAX_PENDING_BYTES`, so that a page (three quarters at most) and what was held
    /// fit in what the client may have waiting.
    var byteLimit = Int.max

    private enum Entry {
        /// `recovery` tells this recovery from an earlier one of the same topic, cancelled by
        /// an unsubscribe, whose read may still come back; `requestId` is its `subscribe`'s.
        /// `covered`: the watermark of an earlier recovery this one replaced (a `subscribe` right
        /// after another's answer), whose messages are still dropped, not held to be sent twice.
        case holding(RecoveryBuffer, recovery: Int, requestId: JSONValue?, covered: HistoryPosition?)
        /// `aged`: a sweep has seen it already; the next one drops it.
        case after(HistoryPosition, aged: Bool)
    }

    private var table: [ObjectIdentifier: [Topic: Entry]] = [:]
    /// Entries per topic, so that deliveries of topics without any skip the table.
    private var entriesPerTopic: [Topic: Int] = [:]
    private var recoveriesBegun = 0

    var isEmpty: Bool { table.isEmpty }

    /// Whether some session holds or watermarks `topic` (its deliveries go through ``hold(_:for:topic:)``).
    func involves(_ topic: Topic) -> Bool { entriesPerTopic[topic] != nil }

    /// Starts holding `topic` for `transport` and returns the recovery's number, for
    /// ``finish(_:_:recovery:watermark:)``; nil when a recovery of it is already running.
    mutating func begin(_ transport: WebSocketTransport, _ topic: Topic, requestId: JSONValue?) -> Int? {
        let key = ObjectIdentifier(transport)
        var covered: HistoryPosition?
        switch table[key]?[topic] {
        case .holding?: return nil
        case .after(let position, _)?: covered = position
        case nil: entriesPerTopic[topic, default: 0] += 1
        }
        recoveriesBegun += 1
        table[key, default: [:]][topic] = .holding(RecoveryBuffer(), recovery: recoveriesBegun, requestId: requestId, covered: covered)
        return recoveriesBegun
    }

    /// Takes `delivery` when `transport`'s recovery of `topic` holds it or it falls before the
    /// watermark (dropped); false when it is to be written.
    mutating func hold(_ delivery: Delivery, for transport: WebSocketTransport, topic: Topic) -> Bool {
        let key = ObjectIdentifier(transport)
        switch table[key]?[topic] {
        case nil:
            return false
        case .holding(var buffer, let recovery, let requestId, let covered)?:
            if let covered, let offset = delivery.offset, delivery.epoch == covered.epoch, offset <= covered.offset { return true }
            buffer.hold(delivery, limit: Self.limit, byteLimit: byteLimit)
            table[key]![topic] = .holding(buffer, recovery: recovery, requestId: requestId, covered: covered)
            return true
        case .after(let position, _)?:
            if let offset = delivery.offset, delivery.epoch == position.epoch, offset <= position.offset { return true }
            remove(key, topic)
            return false
        }
    }

    /// Ends recovery number `recovery`'s holding, returning what it held, and keeps
    /// `watermark(buffer)` as the watermark; nil when that recovery is not running (the session
    /// left, or unsubscribed meanwhile, and maybe subscribed again: a later recovery's).
    mutating func finish(
        _ transport: WebSocketTransport, _ topic: Topic, recovery: Int, watermark: (RecoveryBuffer) -> HistoryPosition?
    ) -> RecoveryBuffer? {
        let key = ObjectIdentifier(transport)
        guard case .holding(let buffer, recovery, _, let covered)? = table[key]?[topic] else { return nil }
        // At offset 0 (nothing ever published) no live message can fall at or before the
        // position, so there is nothing to drop: an idle subscriber keeps no watermark.
        if let position = watermark(buffer) ?? covered, position.offset > 0 {
            table[key]![topic] = .after(position, aged: false)
        } else {
            remove(key, topic)
        }
        return buffer
    }

    /// A recovery an unsubscribe cancelled: its `subscribe` is still to be answered, and the
    /// live messages it held are still the session's when another of its subscriptions (a
    /// pattern) matches the topic.
    struct Cancelled {
        let requestId: JSONValue?
        let held: RecoveryBuffer
    }

    /// Forgets `topic` for `transport` (unsubscribed); the recovery that was running, if one was.
    mutating func cancel(_ transport: WebSocketTransport, _ topic: Topic) -> Cancelled? {
        let key = ObjectIdentifier(transport)
        let running: Cancelled? =
            if case .holding(let held, _, let requestId, _)? = table[key]?[topic] { Cancelled(requestId: requestId, held: held) } else { nil }
        remove(key, topic)
        return running
    }

    mutating func forget(_ transport: WebSocketTransport) {
        guard let topics = table.removeValue(forKey: ObjectIdentifier(transport)) else { return }
        for topic in topics.keys { uncount(topic) }
    }

    /// Called by each housekeeping sweep (every `WEBSOCKET_PING_INTERVAL`): drops the
    /// watermarks the previous sweep saw, so that one lives one to two intervals at most on a
    /// topic that gets no further message. A live message still on its way after that (a loop
    /// tens of seconds behind) is written once more; clients drop it by its offset.
    mutating func age() {
        for (key, topics) in table {
            for case let (topic, .after(position, aged)) in topics {
                if aged {
                    remove(key, topic)
                } else {
                    table[key]![topic] = .after(position, aged: true)
                }
            }
        }
    }

    private mutating func remove(_ key: ObjectIdentifier, _ topic: Topic) {
        guard table[key]?.removeValue(forKey: topic) != nil else { return }
        if table[key]!.isEmpty { table[key] = nil }
        uncount(topic)
    }

    private mutating func uncount(_ topic: Topic) {
        if entriesPerTopic[topic]! > 1 { entriesPerTopic[topic]! -= 1 } else { entriesPerTopic[topic] = nil }
    }
}

extension ConnectionRegistry {
    /// Writes what a cancelled recovery of `topic` held when `session` still subscribes to the
    /// topic through a pattern (those messages are that subscription's too); when it held too
    /// much and dropped some, a `gap` for each such pattern says so instead.
    func writeHeld(_ held: RecoveryBuffer, of topic: Topic, to session: WebSocketSession) {
        let matching = session.subscriptions.filter { $0.matches(topic) }
        guard !matching.isEmpty else { return }
        let transport = session.transport
        var written = 0
        if held.overflowed {
            writeGaps(for: matching, to: transport)
        } else {
            for delivery in held.deliveries where transport.write(delivery.frame, compressed: delivery.compressed) { written += 1 }
        }
        transport.flush()
        recordRecovered(written)
    }

    private func writeGaps(for subscriptions: [TopicPattern], to transport: WebSocketTransport) {
        for pattern in subscriptions {
            _ = transport.write(.text(Self.gapNotice(pattern.text, at: Date()), allocator: ByteBufferAllocator()))
        }
    }

    /// Starts a recovery of `topic` for session `id` (subscribed already): holds its live
    /// deliveries of the topic, reads the history, and finishes on this loop. `wasLive`: the
    /// session received the topic before this `subscribe` (``HistoryRecovery/plan(request:page:held:wasLive:)``).
    func recover(
        _ id: Int, topic: Topic, request: HistoryRequest?, requestId: JSONValue?, wasLive: Bool, adapter: any PubSubAdapter
    ) -> Bool {
        guard let session = sessionsById(id), let recovery = recoveries.begin(session.transport, topic, requestId: requestId)
        else { return false }
        let query = HistoryRecovery.query(for: request, policy: adapter.history, maxBytes: historyBytes)
        let loop = self.loop
        adapter.readHistory(topic, query) { page in
            loop.execute {
                self.assumeIsolated {
                    $0.finishRecovery(
                        id, topic: topic, recovery: recovery, request: request, requestId: requestId, wasLive: wasLive, page: page)
                }
            }
        }
        return true
    }

    private func finishRecovery(
        _ id: Int, topic: Topic, recovery: Int, request: HistoryRequest?, requestId: JSONValue?, wasLive: Bool,
        page: Result<HistoryPage, HistoryError>
    ) {
        guard let session = sessionsById(id) else { return }
        // What was read counts against the client's read budget, whatever becomes of it (a
        // recovery cancelled by an unsubscribe meanwhile, a `since` answered `recovered: false`).
        if case .success(let fetched) = page {
            session.transport.charge(work: fetched.messages.reduce(0) { $0 + $1.data.bytes.count + ($1.metadata?.bytes.count ?? 0) })
        }
        // A pattern subscribed while the history was read receives the topic too: its messages
        // held meanwhile are owed to the client like those of a subscription live before.
        let wasLive = wasLive || session.subscriptions.contains { $0.topic == nil && $0.matches(topic) }
        var plan: HistoryRecovery.Plan?
        guard
            recoveries.finish(session.transport, topic, recovery: recovery, watermark: { held in
                plan = HistoryRecovery.plan(request: request, page: page, held: held, wasLive: wasLive)
                return plan!.watermark
            }) != nil, let plan
        else { return }
        let transport = session.transport
        let allocator = ByteBufferAllocator()
        var history = plan.history.map { OutboundFrame.text(ServerMessage.message($0).encoded(), allocator: allocator) }
        let historyBytes = history.map(\.bytes.readableBytes)
        let liveBytes = plan.live.reduce(0) { $0 + $1.frame.bytes.readableBytes }
        var fitted = plan
        if transport.deliveriesWanted {
            HistoryRecovery.fit(
                &fitted, historyBytes: historyBytes, liveBytes: liveBytes, room: pendingLimit - transport.bufferedBytes,
                request: request)
        } else {
            fitted = HistoryRecovery.deferred(plan)
        }
        history.removeFirst(plan.history.count - fitted.history.count)
        var written = 0
        for delivery in fitted.earlier where transport.write(delivery.frame) { written += 1 }
        if fitted.gap { writeGaps(for: session.subscriptions.filter { $0.matches(topic) }, to: transport) }
        session.reply(
            .subscribedWithHistory(
                topic: topic.name, id: requestId, recovered: fitted.recovered, position: fitted.position, nodeOnly: fitted.nodeOnly))
        for frame in history where transport.write(frame) { written += 1 }
        for delivery in fitted.live where transport.write(delivery.frame) { written += 1 }
        if written > 0 { transport.flush() }
        recordRecovered(written)
    }
}
