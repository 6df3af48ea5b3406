import Dispatch
import Logging

/// The publisher thread of a ``RedisServerLink``: a blocking connection whose every round trip
/// (connect, handshake, pipeline, `PING`) is bounded by `timeout`.
///
/// - It connects when the state machine wants a publisher (``RedisLinkStateMachine/publisherWanted``),
///   after the backoff unless it is retrying a connection that just closed.
/// - It sends the whole publish queue as one pipeline; the batch is *in flight* (in the shared
///   state) until every reply is read. On a failure the replies already read are the messages
///   Redis acknowledged; the rest go back to the front of the queue, to be retried on a fresh
///   connection or delivered locally, as the state machine decides. A fall back meanwhile takes
///   the batch in flight for local delivery, and the thread then leaves it alone.
/// - Idle for ``RedisServerLink/pingInterval(for:)``, it sends a `PING`: a dead connection is
///   found before a publish needs it, and Redis' `timeout` never closes it as idle.
extension RedisServerLink {
    private enum PublisherStep {
        case exit
        case sleep(until: ContinuousClock.Instant?)
        case connect
        case publish([RedisOutgoing])
        case ping
    }

    private static let publishCommand = Array("PUBLISH".utf8)
    private static let evalshaCommand = Array("EVALSHA".utf8)

    func runPublisher() {
        let clock = ContinuousClock()
        let pingInterval = Self.pingInterval(for: timeout)
        var connection: RedisConnection? = nil
        var backoff = Self.reconnectBackoff()
        var nextAttempt = clock.now
        var lastUsed = clock.now
        var warnedErrorReply = false
        /// The current connection answered a round trip, or was not made by an immediate retry:
        /// if it closes, one immediate retry is allowed.
        var retryable = true
        /// The digest of ``RedisHistory/publishScript`` on the current connection's server.
        var scriptDigest: [UInt8]? = nil
        while true {
            if let stale = connection, let moved = masterMoved(from: stale.url) {
                connection = nil
                update { $0.machine.publisherFailed(moved, .closed, retryable: false) }
            }
            let now = clock.now
            let hasConnection = connection != nil
            let step = state.withLock { state -> PublisherStep in
                if state.machine.stopping { return .exit }
                if !hasConnection {
                    guard state.machine.publisherWanted else {
                        state.publisherSleeping = true
                        return .sleep(until: nil)
                    }
                    guard state.machine.publisherRetrying || now >= nextAttempt else {
                        state.publisherSleeping = true
                        return .sleep(until: nextAttempt)
                    }
                    _ = state.machine.publisherConnecting()
                    return .connect
                }
                if !state.queue.isEmpty {
                    let batch = state.queue.takeAll()
                    state.inFlight = batch
                    return .publish(batch)
                }
                if now - lastUsed >= pingInterval { return .ping }
                state.publisherSleeping = true
                return .sleep(until: lastUsed + pingInterval)
            }

            switch step {
            case .exit:
                return
            case .sleep(let until):
                if let until {
                    let nanoseconds = max(0, Int(Self.milliseconds(until - now))) * 1_000_000
                    _ = publisherWake.wait(timeout: .now() + .nanoseconds(nanoseconds))
                } else {
                    publisherWake.wait()
                }
            case .connect:
                let retrying = state.withLock { $0.machine.publisherRetrying }
                do throws(RedisConnectionError) {
                    connection = try openPublisherConnection()
                    scriptDigest = nil
                    if history.isEnabled { scriptDigest = try loadScript(on: connection!) }
                    lastUsed = clock.now
                    warnedErrorReply = false
                    retryable = !retrying
                    update { $0.machine.publisherConnected() }
                } catch {
                    nextAttempt = clock.now + backoff.next()
                    update { $0.machine.publisherFailed("\(error)", error.isTimeout ? .timeout : .closed, retryable: false) }
                }
            case .ping:
                do throws(RedisConnectionError) {
                    _ = try connection!.command(["PING"])
                    lastUsed = clock.now
                    retryable = true
                    backoff.reset()
                } catch {
                    connection = nil
                    nextAttempt = clock.now + backoff.next()
                    update { [retryable] in
                        $0.machine.publisherFailed("\(error)", error.isTimeout ? .timeout : .closed, retryable: retryable)
                    }
                }
            case .publish(let batch):
                var acknowledged = 0
                var unanswered: [RedisOutgoing] = []
                do throws(RedisConnectionError) {
                    let errorReply = try pipeline(
                        batch, on: connection!, script: &scriptDigest, acknowledged: &acknowledged, unanswered: &unanswered)
                    lastUsed = clock.now
                    retryable = true
                    backoff.reset()
                    state.withLock { $0.inFlight = nil }
                    if let errorReply { noteRefusal(errorReply) }
                    if let errorReply, !warnedErrorReply {
                        warnedErrorReply = true
                        logger.warning("Redis refused a PUBLISH", metadata: ["error": "\(errorReply)"])
                    }
                } catch {
                    connection = nil
                    nextAttempt = clock.now + backoff.next()
                    logger.debug(
                        "A PUBLISH pipeline failed; the unacknowledged messages are retried or delivered locally",
                        metadata: ["count": "\(unanswered.count + batch.count - acknowledged)", "error": "\(error)"])
                    let retryable = retryable || acknowledged > 0
                    update { state in
                        // Unless a fall back took the batch already, what Redis did not
                        // acknowledge goes back in front of the queue.
                        if state.inFlight != nil {
                            state.inFlight = nil
                            state.queue.prepend(unanswered + batch[acknowledged...])
                        }
                        return state.machine.publisherFailed(
                            "\(error)", error.isTimeout ? .timeout : .closed, retryable: retryable)
                    }
                }
            }
        }
    }

    private func loadScript(on connection: RedisConnection) throws(RedisConnectionError) -> [UInt8] {
        guard case .bulk(let digest) = try connection.command(["SCRIPT", "LOAD", RedisHistory.publishScript]) else {
            throw RedisConnectionError("SCRIPT LOAD of the history script failed on \(url.server)")
        }
        return digest
    }

    /// Writes the batch as one pipeline, then reads every reply, counting the messages they
    /// answer in `acknowledged`, and tells each message's completion. Returns the first error
    /// reply. When it throws, the messages not answered are `unanswered` (in order), then
    /// `batch[acknowledged...]`.
    ///
    /// A message without history is one `PUBLISH`; each run of consecutive messages with
    /// history is one `EVALSHA` of the history script per ``RedisHistory/publishBatchLimit``
    /// messages (see ``RedisHistory/publishGroups(_:limit:)``), which stores and publishes them
    /// in order and answers for all of them at once: they are acknowledged together or not at
    /// all, so a connection lost before the reply puts the whole call back in the queue.
    ///
    /// A server that lost the script (`SCRIPT FLUSH`, a restart behind a proxy) answers
    /// `NOSCRIPT` and ran nothing: those calls are sent again, in order, once the script is
    /// loaded again; until they are answered they are `unanswered`. (Their order relative to the messages *without* history in the same
    /// pipeline may change; each topic keeps its order.)
    private func pipeline(
        _ batch: [RedisOutgoing], on connection: RedisConnection, script: inout [UInt8]?, acknowledged: inout Int,
        unanswered: inout [RedisOutgoing]
    ) throws(RedisConnectionError) -> String? {
        // A topic whose history is gone starts a new stream under this epoch.
        let newEpoch = MemoryHistory.randomEpoch()
        // (Without the script, which a connection with history always loads, each message is a `PUBLISH`.)
        let groups = RedisHistory.publishGroups(batch, limit: script == nil ? 1 : RedisHistory.publishBatchLimit)
        func command(_ group: Range<Int>, _ digest: [UInt8]?) -> [[UInt8]] {
            guard batch[group.lowerBound].historyTopic != nil, let digest else {
                let outgoing = batch[group.lowerBound]
                return [Self.publishCommand, Array(outgoing.channel.utf8), outgoing.payload]
            }
            return [Self.evalshaCommand, digest]
                + RedisHistory.publishArguments(channels, batch: batch[group], policy: history, newEpoch: newEpoch)
        }
        var firstError: String? = nil
        /// Tells the messages of a script call its reply.
        func complete(_ group: Range<Int>, _ reply: RedisReply) {
            guard let outcomes = RedisHistory.outcomes(reply, count: group.count) else {
                for outgoing in batch[group] { outgoing.completion?(.refused("Redis refused the history script: \(reply)")) }
                if case .error(let message) = reply, firstError == nil { firstError = message }
                return
            }
            for (outgoing, outcome) in zip(batch[group], outcomes) {
                if let refusal = outcome.refusal {
                    if firstError == nil { firstError = refusal }
                    outgoing.completion?(.refused("Redis refused the history script: \(refusal)"))
                } else {
                    counters.countHistory(duplicate: outcome.duplicate)
                    outgoing.completion?(outcome)
                }
            }
        }
        for group in groups {
            try connection.append(command(group, script))
        }
        var lostScript: [Range<Int>] = []
        for group in groups {
            let reply = try connection.readReply()
            acknowledged += group.count
            if batch[group.lowerBound].historyTopic != nil, script != nil {
                if case .error(let message) = reply, message.hasPrefix("NOSCRIPT") {
                    lostScript.append(group)
                } else {
                    complete(group, reply)
                }
                continue
            }
            if case .error(let message) = reply, firstError == nil { firstError = message }
        }
        if !lostScript.isEmpty {
            unanswered = lostScript.flatMap { batch[$0] }
            script = try loadScript(on: connection)
            for group in lostScript {
                complete(group, try connection.command(command(group, script)))
                unanswered.removeFirst(group.count)
            }
        }
        return firstError
    }
}
