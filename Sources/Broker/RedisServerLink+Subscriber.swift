import Foundation
import Logging
import NIOCore

/// The subscriber of a ``RedisServerLink``, run on one event loop of the node
/// (``RedisSubscriberState/loop``): no thread, poll loop or wake pipe of its own.
///
/// A *turn* (``subscriberTurn()``) runs on the loop whenever another thread wakes it
/// (``wakeSubscriber()``: an interest change, a publish in fallback, a failover action, a new
/// master) and when its one timer fires (the session's next deadline or keepalive, or the
/// reconnect). Each turn takes, under the link's lock, the local outbox and the interest
/// changes; delivers the outbox; (re)connects when the backoff has passed; sends the changes;
/// enforces the deadlines. What Redis sends arrives through the channel
/// (``RedisSubscriberSession/onBurst``) and is delivered from the loop, one batch per read
/// burst. A failure of the session (error, end of stream, late answer) is reported to the
/// state machine, the connection is closed and the next attempt waits for the backoff.
extension RedisServerLink {
    struct InterestChanges {
        var subscribe: [String] = []
        var unsubscribe: [String] = []
        var psubscribe: [String] = []
        var punsubscribe: [String] = []
        /// The node's patterns, when they changed (for filtering pattern messages).
        var patterns: SubscriptionIndex<TopicPattern>?
        /// The number of the last interest change included (``RedisInterestSettling``).
        var through: UInt64 = 0
    }

    private struct Opening {
        /// The master to connect to, and its generation (see RedisServerLink+Sentinel.swift).
        var target: RedisURL
        var generation: Int
        var channels: [String]
        var globs: [String]
        var patterns: SubscriptionIndex<TopicPattern>
        var through: UInt64
    }

    private enum Turn {
        /// Not started: nothing to do.
        case idle
        case stop
        case run(
            local: [RedisOutgoing], opening: Opening?, changes: InterestChanges?,
            deliver: @Sendable ([Envelope]) -> Void)
    }

    // MARK: - Any thread

    /// Queues one turn on the subscriber's loop (several wake-ups before it runs make one).
    func wakeSubscriber() {
        let subscriber = self.subscriber
        guard !subscriber.wakeQueued.exchange(true, ordering: .acquiringAndReleasing) else { return }
        subscriber.loop.execute { [self] in
            subscriber.wakeQueued.store(false, ordering: .releasing)
            subscriberTurn()
        }
    }

    // MARK: - The subscriber's loop

    func subscriberTurn() {
        let subscriber = self.subscriber
        subscriber.loop.preconditionInEventLoop()
        guard !subscriber.finished else { return }
        let now = ContinuousClock.now
        let hasSession = subscriber.session != nil
        let due = !hasSession && now >= subscriber.reconnectAt
        let triedGeneration = subscriber.triedGeneration
        let turn = state.withLock { state -> Turn in
            guard !state.machine.stopping, let deliver = state.deliver else {
                guard state.subscriberRunning else { return .idle }
                state.subscriberRunning = false
                return .stop
            }
            let local = state.local.takeAll()
            if !hasSession, let target = state.master, due || state.masterGeneration != triedGeneration {
                _ = state.machine.subscriberConnecting()
                // Everything wanted now is subscribed afresh; later changes arrive as dirty sets.
                state.subscribedChannels = state.channels
                state.subscribedGlobs = state.patterns.globs
                state.dirtyChannels.removeAll()
                state.dirtyGlobs.removeAll()
                let opening = Opening(
                    target: target, generation: state.masterGeneration, channels: Array(state.channels),
                    globs: Array(state.patterns.globs), patterns: state.patterns.index, through: state.settling.requested)
                return .run(local: local, opening: opening, changes: nil, deliver: deliver)
            }
            return .run(local: local, opening: nil, changes: hasSession ? Self.takeChanges(&state) : nil, deliver: deliver)
        }
        let local: [RedisOutgoing]
        let opening: Opening?
        let changes: InterestChanges?
        let deliver: @Sendable ([Envelope]) -> Void
        switch turn {
        case .idle: return
        case .stop:
            finishSubscriber()
            return
        case .run(let taken, let opened, let changed, let delivering):
            (local, opening, changes, deliver) = (taken, opened, changed, delivering)
        }
        if !local.isEmpty {
            let envelopes = recordLocally(local)
            if !envelopes.isEmpty { deliver(envelopes) }
        }

        do throws(RedisConnectionError) {
            if let session = subscriber.session { try requireCurrentMaster(session.url) }
            if let opening {
                subscriber.triedGeneration = opening.generation
                openSession(opening, now: now)
            }
            if let changes, let session = subscriber.session { session.send(changes, now: now) }
            placeEchoBarrier(now: now)
            try subscriber.session?.tend(now: ContinuousClock.now)
        } catch {
            sessionFailed(error)
            return
        }
        scheduleSubscriberTurn()
    }

    /// A failed publisher put back messages Redis may have published (``State/echoBarrier``):
    /// sends the `PING` after which their copies, if any, have been read. A connection not
    /// ready yet subscribed after they were sent and brings no copy of them: nothing to wait for.
    private func placeEchoBarrier(now: ContinuousClock.Instant) {
        let subscriber = self.subscriber
        let session = subscriber.session.flatMap { $0.isReady ? $0 : nil }
        let place = state.withLock { state -> Bool in
            guard state.echoBarrier == .wanted else { return false }
            state.echoBarrier = session == nil ? .none : .sent
            return true
        }
        guard place else { return }
        if let session {
            subscriber.echoBarrierPing = session.sendPing(now: now)
        } else {
            subscriber.echoBarrierPing = nil
            wakePublisher()
        }
    }

    /// The echo barrier's `PING` was answered, or its connection is gone: the publisher may
    /// send what a failure put back.
    private func passEchoBarrier() {
        subscriber.echoBarrierPing = nil
        let passed = state.withLock { state -> Bool in
            guard state.echoBarrier == .sent else { return false }
            state.echoBarrier = .none
            return true
        }
        if passed { wakePublisher() }
    }

    private func openSession(_ opening: Opening, now: ContinuousClock.Instant) {
        let subscriber = self.subscriber
        let session = RedisSubscriberSession(
            url: opening.target, clientName: "chorus:\(nodeId):sub", channels: channels, subscribe: opening.channels,
            psubscribe: opening.globs, patterns: opening.patterns, through: opening.through, timeout: timeout,
            pingInterval: Self.pingInterval(for: timeout), now: now, checks: subscriber.positions.checks(channels))
        session.onBurst = { [self, unowned session] progress in
            guard subscriber.session === session else { return }
            received(progress, on: session)
        }
        session.onFailure = { [self, unowned session] error in
            guard subscriber.session === session else { return }
            sessionFailed(error)
        }
        subscriber.session = session
        session.connect(on: subscriber.loop)
    }

    /// What one read burst brought: readiness, confirmed interest, messages to deliver.
    private func received(_ progress: RedisSubscriberSession.Progress, on session: RedisSubscriberSession) {
        let subscriber = self.subscriber
        if progress.malformed > 0 {
            for _ in 0..<progress.malformed { counters.countMalformed() }
            let level: Logger.Level = subscriber.warnedMalformed ? .debug : .warning
            subscriber.warnedMalformed = true
            logger.log(
                level: level, "Skipped malformed payloads from Redis",
                metadata: ["count": "\(progress.malformed)", "error": "\(progress.lastProblem ?? "")"])
        }
        noteRewind(progress.rewound, error: progress.rewindError)
        for envelope in progress.envelopes { subscriber.positions.note(envelope) }
        let pings = session.unansweredPings
        let confirmed = session.confirmedThrough
        if progress.becameReady {
            subscriber.backoff.reset()
            update { state in
                state.unansweredPings = pings
                return state.machine.subscriberReady()
            }
        }
        var published: [(RedisOutgoing, PublishOutcome)] = []
        var returnedAt: Date?
        let (envelopes, settled, deliver) = state.withLock {
            state -> ([Envelope], [@Sendable () -> Void], (@Sendable ([Envelope]) -> Void)?) in
            state.unansweredPings = pings
            returnedAt = state.returnedAt
            let settled = state.settling.confirm(through: confirmed)
            guard !state.machine.stopping, let deliver = state.deliver else { return ([], settled, nil) }
            // The node's own messages (and announcements) that Redis published although their
            // replies were lost.
            if state.inFlight != nil || !state.returned.isEmpty {
                // (No copy of the burst unless it holds announcements: this runs while batches fly.)
                let read = progress.gaps.isEmpty ? progress.envelopes : progress.envelopes + progress.gaps
                for envelope in read where envelope.origin == nodeId {
                    if state.inFlight != nil { state.echoes.record(envelope) }
                    if state.returned.remove(envelope.id) != nil, let message = state.queue.remove(id: envelope.id) {
                        published.append((message, PublishOutcome(position: envelope.historyPosition)))
                    }
                }
            }
            // The node's own messages that were delivered locally already.
            guard !state.doubtful.isEmpty else { return (progress.envelopes, settled, deliver) }
            return (progress.envelopes.filter { !state.doubtful.remove($0.id) }, settled, deliver)
        }
        if !envelopes.isEmpty { deliver?(envelopes) }
        if !progress.gaps.isEmpty, deliver != nil {
            let now = Date()
            let gap = PeerGap(
                announcements: progress.gaps.lazy.filter {
                    $0.origin != self.nodeId && !Self.coveredByOwnNotice($0, receivedAt: now, returnedAt: returnedAt)
                })
            if !gap.isEmpty { onPeerGap(gap) }
        }
        for (message, outcome) in published { message.completion?(outcome) }
        for body in settled { body() }
        // After this burst's copies took their messages out of the queue.
        if let ping = subscriber.echoBarrierPing, session.answeredPings >= ping { passEchoBarrier() }
        do throws(RedisConnectionError) {
            try session.tend(now: ContinuousClock.now)
        } catch {
            sessionFailed(error)
            return
        }
        scheduleSubscriberTurn()
    }

    /// The current session failed: closes it, falls back, and schedules the reconnect.
    private func sessionFailed(_ error: RedisConnectionError) {
        let subscriber = self.subscriber
        _ = subscriber.session?.close()
        subscriber.session = nil
        passEchoBarrier()
        update { state in
            state.unansweredPings = 0
            state.discoveryWanted = sentinel != nil
            return state.machine.subscriberFailed("\(error)")
        }
        wakeSentinel()
        subscriber.reconnectAt = ContinuousClock.now + subscriber.backoff.next()
        scheduleSubscriberTurn()
    }

    /// Keeps one timer for the next thing due: the session's deadline or keepalive, the
    /// reconnect, or (no master known yet) a look at the state every ping interval. A timer
    /// already due earlier is kept (its turn schedules the next one).
    private func scheduleSubscriberTurn() {
        let subscriber = self.subscriber
        let now = ContinuousClock.now
        let wakeUp =
            subscriber.session?.nextDeadline
            ?? (now >= subscriber.reconnectAt ? now + Self.pingInterval(for: timeout) : subscriber.reconnectAt)
        subscriber.timer.schedule(at: wakeUp, on: subscriber.loop) { [self] in
            subscriber.timer.fired()
            subscriberTurn()
        }
    }

    /// The link stops: closes the connection, and counts the subscriber out of ``stop()``'s
    /// wait once it is closed.
    private func finishSubscriber() {
        let subscriber = self.subscriber
        subscriber.finished = true
        subscriber.timer.cancel()
        let closing = subscriber.session?.close()
        subscriber.session = nil
        guard let closing else {
            workerExited()
            return
        }
        closing.whenComplete { [self] _ in workerExited() }
    }

    /// This node's publishes while the server is unreachable, ready for local delivery: a
    /// message on a topic with history gets its offset and epoch from the fallback rings (never
    /// the Redis stream's, which this node cannot continue); a repeated `messageId` is dropped.
    private func recordLocally(_ local: [RedisOutgoing]) -> [Envelope] {
        var envelopes: [Envelope] = []
        envelopes.reserveCapacity(local.count)
        for outgoing in local {
            var envelope = outgoing.envelope
            if let topic = outgoing.historyTopic {
                var outcome = fallbackHistory.record(&envelope, topic: topic)
                outcome.nodeOnly = true
                outcome.uncertain = outgoing.uncertain
                outgoing.completion?(outcome)
                if outcome.duplicate { continue }
            } else {
                outgoing.completion?(PublishOutcome(nodeOnly: true, uncertain: outgoing.uncertain))
            }
            envelopes.append(envelope)
        }
        return envelopes
    }

    /// The commands that bring the current connection to the wanted interest; nil when
    /// nothing changed.
    private static func takeChanges(_ state: inout State) -> InterestChanges? {
        guard state.hasDirtyInterest else { return nil }
        var changes = InterestChanges()
        for channel in state.dirtyChannels {
            let wanted = state.channels.contains(channel)
            if wanted, state.subscribedChannels.insert(channel).inserted {
                changes.subscribe.append(channel)
            } else if !wanted, state.subscribedChannels.remove(channel) != nil {
                changes.unsubscribe.append(channel)
            }
        }
        for glob in state.dirtyGlobs {
            let wanted = state.patterns.wants(glob)
            if wanted, state.subscribedGlobs.insert(glob).inserted {
                changes.psubscribe.append(glob)
            } else if !wanted, state.subscribedGlobs.remove(glob) != nil {
                changes.punsubscribe.append(glob)
            }
        }
        if !state.dirtyGlobs.isEmpty { changes.patterns = state.patterns.index }
        state.dirtyChannels.removeAll()
        state.dirtyGlobs.removeAll()
        changes.through = state.settling.requested
        // A marker PING follows the changes; until it is answered the link is not settled.
        state.unansweredPings += 1
        return changes
    }
}
