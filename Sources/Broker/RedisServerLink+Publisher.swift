import Logging
import NIOCore

/// A batch of publishes written as one pipeline, and what its replies have said so far.
/// Owned by the link's event loop (``RedisPublisherState/batch``).
struct RedisPublishBatch {
    let messages: [RedisOutgoing]
    /// Replies still due: one per group, then one per group sent again after a `NOSCRIPT`.
    var due: Int
    /// Messages whose group's reply arrived, in order.
    var acknowledged = 0
    /// Groups whose server had lost the script (`NOSCRIPT`: nothing ran), sent again once
    /// every first reply is in.
    var lost: [Range<Int>] = []
    /// The messages of lost groups not answered yet, in order.
    var unanswered: [RedisOutgoing] = []
    var firstError: String?
    /// Messages Redis refused so far (``refuse(_:)``).
    private(set) var refused = 0

    /// Notes `count` messages Redis refused (with `error`, when it answered one), in the
    /// adapter's counters too.
    mutating func refuse(_ count: Int, error: String?, counters: RedisAdapterCounters) {
        counters.countRefused(count)
        refused += count
        if firstError == nil { firstError = error }
    }

    /// What goes back to the front of the queue when the connection fails now.
    var unacknowledged: [RedisOutgoing] { unanswered + messages[acknowledged...] }
}

/// The publisher of a ``RedisServerLink``, run on the link's event loop
/// (``RedisPublisherState/loop``, the subscriber's): no thread of its own.
///
/// - A *turn* (``publisherTurn()``) runs when another thread wakes it (``wakePublisher()``: the
///   first publish into an empty queue, a failover action, a new master), when a batch is
///   answered, and when its timer fires (a deadline, a keepalive, the reconnect). A publish
///   made on this loop queues its turn without waking anything: its `PUBLISH` is written in
///   the same pass of the loop.
/// - It connects when the state machine wants a publisher
///   (``RedisLinkStateMachine/publisherWanted``), after the backoff unless it is retrying a
///   connection that just closed.
/// - It writes the whole publish queue as one pipeline; the batch is *in flight* (in the shared
///   state) until every reply is read. On a failure the replies already read are the messages
///   Redis acknowledged; the rest go back to the front of the queue, to be retried on a fresh
///   connection or delivered locally, as the state machine decides. A fall back meanwhile takes
///   the batch in flight for local delivery, and the publisher then leaves it alone.
extension RedisServerLink {
    /// How long a publisher connection must have lived for its close while idle to be retried
    /// at once whatever came before.
    static let idleCloseMinimumLife: Duration = .milliseconds(100)
    private static let publishCommand = Array("PUBLISH".utf8)
    private static let evalshaCommand = Array("EVALSHA".utf8)

    // MARK: - Any thread

    /// Queues one turn on the publisher's loop (several wake-ups before it runs make one).
    func wakePublisher() {
        let publisher = self.publisher
        guard !publisher.wakeQueued.exchange(true, ordering: .acquiringAndReleasing) else { return }
        publisher.loop.execute { [self] in
            publisher.wakeQueued.store(false, ordering: .releasing)
            publisherTurn()
        }
    }

    // MARK: - The publisher's loop

    private enum PublisherStep {
        case none
        case stop
        case connect(RedisURL, retrying: Bool)
        case noMaster
        case publish([RedisOutgoing])
    }

    func publisherTurn() {
        let publisher = self.publisher
        publisher.loop.preconditionInEventLoop()
        guard !publisher.finished else { return }
        if let session = publisher.session, let moved = masterMoved(from: session.url) {
            dropPublisherSession()
            update { $0.machine.publisherFailed(moved, .closed, retryable: false) }
        }
        let now = ContinuousClock.now
        let hasSession = publisher.session != nil
        let canPublish = publisher.readyAt != nil && publisher.batch == nil
        let step = state.withLock { state -> PublisherStep in
            guard !state.machine.stopping else {
                guard state.publisherRunning else { return .none }
                state.publisherRunning = false
                return .stop
            }
            guard state.publisherRunning else { return .none }
            if !hasSession {
                guard state.machine.publisherWanted, state.machine.publisherRetrying || now >= publisher.nextAttempt else {
                    return .none
                }
                _ = state.machine.publisherConnecting()
                guard let target = sentinel == nil ? url : state.master else { return .noMaster }
                return .connect(target, retrying: state.machine.publisherRetrying)
            }
            guard canPublish, !state.queue.isEmpty else { return .none }
            // Put back by a failed publisher: not before the subscriber has caught up.
            guard state.returned.isEmpty || state.echoBarrier == .none else { return .none }
            let batch = state.queue.takeAll()
            state.inFlight = batch
            state.returned.removeAll()  // sent again: the subscriber has read their copies, if any
            return .publish(batch)
        }
        switch step {
        case .none:
            break
        case .stop:
            finishPublisher()
            return
        case .noMaster:
            publisherFailed(RedisConnectionError("no master for '\(url.host)' from Sentinel yet"), retryable: false)
            return
        case .connect(let target, let retrying):
            openPublisherSession(target, retrying: retrying, now: now)
        case .publish(let batch):
            write(batch, now: now)
        }
        do throws(RedisConnectionError) {
            try publisher.session?.tend(now: ContinuousClock.now)
        } catch {
            sessionFailed(error)
            return
        }
        schedulePublisherTurn()
    }

    /// The current session failed: before it was ready (connect, handshake, `ROLE`, script)
    /// it is not retried at once, and with Sentinel the master is looked up again.
    private func sessionFailed(_ error: RedisConnectionError) {
        let publisher = self.publisher
        guard let readyAt = publisher.readyAt else {
            wantDiscovery()
            publisherFailed(error, retryable: false)
            return
        }
        // Closed while idle (Redis' own `timeout`, a proxy's) after living a while: nothing
        // was lost, so it is retried at once even if it was itself a retry. The minimum life
        // keeps a server that closes every connection from spinning the publisher.
        let idleClose = publisher.batch == nil && ContinuousClock.now - readyAt >= Self.idleCloseMinimumLife
        publisherFailed(error, retryable: publisher.retryable || idleClose)
    }

    private func openPublisherSession(_ target: RedisURL, retrying: Bool, now: ContinuousClock.Instant) {
        let publisher = self.publisher
        let session = RedisPublisherSession(
            url: target, clientName: "chorus:\(nodeId):pub", roleRequired: sentinel != nil, loadScript: history.isEnabled,
            timeout: timeout, pingInterval: Self.pingInterval(for: timeout), now: now,
            // Reconnecting alone (the subscriber stayed up): nothing else checks before this
            // publisher's first publish. Otherwise the subscriber's check does, as the node
            // publishes through Redis only once both are up; checking twice would double what
            // every node's reconnect costs Redis.
            checks: subscriber.session?.isReady == true ? subscriber.positions.checks(channels) : [])
        session.onRewindChecked = { [self] reset, denied in noteRewind(reset, error: denied) }
        session.onReady = { [self, unowned session] digest in
            guard publisher.session === session else { return }
            publisher.readyAt = ContinuousClock.now
            publisher.scriptDigest = digest
            publisher.retryable = !retrying
            update { $0.machine.publisherConnected() }
            publisherTurn()
        }
        session.onKeepalive = { [self] in
            publisher.retryable = true
            publisher.backoff.reset()
            schedulePublisherTurn()  // the next keepalive is due before the answer's deadline
        }
        session.onRoleUnchecked = { [self, server = target.server] error in
            logger.warning(
                "Redis refused ROLE: this node cannot tell if the server is demoted to a replica, where its publishes would reach no other node; allow ROLE in the node's Redis ACL (+role)",
                metadata: ["server": "\(server)", "error": "\(error)"])
        }
        session.onFailure = { [self, unowned session] error in
            guard publisher.session === session else { return }
            sessionFailed(error)
        }
        publisher.session = session
        publisher.readyAt = nil
        session.connect(on: publisher.loop)
    }

    /// Writes `batch` as one pipeline and flushes it. A message without history is one
    /// `PUBLISH`; each run of consecutive messages with history is one `EVALSHA` of the history
    /// script per ``RedisHistory/publishBatchLimit`` messages (see
    /// ``RedisHistory/publishGroups(_:limit:)``), which stores and publishes them in order and
    /// answers for all of them at once: they are acknowledged together or not at all, so a
    /// connection lost before the reply puts the whole call back in the queue.
    private func write(_ batch: [RedisOutgoing], now: ContinuousClock.Instant) {
        let publisher = self.publisher
        guard let session = publisher.session else { return }
        // A topic whose history is gone starts a new stream under this epoch.
        let newEpoch = MemoryHistory.randomEpoch()
        // (Without the script, which a connection with history always loads, each message is a `PUBLISH`.)
        let digest = publisher.scriptDigest
        let groups = RedisHistory.publishGroups(batch, limit: digest == nil ? 1 : RedisHistory.publishBatchLimit)
        publisher.batch = RedisPublishBatch(messages: batch, due: groups.count)
        for group in groups {
            session.send(command(batch, group, digest, newEpoch: newEpoch), now: now) { [self] reply in
                firstReply(reply, group: group, scripted: digest != nil)
            }
        }
        session.flush()
    }

    private func command(_ batch: [RedisOutgoing], _ group: Range<Int>, _ digest: [UInt8]?, newEpoch: String) -> [[UInt8]] {
        guard batch[group.lowerBound].historyTopic != nil, let digest else {
            let outgoing = batch[group.lowerBound]
            return [Self.publishCommand, Array(outgoing.channel.utf8), outgoing.payload]
        }
        return [Self.evalshaCommand, digest]
            + RedisHistory.publishArguments(channels, batch: batch[group], policy: history, newEpoch: newEpoch)
    }

    /// The reply to a group's first sending. A server that lost the script (`SCRIPT FLUSH`, a
    /// restart behind a proxy) answers `NOSCRIPT` and ran nothing: those groups are sent again,
    /// in order, once every first reply is in, after loading the script again. (Their order
    /// relative to the messages *without* history in the same pipeline may change; each topic
    /// keeps its order.)
    private func firstReply(_ reply: RedisReply, group: Range<Int>, scripted: Bool) {
        let publisher = self.publisher
        guard var batch = publisher.batch else { return }
        batch.acknowledged += group.count
        batch.due -= 1
        if batch.messages[group.lowerBound].historyTopic != nil, scripted {
            if case .error(let message) = reply, message.hasPrefix("NOSCRIPT") {
                batch.lost.append(group)
                batch.unanswered += batch.messages[group]
            } else {
                complete(group, of: &batch, reply)
            }
        } else if case .error(let message) = reply {
            batch.refuse(group.count, error: message, counters: counters)
        }
        publisher.batch = batch
        guard batch.due == 0 else { return }
        guard batch.lost.isEmpty else {
            resendLostGroups()
            return
        }
        batchAnswered()
    }

    /// Loads the script again and sends the groups that met `NOSCRIPT`, in order.
    private func resendLostGroups() {
        let publisher = self.publisher
        guard let session = publisher.session, var batch = publisher.batch else { return }
        let lost = batch.lost
        batch.lost = []
        batch.due = lost.count
        publisher.batch = batch
        let now = ContinuousClock.now
        let newEpoch = MemoryHistory.randomEpoch()
        // A server that lost the script may have restarted behind a proxy, with older data.
        session.checkHistory(subscriber.positions.checks(channels), now: now)
        session.loadScript(now: now) { digest in publisher.scriptDigest = digest }
        // The digest is the script's SHA-1: the same one, so the calls can follow at once.
        let digest = publisher.scriptDigest
        for group in lost {
            session.send(command(batch.messages, group, digest, newEpoch: newEpoch), now: now) { [self] reply in
                guard var batch = publisher.batch else { return }
                complete(group, of: &batch, reply)
                batch.unanswered.removeFirst(group.count)
                batch.due -= 1
                publisher.batch = batch
                if batch.due == 0 { batchAnswered() }
            }
        }
        session.flush()
    }

    /// Tells the messages of a script call its reply.
    private func complete(_ group: Range<Int>, of batch: inout RedisPublishBatch, _ reply: RedisReply) {
        guard let outcomes = RedisHistory.outcomes(reply, count: group.count) else {
            for outgoing in batch.messages[group] {
                outgoing.completion?(.refused("Redis refused the history script: \(reply)"))
            }
            let error: String? = if case .error(let message) = reply { message } else { nil }
            batch.refuse(group.count, error: error, counters: counters)
            return
        }
        for (outgoing, outcome) in zip(batch.messages[group], outcomes) {
            if let refusal = outcome.refusal {
                batch.refuse(1, error: refusal, counters: counters)
                outgoing.completion?(.refused("Redis refused the history script: \(refusal)"))
            } else {
                counters.countHistory(duplicate: outcome.duplicate)
                if !outcome.duplicate, let topic = outgoing.historyTopic, let position = outcome.position {
                    subscriber.positions.note(topic, position)
                }
                outgoing.completion?(outcome)
            }
        }
    }

    /// Every reply of the batch is in: the next batch may go.
    private func batchAnswered() {
        let publisher = self.publisher
        guard let batch = publisher.batch else { return }
        publisher.batch = nil
        publisher.retryable = true
        publisher.backoff.reset()
        state.withLock { state in
            state.inFlight = nil
            state.echoes.removeAll()
        }
        if let errorReply = batch.firstError {
            noteRefusal(errorReply)
            if let count = publisher.refusalLog.refused(batch.refused, error: errorReply, now: .now) {
                logger.warning(
                    "Redis refused publishes", metadata: ["error": "\(errorReply)", "refusedSinceLastLine": "\(count)"])
            }
        }
        publisherTurn()
    }

    /// The current session failed (or is dropped): the batch Redis did not acknowledge goes
    /// back to the front of the queue, unless a fall back took it already; the state machine
    /// decides between a quick retry and a fall back; the reconnect waits for the backoff.
    private func publisherFailed(_ error: RedisConnectionError, retryable: Bool) {
        let publisher = self.publisher
        let batch = publisher.batch
        dropPublisherSession()
        publisher.nextAttempt = ContinuousClock.now + publisher.backoff.next()
        if let batch {
            logger.debug(
                "A PUBLISH pipeline failed; the unacknowledged messages are retried or delivered locally",
                metadata: ["count": "\(batch.unacknowledged.count)", "error": "\(error)"])
        }
        let retryable = retryable || (batch?.acknowledged ?? 0) > 0
        var published: [(RedisOutgoing, PublishOutcome)] = []
        var barrier = false
        update { state in
            if let batch, state.inFlight != nil {
                state.inFlight = nil
                // Those Redis published back are done: sending them again would duplicate them.
                let split = state.echoes.split(batch.unacknowledged)
                published = split.published
                state.queue.prepend(split.unpublished)
                for message in split.unpublished { state.returned.insert(message.envelope.id) }
                if !split.unpublished.isEmpty {
                    state.echoBarrier = .wanted
                    barrier = true
                }
            }
            return state.machine.publisherFailed("\(error)", error.isTimeout ? .timeout : .closed, retryable: retryable)
        }
        for (message, outcome) in published { message.completion?(outcome) }
        if barrier { wakeSubscriber() }
        schedulePublisherTurn()
    }

    private func dropPublisherSession() {
        let publisher = self.publisher
        _ = publisher.session?.close()
        publisher.session = nil
        publisher.readyAt = nil
        publisher.batch = nil
    }

    /// Keeps one timer for the next thing due: the session's deadline or keepalive, or the
    /// reconnect. A timer already due earlier is kept (its turn schedules the next one).
    private func schedulePublisherTurn() {
        let publisher = self.publisher
        let now = ContinuousClock.now
        let wakeUp =
            publisher.session?.nextDeadline
            ?? (publisher.nextAttempt > now ? publisher.nextAttempt : now + Self.pingInterval(for: timeout))
        publisher.timer.schedule(at: wakeUp, on: publisher.loop) { [self] in
            publisher.timer.fired()
            publisherTurn()
        }
    }

    /// The link stops: closes the connection, and counts the publisher out of ``stop()``'s
    /// wait once it is closed.
    private func finishPublisher() {
        let publisher = self.publisher
        publisher.finished = true
        publisher.timer.cancel()
        let closing = publisher.session?.close()
        publisher.session = nil
        // Redis may or may not have run them: their publishers hear that the node stopped.
        for outgoing in publisher.batch?.unacknowledged ?? [] { outgoing.completion?(.refused("the node is stopping")) }
        publisher.batch = nil
        guard let closing else {
            workerExited()
            return
        }
        closing.whenComplete { [self] _ in workerExited() }
    }
}
