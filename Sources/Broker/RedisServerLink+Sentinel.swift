#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Logging

/// Where a ``RedisServerLink`` connects, and, with Sentinel, its *sentinel thread*.
///
/// Without Sentinel the master is `url`, fixed. With Sentinel (`PUBSUB_REDIS_SENTINELS`) the
/// link's state holds the master the sentinel thread last verified (nil until the first
/// discovery; meanwhile the link is `connecting` and delivers locally), and a generation that
/// counts changes. The subscriber and the publisher (on the link's loop) read it when they
/// connect, so they never block on Sentinel; a connection to any other address is dropped on the next turn.
///
/// **The sentinel thread** (``runSentinel(_:)``), one per link, owns one blocking connection
/// to a Sentinel, subscribed to `+switch-master` and pinged like the link's own connections
/// (deadline `PUBSUB_REDIS_TIMEOUT`); when it fails the next Sentinel of the list is used. It
/// looks the master up (``RedisSentinelDiscovery``: `SENTINEL get-master-addr-by-name`, then
/// `ROLE` on the address) at the start, after every (re)subscription (a switch may have been
/// missed), on `+switch-master` for its name (the announced address is tried first), and
/// whenever a link connection failed or the publisher found no master there (READONLY,
/// LOADING, a replica, refused): the failing thread sets `discoveryWanted` and wakes it.
/// Failed look-ups are retried with the link's backoff (at most about a second apart), so a
/// failover is found even when no `+switch-master` reaches this node.
///
/// A new master goes to the state machine as ``RedisLinkStateMachine/masterMoved(_:)``, in the
/// same critical section that changes the address: the link falls back (pending messages are
/// delivered locally) and both connections move to the new master without the backoff.
extension RedisServerLink {
    /// The address shown in `/stats` and logs: the URL, or `sentinel://[user@]name/db`.
    static func address(_ url: RedisURL, sentinel: RedisSentinelDiscovery?) -> String {
        guard sentinel != nil else { return url.description }
        return "sentinel://\(url.user.map { "\($0)@" } ?? "")\(url.host)/\(url.database)"
    }

    // MARK: - The link's threads

    /// Subscriber's loop: throws when `url` is no longer the master (Sentinel named another).
    func requireCurrentMaster(_ url: RedisURL) throws(RedisConnectionError) {
        if let moved = masterMoved(from: url) { throw RedisConnectionError(moved) }
    }

    /// Why a connection to `url` must go (Sentinel named another master); nil when it may stay.
    func masterMoved(from url: RedisURL) -> String? {
        guard sentinel != nil else { return nil }
        return state.withLock { state in
            guard let master = state.master, master.server != url.server else { return nil }
            return "master moved from \(url.server) to \(master.server) (Sentinel)"
        }
    }

    /// An error reply from the master: one that says the server is not (or not yet) a usable
    /// master (`READONLY`, `LOADING`, `MASTERDOWN`) asks for a re-discovery.
    func noteRefusal(_ error: String) {
        guard sentinel != nil, RedisSentinelDiscovery.meansWrongServer(error) else { return }
        wantDiscovery()
    }

    /// Asks the sentinel thread to look the master up again.
    func wantDiscovery() {
        guard let sentinelWake else { return }
        state.withLock { $0.discoveryWanted = true }
        sentinelWake.signal()
    }

    /// The sentinel thread verified `found` as the master.
    func masterFound(_ found: RedisURL) {
        var previous: RedisURL?
        var changed = false
        update { state in
            guard state.master?.server != found.server else { return [] }
            previous = state.master
            changed = true
            state.master = found
            state.masterGeneration += 1
            // The first master found is no failover: the link is still connecting to it.
            guard let previous else { return [] }
            return state.machine.masterMoved("master moved from \(previous.server) to \(found.server) (Sentinel)")
        }
        guard changed else { return }
        logger.info(
            "Redis Sentinel named the master", metadata: ["master": "\(found.server)", "previous": "\(previous?.server ?? "none")"])
        wakeSubscriber()
        wakePublisher()
    }

    // MARK: - The sentinel thread

    func runSentinel(_ discovery: RedisSentinelDiscovery) {
        guard let wake = sentinelWake, !discovery.sentinels.isEmpty else { return }
        let clock = ContinuousClock()
        let pingInterval = Self.pingInterval(for: timeout)
        var subscription: RedisConnection? = nil
        /// The Sentinel to subscribe to, and to ask first.
        var next = 0
        var subscribeAt = clock.now
        var subscribeBackoff = Self.reconnectBackoff()
        var wanted = true
        var candidate: RedisURL? = nil
        var discoverAt = clock.now
        var discoverBackoff = Self.reconnectBackoff()
        var warned = false
        var pingSent: ContinuousClock.Instant? = nil
        var lastHeard = clock.now

        func dropSubscription(_ error: RedisConnectionError) {
            logger.debug("Redis Sentinel subscription lost", metadata: ["error": "\(error)"])
            subscription = nil
            next += 1
            subscribeAt = clock.now + subscribeBackoff.next()
            wanted = true
        }

        while true {
            let (stopping, asked) = state.withLock { state in
                defer { state.discoveryWanted = false }
                return (state.machine.stopping, state.discoveryWanted)
            }
            if stopping { return }
            if asked { wanted = true }

            if subscription == nil, clock.now >= subscribeAt {
                let sentinel = discovery.sentinels[next % discovery.sentinels.count]
                do throws(RedisConnectionError) {
                    let connection = try RedisConnection(
                        connectingTo: sentinel, timeout: timeout, clientName: "chorus:\(nodeId):sentinel")
                    let reply = try connection.command(["SUBSCRIBE", "+switch-master"])
                    guard case .array(let parts) = reply, parts.first?.string == "subscribe" else {
                        throw RedisConnectionError("SUBSCRIBE +switch-master on \(sentinel.server): \(reply)")
                    }
                    subscription = connection
                    subscribeBackoff.reset()
                    pingSent = nil
                    lastHeard = clock.now
                    wanted = true  // a switch may have been announced while not subscribed
                } catch {
                    dropSubscription(error)
                }
            }

            if wanted, clock.now >= discoverAt {
                do throws(RedisConnectionError) {
                    let master = try discovery.discover(preferring: candidate, startingAt: next) {
                        !state.withLock { $0.machine.stopping }
                    }
                    wanted = false
                    candidate = nil
                    warned = false
                    discoverBackoff.reset()
                    masterFound(master)
                } catch {
                    if state.withLock({ $0.machine.stopping }) { return }
                    discoverAt = clock.now + discoverBackoff.next()
                    logger.log(
                        level: warned ? .debug : .warning, "Redis Sentinel named no reachable master; retrying",
                        metadata: ["error": "\(error)"])
                    warned = true
                }
            }

            // Wait for a wake-up, the subscription, or the next deadline.
            let now = clock.now
            var deadline = now + pingInterval
            if subscription == nil { deadline = min(deadline, subscribeAt) }
            if wanted { deadline = min(deadline, discoverAt) }
            if subscription != nil {
                deadline = min(deadline, pingSent.map { max($0, lastHeard) + timeout } ?? lastHeard + pingInterval)
            }
            var descriptors = [pollfd(fd: wake.readDescriptor, events: Int16(POLLIN), revents: 0)]
            if let subscription {
                descriptors.append(pollfd(fd: subscription.fileDescriptor, events: Int16(POLLIN), revents: 0))
            }
            _ = poll(&descriptors, nfds_t(descriptors.count), Self.milliseconds(max(.zero, deadline - now)))
            if descriptors[0].revents != 0 { wake.drain() }
            guard let connection = subscription else { continue }

            do throws(RedisConnectionError) {
                if descriptors[1].revents != 0 {
                    try connection.readAvailable()
                    lastHeard = clock.now
                    while let reply = try connection.bufferedReply() {
                        guard case .array(let parts) = reply, parts.count == 3, parts[0].string == "message",
                            let payload = parts[2].string
                        else {
                            pingSent = nil  // the answer to a PING (["pong", ""] while subscribed)
                            continue
                        }
                        guard let (host, port) = RedisSentinelDiscovery.switchedMaster(payload, name: discovery.masterName)
                        else { continue }
                        logger.info("Redis Sentinel: +switch-master", metadata: ["event": "\(payload)"])
                        candidate = discovery.masterURL(host: host, port: port)
                        wanted = true
                        discoverAt = clock.now
                        discoverBackoff.reset()
                    }
                }
                let now = clock.now
                if let sent = pingSent, now - max(sent, lastHeard) > timeout {
                    throw RedisConnectionError(
                        "Sentinel \(connection.url.server): no answer to PING within \(timeout)", isTimeout: true)
                }
                if pingSent == nil, now - lastHeard >= pingInterval {
                    try connection.append(["PING"])
                    try connection.flush()
                    pingSent = now
                }
            } catch {
                dropSubscription(error)
            }
        }
    }
}
