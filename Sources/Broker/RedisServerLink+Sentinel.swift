import Logging
import NIOCore

/// Where a ``RedisServerLink`` connects, and, with Sentinel, its *Sentinel watch*.
///
/// Without Sentinel the master is `url`, fixed. With Sentinel (`PUBSUB_REDIS_SENTINELS`) the
/// link's state holds the master the watch last verified (nil until the first discovery;
/// meanwhile the link is `connecting` and delivers locally), and a generation that counts
/// changes. The subscriber and the publisher read it when they connect, so they never wait for
/// Sentinel; a connection to any other address is dropped on the next turn.
///
/// **The Sentinel watch** runs on the subscriber's event loop (``RedisSentinelState``): no
/// thread, poll loop or wake pipe of its own. It keeps one connection to a Sentinel
/// (``RedisSentinelSession``), subscribed to `+switch-master` and pinged like the link's own
/// connections (deadline `PUBSUB_REDIS_TIMEOUT`); when it fails the next Sentinel of the list
/// is used. It looks the master up (``RedisSentinelDiscovery``: `SENTINEL
/// get-master-addr-by-name`, then `ROLE` on the address, each a connection on the same loop) at
/// the start, after every (re)subscription (a switch may have been missed), on
/// `+switch-master` for its name (the announced address is tried first), and whenever a link
/// connection failed or the publisher found no master there (READONLY, LOADING, a replica,
/// refused): the failing side sets `discoveryWanted` and wakes the watch. Failed look-ups are
/// retried with the link's backoff (at most about a second apart), so a failover is found even
/// when no `+switch-master` reaches this node. Every connection is TLS when the Sentinels are
/// `rediss://`.
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

    /// Asks the Sentinel watch to look the master up again.
    func wantDiscovery() {
        guard sentinel != nil else { return }
        state.withLock { $0.discoveryWanted = true }
        wakeSentinel()
    }

    /// The Sentinel watch verified `found` as the master.
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

    // MARK: - The Sentinel watch (any thread)

    /// Queues one turn of the watch on its loop (several wake-ups before it runs make one).
    func wakeSentinel() {
        guard let watch = sentinelWatch, !watch.wakeQueued.exchange(true, ordering: .acquiringAndReleasing) else { return }
        watch.loop.execute { [self] in
            watch.wakeQueued.store(false, ordering: .releasing)
            sentinelTurn()
        }
    }

    // MARK: - The Sentinel watch (its loop)

    /// Subscribes when due, starts a look-up when one is wanted and due, enforces the
    /// subscription's deadlines, and schedules the next turn.
    private func sentinelTurn() {
        guard let watch = sentinelWatch, let discovery = sentinel, !watch.finished else { return }
        watch.loop.preconditionInEventLoop()
        enum Turn { case idle, stop, run(asked: Bool) }
        let turn = state.withLock { state -> Turn in
            guard !state.machine.stopping, state.deliver != nil else {
                guard state.sentinelRunning else { return .idle }
                state.sentinelRunning = false
                return .stop
            }
            defer { state.discoveryWanted = false }
            return .run(asked: state.discoveryWanted)
        }
        switch turn {
        case .idle: return
        case .stop: return finishSentinel()
        case .run(let asked): if asked { watch.wanted = true }
        }
        let now = ContinuousClock.now
        if watch.session == nil, now >= watch.subscribeAt {
            subscribeToSentinel(discovery.sentinels[watch.next % discovery.sentinels.count])
        }
        if Self.mayLookUp(watch), now >= watch.discoverAt { lookUpMaster(discovery) }
        do throws(RedisConnectionError) {
            try watch.session?.tend(now: now)
        } catch {
            sentinelSessionFailed(error)
        }
        scheduleSentinelTurn()
    }

    private func subscribeToSentinel(_ url: RedisURL) {
        guard let watch = sentinelWatch, let discovery = sentinel else { return }
        let session = RedisSentinelSession(
            url: url, clientName: "chorus:\(nodeId):sentinel", timeout: timeout, pingInterval: Self.pingInterval(for: timeout))
        session.onSubscribed = { [self, unowned session] in
            guard watch.session === session else { return }
            watch.subscribeBackoff.reset()
            watch.wanted = true  // a switch may have been announced while not subscribed
            wakeSentinel()
        }
        session.onAnswered = { [self, unowned session] in
            guard watch.session === session else { return }
            scheduleSentinelTurn()
        }
        session.onSwitch = { [self, unowned session] payload in
            guard watch.session === session,
                let (host, port) = RedisSentinelDiscovery.switchedMaster(payload, name: discovery.masterName)
            else { return }
            logger.info("Redis Sentinel: +switch-master", metadata: ["event": "\(payload)"])
            watch.candidate = discovery.masterURL(host: host, port: port)
            watch.wanted = true
            watch.discoverAt = ContinuousClock.now
            watch.discoverBackoff.reset()
            wakeSentinel()
        }
        session.onFailure = { [self, unowned session] error in
            guard watch.session === session else { return }
            sentinelSessionFailed(error)
            scheduleSentinelTurn()
        }
        watch.session = session
        session.connect(on: watch.loop)
    }

    /// The subscription failed: the next Sentinel of the list is tried after the backoff.
    private func sentinelSessionFailed(_ error: RedisConnectionError) {
        guard let watch = sentinelWatch else { return }
        logger.debug("Redis Sentinel subscription lost", metadata: ["error": "\(error)"])
        _ = watch.session?.close()
        watch.session = nil
        watch.next += 1
        watch.subscribeAt = ContinuousClock.now + watch.subscribeBackoff.next()
        watch.wanted = true
    }

    /// Starts one look-up of the master; its end runs a turn.
    private func lookUpMaster(_ discovery: RedisSentinelDiscovery) {
        guard let watch = sentinelWatch else { return }
        watch.discovering = true
        watch.wanted = false
        let candidate = watch.candidate
        watch.candidate = nil
        let looking = discovery.discover(preferring: candidate, startingAt: watch.next, on: watch.loop, tracked: watch.lookups) {
            [self] in !state.withLock { $0.machine.stopping }
        }
        looking.assumeIsolated().whenComplete { [self] result in
            watch.discovering = false
            // Stopping: the look-up gave up, or its answer no longer matters.
            if watch.finished || state.withLock({ $0.machine.stopping }) {
                guard watch.finished else { return sentinelTurn() }
                return sentinelExitedIfIdle()
            }
            switch result {
            case .success(let master):
                watch.warned = nil
                watch.discoverBackoff.reset()
                masterFound(master)
            case .failure(let error):
                watch.wanted = true
                // A switch announced meanwhile is tried at once.
                watch.discoverAt = ContinuousClock.now + (watch.candidate == nil ? watch.discoverBackoff.next() : .zero)
                // A warning when the reason changes, and once a minute while it stays the same.
                let now = ContinuousClock.now
                let reason = "\(error)"
                let warn = watch.warned.map { $0.reason != reason || now - $0.at >= .seconds(60) } ?? true
                if warn { watch.warned = (reason, now) }
                logger.log(
                    level: warn ? .warning : .debug, "Redis Sentinel named no reachable master; retrying",
                    metadata: ["error": "\(reason)"])
                update { $0.machine.masterLookUpFailed("Redis Sentinel named no reachable master: \(reason)") }
            }
            sentinelTurn()
        }
    }

    /// Whether a look-up is wanted and may start once due: one at a time, and not while the
    /// subscription is being set up (its confirmation asks for one).
    private static func mayLookUp(_ watch: RedisSentinelState) -> Bool {
        watch.wanted && !watch.discovering && watch.session.map(\.isSubscribed) ?? true
    }

    /// Keeps one timer for the next thing due: the subscription's deadline or keepalive, the
    /// resubscribe, the next look-up.
    private func scheduleSentinelTurn() {
        guard let watch = sentinelWatch, !watch.finished else { return }
        var wakeUp = watch.session?.nextDeadline ?? watch.subscribeAt
        if Self.mayLookUp(watch) { wakeUp = min(wakeUp, watch.discoverAt) }
        watch.timer.schedule(at: wakeUp, on: watch.loop) { [self] in
            watch.timer.fired()
            sentinelTurn()
        }
    }

    /// The link stops: closes the subscription and a look-up's connections; the watch counts
    /// out of ``stop()``'s wait once both are over (the look-up fails at once, and asks whether
    /// the link is stopping before going on to the next Sentinel).
    private func finishSentinel() {
        guard let watch = sentinelWatch else { return }
        watch.finished = true
        watch.timer.cancel()
        watch.lookups.closeAll()
        if let closing = watch.session?.close() {
            watch.closing = true
            closing.assumeIsolated().whenComplete { [self] _ in
                watch.closing = false
                sentinelExitedIfIdle()
            }
        }
        watch.session = nil
        sentinelExitedIfIdle()
    }

    private func sentinelExitedIfIdle() {
        guard let watch = sentinelWatch, watch.finished, !watch.closing, !watch.discovering, !watch.exited else { return }
        watch.exited = true
        workerExited()
    }
}
