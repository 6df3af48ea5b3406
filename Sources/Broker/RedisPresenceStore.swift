import Foundation
import Logging
import Synchronization

/// Presence shared by every node through Redis (`PUBSUB_ADAPTER=redis`); see
/// ``RedisPresenceScripts`` for the keys and the atomic steps.
///
/// **Shares.** This node instance (`<NODE_ID>/<boot nonce>`, new at every start) reports its
/// own connection count per topic and user; the scripts add the shares of all instances up
/// and publish `join`/`leave`/`update` once, on the topic's channel.
///
/// **No zombies.** Every `PRESENCE_TTL / 3` the instance renews its lease on each server and
/// reaps: any instance whose lease has expired (a node killed or cut off for longer than
/// `PRESENCE_TTL`) loses its shares, and each member that had no other connection leaves
/// once. So a dead node's members leave within `PRESENCE_TTL` plus one period. At start the
/// instance reaps the earlier boots of its own `NODE_ID` at once, so a restarted node neither
/// resurrects nor double-counts its old members.
///
/// **Outages.** A script that fails (Redis down) marks its key, and further changes for that
/// server are only marked, not queued behind connect attempts; once a lease renewal succeeds
/// again the marked keys are resent with their current counts (absolute, so resending is
/// harmless). A renewal that finds the lease gone (the instance was reaped while cut off)
/// resends the whole share: its members join again.
///
/// **Threads.** One ``RedisCommandQueue`` per server runs the scripts in call order;
/// ``set(topic:userId:connections:member:announceUpdate:)`` enqueues under the store's lock,
/// so the order of calls is the order Redis sees. Completions run on the queues.
public final class RedisPresenceStore: PresenceStore {
    private struct Key: Hashable {
        var topic: Topic
        var userId: String
    }

    private struct Share {
        var connections: Int
        /// nil: the member document without data (`PresenceMember.document(userId:data: nil)`),
        /// made again when needed rather than kept for every connected user.
        var member: RawJSON?
    }


    private struct State {
        var shares: [Key: Share] = [:]
        /// The shares in `presence.user.<id>` (without data, as every authenticated connection
        /// joins its user's), by user id alone: no topic name or document kept per user.
        var userShares: [String: Int] = [:]
        /// Keys whose latest change did not reach Redis: resent after the next renewal.
        var unsent = UnsentPresenceChanges<Key>()
        /// Keys whose change was held back while the server's queue was over its bound, with
        /// whether any of those changes was to announce new data: sent, as they are by then, by
        /// the renewal queued behind it. Apart from `unsent`, which a script queued earlier for
        /// the key clears when it succeeds.
        var heldBack: [Key: Bool] = [:]
        /// A renewal is queued for the server (asked for by a 'nolease' answer).
        var renewalQueued: Set<Int> = []
        /// Per server, the changes this instance wrote there as far as the node knows: those
        /// the server acknowledged, from the count it reported at the last renewal on. A server
        /// that reports fewer came back with older data (``renew(_:)``).
        var written: [Int: Int] = [:]
        var sequence = 0
        var counters = PresenceCounters()
        var loop: Task<Void, Never>?
        /// Set by ``shutdown()``: no renewal after the instance has withdrawn.
        var stopped = false
        /// Servers whose last command could not reach them: changes for them are only marked
        /// (not queued behind connect attempts) until a renewal gets through again.
        var unreachable: Set<Int> = []
        /// ``afterOutage(server:_:)``'s bodies, run by the server's next successful renewal.
        var afterOutage: [Int: @Sendable (_ holds: @escaping @Sendable (Topic) -> Bool) -> Void] = [:]
    }

    /// `<NODE_ID>/<boot nonce>`.
    public let instance: String
    private let nodeId: String
    private let keyPrefix: String
    private let channels: RedisChannels
    /// Per server: the changes, leases and reaps, in the order they were made.
    private let queues: [RedisCommandQueue]
    /// Per server: the member lists and counts read (``reader(_:)``), on a connection of their
    /// own so that a lease renewal never waits behind them.
    private let readQueues: [RedisCommandQueue]
    private let ttlMilliseconds: Int
    private let originJSON: [UInt8]
    private let logger: Logger
    private let state = Mutex(State())

    /// - Parameters:
    ///   - urls: the servers of `PUBSUB_REDIS_URL`, in order (the topic's channel server holds
    ///     its presence).
    ///   - ttl: `PRESENCE_TTL`.
    public convenience init(urls: [RedisURL], prefix: String, nodeId: String, timeout: Duration, ttl: Duration, logger: Logger) {
        precondition(!urls.isEmpty, "RedisPresenceStore needs at least one Redis URL")
        let queues = { (role: String) in
            urls.enumerated().map { index, url in RedisCommandQueue(url: url, timeout: timeout, clientName: "\(role)-\(index)") }
        }
        self.init(
            queues: queues("presence"), readQueues: queues("presence-reads"), prefix: prefix, nodeId: nodeId, ttl: ttl,
            logger: logger)
    }

    /// One server per master name of `sentinel`, each found and followed through the Sentinels,
    /// sharded over the names exactly as the adapter shards its channels.
    public convenience init(
        sentinel: RedisSentinelSettings, prefix: String, nodeId: String, timeout: Duration, ttl: Duration, logger: Logger
    ) {
        let queues = { (role: String) in
            sentinel.masters.enumerated().map { index, master in
                RedisCommandQueue(
                    sentinel: RedisSentinelDiscovery(sentinels: sentinel.sentinels, master: master, timeout: timeout),
                    clientName: "\(role)-\(index)")
            }
        }
        self.init(
            queues: queues("presence"), readQueues: queues("presence-reads"), prefix: prefix, nodeId: nodeId, ttl: ttl,
            logger: logger)
    }

    private init(
        queues: [RedisCommandQueue], readQueues: [RedisCommandQueue], prefix: String, nodeId: String, ttl: Duration, logger: Logger
    ) {
        self.nodeId = nodeId
        self.instance = "\(nodeId)/\(String(UInt64.random(in: 0...UInt64.max), radix: 36))"
        self.keyPrefix = prefix + "@presence:"
        self.channels = RedisChannels(prefix: prefix, serverCount: queues.count)
        self.queues = queues
        self.readQueues = readQueues
        self.ttlMilliseconds = max(1, Int(ttl.components.seconds * 1000 + ttl.components.attoseconds / 1_000_000_000_000_000))
        var writer = JSONWriter()
        writer.string(nodeId)
        self.originJSON = writer.bytes
        self.logger = logger
    }

    private func server(of topic: Topic) -> Int { channels.server(forKey: channels.key(for: topic)) }

    private func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

    // MARK: Leases and reaping

    /// Renews the leases, reaps this node's earlier boots, then every `PRESENCE_TTL / 3` renews
    /// and reaps expired instances, until ``shutdown()``.
    public func start() {
        let period = Duration.milliseconds(max(1, ttlMilliseconds / 3))
        let task = Task { [self] in
            for server in queues.indices {
                renew(server)
                reap(server, ownEarlierBoots: true)
            }
            while !Task.isCancelled {
                try? await Task.sleep(for: period)
                guard !Task.isCancelled else { break }
                for server in queues.indices {
                    renew(server)
                    reap(server, ownEarlierBoots: false)
                }
            }
        }
        state.withLock { $0.loop = task }
    }

    /// Renews the lease on `server`. A server that reports fewer changes of this instance than
    /// it acknowledged came back with older data (restarted from a snapshot, AOF `everysec`'s
    /// last second, a replica behind promoted by Sentinel) while the lease survived: joins and
    /// leaves it acknowledged are gone, and resending the changed keys cannot tell which. The
    /// instance then takes its whole share back (a reap of itself: a `leave` for its members
    /// there) and writes it again (a `join` each), so that no one who left stays listed.
    private func renew(_ server: Int) {
        // Queued under the lock that ``shutdown()`` takes: never behind its final reap, where
        // the lease would be made again for an instance that has withdrawn.
        state.withLock { state in
            guard !state.stopped else { return }
            queueRenewal(server)
        }
    }

    private func queueRenewal(_ server: Int) {
        queues[server].evaluate(
            RedisPresenceScripts.lease, keys: [bytes(keyPrefix + "leases"), bytes(keyPrefix + "i:" + instance)],
            arguments: [bytes(instance), bytes(String(ttlMilliseconds))]
        ) { [self] result in
            let (afterOutage, renewAgain, rolledBack) = state.withLock {
                state -> ((@Sendable (_ holds: @escaping @Sendable (Topic) -> Bool) -> Void)?, Bool, Bool) in
                state.renewalQueued.remove(server)
                // Withdrawn meanwhile: nothing is written again after the final reap.
                guard !state.stopped else { return (nil, false, false) }
                guard case .success(let reply) = result else {
                    state.counters.failures += 1
                    state.unreachable.insert(server)
                    return (nil, false, false)
                }
                guard let lease = Self.lease(reply) else {
                    state.counters.failures += 1
                    return (nil, false, false)
                }
                state.unreachable.remove(server)
                let hadLease = lease.held
                if hadLease, lease.written < state.written[server, default: 0] {
                    logger.warning(
                        "presence: Redis came back with older data (it reports fewer of this node's changes than it acknowledged): taking this node's members back and writing them again",
                        metadata: ["server": "\(server)", "reported": "\(lease.written)", "acknowledged": "\(state.written[server, default: 0])"])
                    state.written[server] = 0
                    return (nil, false, true)
                }
                state.written[server] = lease.written
                var resend = Set(state.unsent.keys.filter { self.server(of: $0.topic) == server })
                let held = state.heldBack.filter { self.server(of: $0.key.topic) == server }
                for key in held.keys { state.heldBack[key] = nil }
                resend.formUnion(held.keys)
                if !hadLease {
                    resend.formUnion(state.shares.keys.filter { self.server(of: $0.topic) == server })
                    resend.formUnion(
                        state.userShares.keys.map(Self.userKey).filter { self.server(of: $0.topic) == server })
                    if !state.shares.isEmpty || !state.userShares.isEmpty { logger.info("presence lease renewed after loss: resending this node's members", metadata: ["server": "\(server)"]) }
                }
                var heldBack = false
                for key in resend {
                    let share = state.shares[key]
                    let connections = share?.connections
                        ?? (Self.isUserTopic(key) ? state.userShares[key.userId] : nil) ?? 0
                    heldBack = enqueueSet(
                        key, connections: connections,
                        member: share?.member ?? PresenceMember.document(userId: key.userId, data: nil),
                        // A held-back or failed change of data is written, and announced, if it
                        // differs (enqueueSet adds the failed ones'); a change of count alone
                        // leaves the data other nodes may have set.
                        announceUpdate: held[key] ?? false, state: &state) || heldBack
                }
                return (state.afterOutage.removeValue(forKey: server), heldBack, false)
            }
            if rolledBack {
                // The reap removes the lease too: the renewal after it finds none and resends
                // every key of this server.
                reapScript(server, ownEarlierBoots: false, onlyThisInstance: true) {}
                renew(server)
                return
            }
            // Still more queued than the bound: the keys held back go after the next renewal.
            if renewAgain { renew(server) }
            afterOutage?({ [channels] topic in channels.server(forKey: channels.key(for: topic)) == server })
        }
    }

    /// Renews the lease on `server` now (which also ends the fast refusals of a server marked
    /// unreachable) and runs `body` once a renewal there succeeds: a read after that reaches it.
    public func afterOutage(server: Int, _ body: @escaping @Sendable (_ holds: @escaping @Sendable (Topic) -> Bool) -> Void) {
        guard queues.indices.contains(server) else { return }
        state.withLock { $0.afterOutage[server] = body }
        renew(server)
    }

    private func reap(_ server: Int, ownEarlierBoots: Bool, onlyThisInstance: Bool = false) {
        reapScript(server, ownEarlierBoots: ownEarlierBoots, onlyThisInstance: onlyThisInstance) {}
    }

    private func reapScript(
        _ server: Int, ownEarlierBoots: Bool, onlyThisInstance: Bool,
        completion: @escaping @Sendable () -> Void
    ) {
        let base = state.withLock { state -> String in
            state.sequence += 1
            return "reap-\(String(UInt32.random(in: 0...UInt32.max), radix: 36))-\(state.sequence)"
        }
        let reapPrefix = onlyThisInstance ? instance : (ownEarlierBoots ? nodeId + "/" : "")
        let spare = onlyThisInstance ? "" : instance
        queues[server].evaluate(
            RedisPresenceScripts.reap, keys: [bytes(keyPrefix + "leases")],
            arguments: [
                bytes(keyPrefix), bytes(reapPrefix), bytes(spare), originJSON, bytes(Timestamp.string(Date())),
                bytes(base), bytes(channels.prefix),
            ]
        ) { [self] result in
            defer { completion() }
            switch result {
            case .success(.array(let parts)) where parts.count == 2:
                guard case .integer(let leaves) = parts[0], case .array(let instances) = parts[1] else { return }
                let names = instances.compactMap(\.string)
                guard !names.isEmpty else { return }
                state.withLock {
                    $0.counters.reapedLeaves += leaves
                    $0.counters.eventsPublished += leaves
                    $0.counters.reapedInstances += names.count
                }
                logger.info(
                    "presence: reaped node instances", metadata: ["instances": "\(names)", "leaves": "\(leaves)"])
            case .success:
                break
            case .failure:
                state.withLock { $0.counters.failures += 1 }
            }
        }
    }

    /// ``RedisPresenceScripts/lease``'s answer: whether the lease was held, and the changes the
    /// server counts for this instance.
    private static func lease(_ reply: RedisReply) -> (held: Bool, written: Int)? {
        guard case .array(let parts) = reply, parts.count == 2, case .integer(let held) = parts[0],
            case .integer(let written) = parts[1]
        else { return nil }
        return (held == 1, written)
    }

    // MARK: Shares

    /// `presence.user.<userId>`'s key.
    private static func userKey(_ userId: String) -> Key {
        Key(topic: Topic(unchecked: PresenceEventData.userTopicPrefix + userId), userId: userId)
    }

    /// Whether `key` is `presence.user.<id>` with its own user.
    private static func isUserTopic(_ key: Key) -> Bool {
        let prefix = PresenceEventData.userTopicPrefix
        return key.topic.name.utf8.count == prefix.utf8.count + key.userId.utf8.count
            && key.topic.name.hasPrefix(prefix)
            && key.topic.name.utf8.dropFirst(prefix.utf8.count).elementsEqual(key.userId.utf8)
    }

    public func set(topic: Topic, userId: String, connections: Int, member: RawJSON, announceUpdate: Bool) {
        let key = Key(topic: topic, userId: userId)
        let renewNow = state.withLock { state -> Bool in
            if Self.isUserTopic(key),
                member == PresenceMember.document(userId: userId, data: nil)
            {
                state.userShares[userId] = connections > 0 ? connections : nil
                if !state.shares.isEmpty { state.shares[key] = nil }
            } else if connections > 0 {
                let kept = member == PresenceMember.document(userId: userId, data: nil)
                    ? nil : member
                state.shares[key] = Share(connections: connections, member: kept)
            } else {
                state.shares[key] = nil
            }
            return enqueueSet(key, connections: connections, member: member, announceUpdate: announceUpdate, state: &state)
        }
        if renewNow { renew(server(of: topic)) }
    }

    /// Bytes of commands queued to `server` and not yet sent (tests).
    func backlogBytes(of server: Int) -> Int { queues[server].backlogBytes }

    /// Most bytes of commands queued to one server before presence changes are held back
    /// (``enqueueSet(_:connections:member:announceUpdate:state:)``).
    static let maxBacklogBytes = 1 << 20

    /// Queues the set script for `key`; called under the lock, so queue order is call order.
    /// True when the caller must queue a renewal (``renew(_:)``, outside the lock): the change
    /// was held back, and that renewal sends the key's state as it is by then.
    private func enqueueSet(_ key: Key, connections: Int, member: RawJSON, announceUpdate: Bool, state: inout State) -> Bool {
        let server = self.server(of: key.topic)
        // A change of data whose script failed is still to be announced by the next one.
        let announceUpdate = announceUpdate || state.unsent.announcing(key)
        guard !state.unreachable.contains(server) else {
            // Resent by the renewal that finds the server again.
            state.unsent.setAside(key, announcing: announceUpdate)
            return false
        }
        guard queues[server].backlogBytes < Self.maxBacklogBytes else {
            // Clients change presence faster than the server takes it (a join/leave storm):
            // queued, every change would wait in memory, without bound. Held back instead, the
            // key's latest state goes after what is queued, with the renewal queued behind it:
            // changes coalesce per member, and memory stays that of the members.
            state.heldBack[key] = (state.heldBack[key] ?? false) || announceUpdate
            return state.renewalQueued.insert(server).inserted
        }
        state.heldBack[key] = nil
        let change = state.unsent.sending(key)
        state.sequence += 1
        var id = JSONWriter()
        id.string("\(instance):p\(state.sequence)")
        let topic = key.topic.name
        queues[server].evaluate(
            RedisPresenceScripts.set,
            keys: [
                bytes(keyPrefix + "m:" + topic), bytes(keyPrefix + "n:" + topic), bytes(keyPrefix + "i:" + instance),
                bytes(keyPrefix + "leases"), bytes(keyPrefix + "seen:" + topic), bytes(keyPrefix + "z:" + topic),
            ],
            arguments: [
                bytes(topic), bytes(key.userId), bytes(instance), bytes(String(connections)), member.bytes,
                bytes(announceUpdate ? "1" : "0"), id.bytes, originJSON, bytes(Timestamp.string(Date())),
                bytes(channels.channel(forKey: channels.key(for: key.topic))),
            ]
        ) { [self] result in
            var renewNow = false
            self.state.withLock { state in
                switch result {
                case .success(let reply):
                    switch reply.string {
                    case "nolease":
                        state.unsent.failed(key, announcing: announceUpdate)
                        renewNow = state.renewalQueued.insert(server).inserted
                    case "", nil:
                        state.unsent.written(key, change: change)
                        state.written[server, default: 0] += 1
                    default:
                        state.unsent.written(key, change: change)
                        state.written[server, default: 0] += 1
                        state.counters.eventsPublished += 1
                    }
                case .failure(let error):
                    state.unsent.failed(key, announcing: announceUpdate)
                    state.counters.failures += 1
                    if !error.isReplyError { state.unreachable.insert(server) }
                }
            }
            if renewNow { renew(server) }
        }
        return false
    }

    // MARK: Queries

    /// Where to read `server`'s presence, once the changes this node queued to it so far are
    /// written (a read sees them). Reads have a connection of their own: after an outage every
    /// watcher of a large room reads its pages again (`resync`), seconds of reads that a lease
    /// renewal queued behind them would wait for past `PRESENCE_TTL`, and other nodes would
    /// take this node's members for gone.
    ///
    /// Throws at once for a server whose last command could not reach it (until a renewal gets
    /// through again): a member list then comes from this node alone rather than waiting for a
    /// Redis known to be down.
    private func reader(_ server: Int) async throws -> RedisCommandQueue {
        try await reachable(server).drained()
        return readQueues[server]
    }

    private func reachable(_ server: Int) throws -> RedisCommandQueue {
        let (unreachable, renewNow) = state.withLock { state in
            guard state.unreachable.contains(server) else { return (false, false) }
            return (true, state.renewalQueued.insert(server).inserted)
        }
        // A renewal that gets through ends the fast refusals before its period comes round.
        if renewNow { renew(server) }
        guard !unreachable else {
            throw RedisConnectionError("presence: Redis server \(server) unreachable since its last command")
        }
        return queues[server]
    }

    public func members(of topic: Topic, after: String?, limit: Int, maxBytes: Int) async throws -> PresencePage {
        let limit = min(max(1, limit), PresencePage.maxMembers)
        let reply = try await reader(server(of: topic)).evaluate(
            RedisPresenceScripts.page,
            keys: [
                bytes(keyPrefix + "m:" + topic.name), bytes(keyPrefix + "n:" + topic.name), bytes(keyPrefix + "z:" + topic.name),
                bytes(keyPrefix + "zr:" + topic.name),
            ],
            arguments: [
                bytes(after ?? ""), bytes(String(limit)), bytes(String(max(1, maxBytes))),
                bytes(topic.name.hasPrefix(PresenceEventData.userTopicPrefix) ? "1" : "0"),
            ])
        return try Self.page(reply)
    }

    /// The page in the presence page script's reply. A member whose document is not a JSON
    /// object (nothing this code writes, but Redis holds whatever anyone wrote) is left out: a
    /// listing adds `userId` to each document.
    static func page(_ reply: RedisReply) throws -> PresencePage {
        guard case .array(let parts) = reply, parts.count == 5, case .integer(let count) = parts[0],
            case .array(let users) = parts[1], case .array(let documents) = parts[2], case .array(let counts) = parts[3],
            documents.count == users.count, counts.count == users.count, case .integer(let more) = parts[4]
        else { throw RedisConnectionError("unexpected presence reply") }
        var members: [PresenceMember] = []
        members.reserveCapacity(users.count)
        for (index, user) in users.enumerated() {
            guard let user = user.string, case .bulk(let bytes) = documents[index], let document = try? RawJSON(validating: bytes),
                document.isObject
            else { continue }
            members.append(PresenceMember(userId: user, member: document, connections: counts[index].string.flatMap(Int.init) ?? 0))
        }
        return PresencePage(members: members, count: count, more: more == 1)
    }

    public func count(of topic: Topic) async throws -> Int {
        guard case .integer(let count) = try await reader(server(of: topic)).command(["HLEN", keyPrefix + "n:" + topic.name])
        else { throw RedisConnectionError("unexpected HLEN reply") }
        return count
    }

    public func lastLeft(topic: Topic) async throws -> Date? {
        let reply = try await reader(server(of: topic)).command(["GET", keyPrefix + "seen:" + topic.name])
        return reply.string.flatMap(Timestamp.date)
    }

    public func counters() -> PresenceCounters { state.withLock { $0.counters } }

    /// Stops renewing and reaps this instance at once: whatever share is left (members whose
    /// connections did not close first) leaves now rather than after the TTL.
    public func shutdown() async {
        state.withLock { state in
            state.stopped = true
            return state.loop
        }?.cancel()
        for server in queues.indices {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                reapScript(server, ownEarlierBoots: false, onlyThisInstance: true) { continuation.resume() }
            }
            await queues[server].close()
            await readQueues[server].close()
        }
    }
}
