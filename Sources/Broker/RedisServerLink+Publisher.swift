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
                do throws(RedisConnectionError) {
                    let errorReply = try pipeline(batch, on: connection!, script: &scriptDigest, acknowledged: &acknowledged)
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
                        metadata: ["count": "\(batch.count - acknowledged)", "error": "\(error)"])
                    let retryable = retryable || acknowledged > 0
                    update { state in
                        // Unless a fall back took the batch already, what Redis did not
                        // acknowledge goes back in front of the queue.
                        if state.inFlight != nil {
                            state.inFlight = nil
                            state.queue.prepend(batch[acknowledged...])
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

    /// Writes one `PUBLISH` per message (for a message with history: one `EVALSHA` of the
    /// history script, which publishes it), then reads every reply, counting them in
    /// `acknowledged`, and tells each message's completion. Returns the first error reply.
    ///
    /// A server that lost the script (`SCRIPT FLUSH`, a restart behind a proxy) answers
    /// `NOSCRIPT` and ran nothing: those messages are sent again, in order, once the script is
    /// loaded again. (Their order relative to the messages *without* history in the same
    /// pipeline may change; each topic keeps its order.)
    private func pipeline(
        _ batch: [RedisOutgoing], on connection: RedisConnection, script: inout [UInt8]?, acknowledged: inout Int
    ) throws(RedisConnectionError) -> String? {
        // A topic whose history is gone starts a new stream under this epoch.
        let newEpoch = MemoryHistory.randomEpoch()
        func command(_ outgoing: RedisOutgoing, _ digest: [UInt8]?) -> [[UInt8]] {
            guard let topic = outgoing.historyTopic, let digest else {
                return [Self.publishCommand, Array(outgoing.channel.utf8), outgoing.payload]
            }
            var arguments = [Self.evalshaCommand, digest]
            arguments += RedisHistory.publishArguments(
                channels, topic: topic, outgoing: outgoing, policy: history, newEpoch: newEpoch)
            return arguments
        }
        for outgoing in batch {
            try connection.append(command(outgoing, script))
        }
        var firstError: String? = nil
        var lostScript: [RedisOutgoing] = []
        for outgoing in batch {
            let reply = try connection.readReply()
            acknowledged += 1
            if outgoing.historyTopic != nil, script != nil {
                if case .error(let message) = reply, message.hasPrefix("NOSCRIPT") {
                    lostScript.append(outgoing)
                    continue
                }
                if let outcome = RedisHistory.outcome(reply) {
                    counters.countHistory(duplicate: outcome.duplicate)
                    outgoing.completion?(outcome)
                    continue
                }
                outgoing.completion?(.refused("Redis refused the history script: \(reply)"))
            }
            if case .error(let message) = reply, firstError == nil { firstError = message }
        }
        if !lostScript.isEmpty {
            script = try loadScript(on: connection)
            for outgoing in lostScript {
                let reply = try connection.command(command(outgoing, script))
                if let outcome = RedisHistory.outcome(reply) {
                    counters.countHistory(duplicate: outcome.duplicate)
                    outgoing.completion?(outcome)
                } else {
                    outgoing.completion?(.refused("Redis refused the history script: \(reply)"))
                    if case .error(let message) = reply, firstError == nil { firstError = message }
                }
            }
        }
        return firstError
    }
}
