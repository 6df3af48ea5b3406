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
        /// The number of the last interest change included (``RedisInterestSettling``).
        var through: UInt64 = 0
    }

    private struct Opening {
        /// The master to connect to, and its generation (see RedisServerLink+Sentinel.swift).
        var target: RedisURL
        var generation: Int
        var channels: [String]
        var globs: [String]
        var patterns: [String: Set<TopicPattern>]
        var through: UInt64
    }

    private enum Turn {
        case stop
        case run(local: [RedisOutgoing], opening: Opening?, changes: InterestChanges?)
    }

    func runSubscriber(deliver: @escaping @Sendable ([Envelope]) -> Void) {
        let clock = ContinuousClock()
        let pingInterval = Self.pingInterval(for: timeout)
        var session: RedisSubscriberSession? = nil
        var backoff = Self.reconnectBackoff()
        var reconnectAt = clock.now
        var warnedMalformed = false
        /// The master generation of the last attempt: a new master is tried without the backoff.
        var triedGeneration = -1
        while true {
            let now = clock.now
            let due = session == nil && now >= reconnectAt
            let hasSession = session != nil
            let turn = state.withLock { state -> Turn in
                if state.machine.stopping { return .stop }
                let local = state.local.takeAll()
                if !hasSession, let target = state.master, due || state.masterGeneration != triedGeneration {
                    _ = state.machine.subscriberConnecting()
                    // Everything wanted now is subscribed afresh; later changes arrive as dirty sets.
                    state.subscribedChannels = state.channels
                    state.subscribedGlobs = Set(state.patterns.keys)
                    state.dirtyChannels.removeAll()
                    state.dirtyGlobs.removeAll()
                    let opening = Opening(
                        target: target, generation: state.masterGeneration, channels: Array(state.channels),
                        globs: Array(state.patterns.keys), patterns: state.patterns, through: state.settling.requested)
                    return .run(local: local, opening: opening, changes: nil)
                }
                return .run(local: local, opening: nil, changes: hasSession ? Self.takeChanges(&state) : nil)
            }
            guard case .run(let local, let opening, let changes) = turn else { return }
            if !local.isEmpty {
                let envelopes = recordLocally(local)
                if !envelopes.isEmpty { deliver(envelopes) }
            }

            do {
                if let session { try requireCurrentMaster(session.connection.url) }
                if let opening {
                    triedGeneration = opening.generation
                    session = try RedisSubscriberSession(
                        url: opening.target, clientName: "chorus:\(nodeId):sub", channels: channels, subscribe: opening.channels,
                        psubscribe: opening.globs, patterns: opening.patterns, through: opening.through, timeout: timeout,
                        pingInterval: pingInterval, now: now)
                }
                if let changes, let session { try session.send(changes, now: now) }

                // Wait for the wake pipe, the socket, or the next deadline.
                // (Without a master yet, the sentinel thread's wake-up ends the wait.)
                let wakeUp = session?.nextDeadline ?? max(reconnectAt, due ? now + pingInterval : reconnectAt)
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
                let confirmed = session.confirmedThrough
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
                let (envelopes, settled) = state.withLock { state -> ([Envelope], [@Sendable () -> Void]) in
                    state.unansweredPings = pings
                    let settled = state.settling.confirm(through: confirmed)
                    guard !state.machine.stopping else { return ([], settled) }
                    // The node's own messages that were delivered locally already.
                    guard !state.doubtful.isEmpty else { return (progress.envelopes, settled) }
                    return (progress.envelopes.filter { !state.doubtful.remove($0.id) }, settled)
                }
                if !envelopes.isEmpty { deliver(envelopes) }
                for body in settled { body() }
            } catch {
                session = nil
                update { state in
                    state.unansweredPings = 0
                    state.discoveryWanted = sentinel != nil
                    return state.machine.subscriberFailed("\(error)")
                }
                sentinelWake?.signal()
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
        changes.through = state.settling.requested
        // A marker PING follows the changes; until it is answered the link is not settled.
        state.unansweredPings += 1
        return changes
    }
}
