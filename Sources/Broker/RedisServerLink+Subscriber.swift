#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Logging

/// The subscriber thread of a ``RedisServerLink``: one `poll` loop that never blocks elsewhere.
///
/// Each turn it takes, under the link's lock, the local outbox and the interest changes;
/// delivers the outbox; (re)connects when the backoff has passed; sends the changes; then
/// `poll`s the wake pipe and the socket until the session's next deadline. A failure of the
/// session (error, end of stream, late answer) is reported to the state machine, the
/// connection is closed and the next attempt waits for the backoff.
extension RedisServerLink {
    struct InterestChanges {
        var subscribe: [String] = []
        var unsubscribe: [String] = []
        var psubscribe: [String] = []
        var punsubscribe: [String] = []
        /// The patterns by glob, when they changed (for filtering pattern messages).
        var patterns: [String: Set<TopicPattern>]?
    }

    private struct Opening {
        var channels: [String]
        var globs: [String]
        var patterns: [String: Set<TopicPattern>]
    }

    private enum Turn {
        case stop
        case run(local: [RedisOutgoing], opening: Opening?, changes: InterestChanges?, waiters: [@Sendable (Bool) -> Void])
    }

    func runSubscriber(deliver: @escaping @Sendable ([Envelope]) -> Void) {
        let clock = ContinuousClock()
        let pingInterval = Self.pingInterval(for: timeout)
        var session: RedisSubscriberSession? = nil
        var backoff = Self.reconnectBackoff()
        var reconnectAt = clock.now
        var warnedMalformed = false
        /// Settle waiters with the number of `PING`s whose answer they wait for.
        var armed: [(pings: Int, body: @Sendable (Bool) -> Void)] = []
        func fireArmed(answered: Int?) {
            guard !armed.isEmpty else { return }
            let throughRedis = answered != nil && state.withLock { $0.machine.publishesThroughRedis }
            var waiting: [(pings: Int, body: @Sendable (Bool) -> Void)] = []
            for waiter in armed {
                if let answered, waiter.pings > answered { waiting.append(waiter) } else { waiter.body(throughRedis) }
            }
            armed = waiting
        }
        while true {
            let now = clock.now
            let open = session == nil && now >= reconnectAt
            let hasSession = session != nil
            let turn = state.withLock { state -> Turn in
                if state.machine.stopping { return .stop }
                let local = state.local.takeAll()
                let waiters = state.settleWaiters
                state.settleWaiters.removeAll()
                if open {
                    _ = state.machine.subscriberConnecting()
                    // Everything wanted now is subscribed afresh; later changes arrive as dirty sets.
                    state.subscribedChannels = state.channels
                    state.subscribedGlobs = Set(state.patterns.keys)
                    state.dirtyChannels.removeAll()
                    state.dirtyGlobs.removeAll()
                    let opening = Opening(channels: Array(state.channels), globs: Array(state.patterns.keys), patterns: state.patterns)
                    return .run(local: local, opening: opening, changes: nil, waiters: waiters)
                }
                return .run(local: local, opening: nil, changes: hasSession ? Self.takeChanges(&state) : nil, waiters: waiters)
            }
            guard case .run(let local, let opening, let changes, let waiters) = turn else {
                fireArmed(answered: nil)
                return
            }
            if !local.isEmpty {
                let envelopes = recordLocally(local)
                if !envelopes.isEmpty { deliver(envelopes) }
            }
            // Waiters not armed yet: told `false` if the connection fails before they are.
            var unarmed = waiters

            do {
                if let opening {
                    session = try RedisSubscriberSession(
                        url: url, clientName: "chorus:\(nodeId):sub", channels: channels, subscribe: opening.channels,
                        psubscribe: opening.globs, patterns: opening.patterns, timeout: timeout,
                        pingInterval: pingInterval, now: now)
                }
                if let changes, let session { try session.send(changes, now: now) }
                unarmed = []
                if let session {
                    for waiter in waiters { armed.append((session.pingsSent, waiter)) }
                    // Interest taken in an earlier turn may be confirmed already: nothing more
                    // will arrive on the socket to fire these.
                    if !waiters.isEmpty, session.isReady { fireArmed(answered: session.pongsReceived) }
                } else {
                    for waiter in waiters { waiter(false) }
                }

                // Wait for the wake pipe, the socket, or the next deadline.
                let wakeUp = session?.nextDeadline ?? reconnectAt
                var descriptors = [pollfd(fd: subscriberWake.readDescriptor, events: Int16(POLLIN), revents: 0)]
                if let session {
                    descriptors.append(pollfd(fd: session.connection.fileDescriptor, events: session.pollEvents, revents: 0))
                }
                let waited = poll(&descriptors, nfds_t(descriptors.count), Self.milliseconds(wakeUp - clock.now))
                if waited < 0, errno != EINTR {
                    throw RedisConnectionError("poll on \(url.server): errno \(errno)")
                }
                if descriptors[0].revents != 0 { subscriberWake.drain() }
                guard let session else { continue }

                let progress = try session.service(descriptors[1].revents, now: clock.now)
                try session.tend(now: clock.now)
                let pings = session.unansweredPings
                if progress.malformed > 0 {
                    for _ in 0..<progress.malformed { counters.countMalformed() }
                    let level: Logger.Level = warnedMalformed ? .debug : .warning
                    warnedMalformed = true
                    logger.log(
                        level: level, "Skipped malformed payloads from Redis",
                        metadata: ["count": "\(progress.malformed)", "error": "\(progress.lastProblem ?? "")"])
                }
                if progress.becameReady {
                    backoff.reset()
                    update { state in
                        state.unansweredPings = pings
                        return state.machine.subscriberReady()
                    }
                }
                fireArmed(answered: session.pongsReceived)
                let envelopes = state.withLock { state -> [Envelope] in
                    state.unansweredPings = pings
                    guard !state.machine.stopping else { return [] }
                    // The node's own messages that were delivered locally already.
                    guard !state.doubtful.isEmpty else { return progress.envelopes }
                    return progress.envelopes.filter { !state.doubtful.remove($0.id) }
                }
                if !envelopes.isEmpty { deliver(envelopes) }
            } catch {
                session = nil
                fireArmed(answered: nil)
                for waiter in unarmed { waiter(false) }
                update { state in
                    state.unansweredPings = 0
                    return state.machine.subscriberFailed("\(error)")
                }
                reconnectAt = clock.now + backoff.next()
            }
        }
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
                let outcome = fallbackHistory.record(&envelope, topic: topic)
                outgoing.completion?(outcome)
                if outcome.duplicate { continue }
            } else {
                outgoing.completion?(.accepted)
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
            let wanted = state.patterns[glob] != nil
            if wanted, state.subscribedGlobs.insert(glob).inserted {
                changes.psubscribe.append(glob)
            } else if !wanted, state.subscribedGlobs.remove(glob) != nil {
                changes.punsubscribe.append(glob)
            }
        }
        if !state.dirtyGlobs.isEmpty { changes.patterns = state.patterns }
        state.dirtyChannels.removeAll()
        state.dirtyGlobs.removeAll()
        // A marker PING follows the changes; until it is answered the link is not settled.
        state.unansweredPings += 1
        return changes
    }
}
