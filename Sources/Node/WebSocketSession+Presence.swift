import Broker
import Foundation
import NIOCore

/// A session's presence memberships, presence-watched topics and typing topics; a value inside
/// its ``WebSocketSession``, on the session's event loop.
struct SessionPresence {
    /// The most topics one connection may be typing in at once (a person types in one).
    static let maxTypingTopics = 32
    /// The most `presence.get` requests of one connection waiting for the presence store. A
    /// store that does not answer holds each until `PUBSUB_REDIS_TIMEOUT`; without a bound the
    /// message rate times that timeout would be in flight per connection.
    static let maxGets = 16

    /// Topics this connection counts in as a member (`subscribe` with `presence`).
    var memberships: Set<Topic> = []
    /// Topics whose presence events this connection receives (`presenceEvents: true`).
    var watched: Set<Topic> = []
    /// Topics where this connection's `typing` `start` is the last word, with when it came.
    /// At most ``maxTypingTopics``: a client cannot make its connection hold one per topic name
    /// it can invent.
    var typing: [Topic: ContinuousClock.Instant] = [:]
    /// Joins and data changes this connection may still make now.
    var changes = PresenceChangeBudget()
    /// `presence.get` requests waiting for the store (at most ``maxGets``).
    var gets: UInt8 = 0
    /// Whether the session joined `presence.user.<id>` at authentication (the user is online
    /// while connected). A flag rather than the topic: its name is made again at the close
    /// instead of kept for every connection. Last, so that the session packs a flag after it.
    var joinedUserTopic = false
}

/// Presence and typing requests of one connection (see docs/presence.md). Runs on the session's
/// event loop, like the rest of the session.
extension WebSocketSession {
    /// Deepest presence data: events carry it four levels down (a batch's
    /// `events[].member.data`; the Redis envelope's `data.member.data`), where every node reads
    /// at most ``JSONParser/maxDepth``. Deeper data was accepted and then lost on the way.
    static let maxPresenceDataDepth = JSONParser.maxDepth - 4

    /// Why a `subscribe`'s presence fields cannot be honoured, as an `error` reply; nil when
    /// they can.
    func presenceProblem(_ request: PresenceRequest, pattern: TopicPattern, requestId: JSONValue?) -> ServerMessage? {
        let details = JSONValue.object(["topic": .string(pattern.text)])
        guard let topic = pattern.topic else {
            return .error(
                code: 400, message: "presence needs a concrete topic: '\(pattern.text)' is a pattern", details: details,
                id: requestId)
        }
        let limit = node.configuration.presenceMaxDataSize
        if let data = request.data, data.bytes.count > limit {
            return .error(
                code: 413, message: "presence data is \(data.bytes.count) bytes; at most \(limit) (PRESENCE_MAX_DATA_SIZE)",
                details: details, id: requestId)
        }
        if let data = request.data, data.nestingDepth > Self.maxPresenceDataDepth {
            return .error(
                code: 400, message: "presence data may nest at most \(Self.maxPresenceDataDepth) levels of objects and arrays",
                details: .object(["topic": .string(pattern.text), "field": .string("presence")]), id: requestId)
        }
        if request.member, topic.name.hasPrefix(PresenceEventData.userTopicPrefix) {
            return .error(
                code: 400, message: "presence.user.<id> topics have the node's members only: subscribe with presenceEvents",
                details: details, id: requestId)
        }
        return nil
    }

    /// A `subscribe` that joins `topic` or changes the member's data, past the connection's
    /// ``PresenceChangeBudget``, as an `error` 429 reply; nil, one change taken, when within it
    /// (or when the subscribe changes no presence). Asked last, once nothing else refuses the
    /// subscribe, so that a refused one costs no change.
    func presenceChangeRefusal(_ request: PresenceRequest, topic: Topic, requestId: JSONValue?) -> ServerMessage? {
        guard request.member, request.data != nil || !presence.memberships.contains(topic),
            let wait = presence.changes.take(now: .now())
        else { return nil }
        let perSecond = PresenceChangeBudget.perSecond
        return .error(
            code: 429,
            message: "presence changes past \(perSecond) a second on this connection: send it again after details.retryAfter ms",
            details: .object([
                "topic": .string(topic.name), "retryAfter": .number(JSONNumber(wait)),
                "limit": .number(JSONNumber(perSecond)),
            ]), id: requestId)
    }

    /// After a successful `subscribe` to `topic` with presence fields.
    func presenceDidSubscribe(_ topic: Topic, _ request: PresenceRequest) {
        guard let user else { return }
        if request.endsEvents, presence.watched.remove(topic) != nil {
            let id = self.id
            registry.assumeIsolated { $0.unwatchPresence(id, of: topic) }
        }
        if request.leaves, presence.memberships.remove(topic) != nil {
            node.presence.leave(topic: topic, userId: user.id)
        }
        if request.events, presence.watched.insert(topic).inserted {
            let id = self.id
            registry.assumeIsolated { $0.watchPresence(id, of: topic) }
        }
        if request.member {
            if presence.memberships.insert(topic).inserted {
                node.presence.join(topic: topic, userId: user.id, data: request.data)
            } else if let data = request.data {
                node.presence.update(topic: topic, userId: user.id, data: data)
            }
        }
    }

    /// After an `unsubscribe` (or a subscription a new token no longer allows).
    func presenceDidUnsubscribe(_ pattern: TopicPattern) {
        guard let topic = pattern.topic, let user else { return }
        if presence.watched.remove(topic) != nil {
            let id = self.id
            registry.assumeIsolated { $0.unwatchPresence(id, of: topic) }
        }
        if presence.memberships.remove(topic) != nil {
            node.presence.leave(topic: topic, userId: user.id)
        }
        if presence.typing.removeValue(forKey: topic) != nil { publishTyping(topic, userId: user.id, start: false) }
    }

    /// Tells this connection that events of the topics whose presence it watches may have
    /// been missed (`resync`: read the lists again).
    func presenceResyncWatched() {
        let now = Date()
        for topic in presence.watched.sorted(by: { $0.name < $1.name }) {
            transport.send(text: PresenceFrames.resync(topic: topic, timestamp: now))
        }
    }

    /// The user is online while one of its connections is: member of `presence.user.<id>`.
    func presenceDidAuthenticate(_ userId: String) {
        guard let topic = PresenceService.userTopic(userId) else { return }
        presence.joinedUserTopic = true
        node.presence.join(topic: topic, userId: userId, data: nil)
    }

    /// The connection closed: it leaves every topic it was a member of, and stops typing. A
    /// connection its client did not close with a close frame leaves `PRESENCE_RECONNECT_GRACE`
    /// later: a user who reconnects meanwhile (to any node) is counted again first, so watchers
    /// see no `leave` and no `join`.
    func presenceDidClose() {
        guard let user else { return }
        for topic in presence.typing.keys { publishTyping(topic, userId: user.id, start: false) }
        var memberships = Array(presence.memberships)
        if presence.joinedUserTopic, let topic = PresenceService.userTopic(user.id) { memberships.append(topic) }
        let (service, userId, topics) = (node.presence, user.id, memberships)
        if !topics.isEmpty, !transport.clientClosed, service.deferLeaves(of: userId) {
            registry.loop.scheduleTask(in: service.reconnectGrace) {
                service.leaveAfterGrace(topics: topics, userId: userId)
            }
        } else {
            for topic in topics { service.leave(topic: topic, userId: userId) }
        }
        presence.memberships.removeAll()
        presence.typing.removeAll()
        presence.joinedUserTopic = false
    }

    /// `presence.get`: the topic's members, for a client that may subscribe to it.
    func presenceGet(_ topic: Topic, after: String?, requestId: JSONValue?) {
        if let problem = authorizationProblem(requestId) { return reply(problem) }
        guard let user else { return }
        if let denial = TopicAccess.subscribeDenial(TopicPattern(topic), user: user) {
            return reply(.error(code: 403, message: denial, details: .object(["topic": .string(topic.name)]), id: requestId))
        }
        guard presence.gets < SessionPresence.maxGets else {
            return reply(.error(
                code: 429, message: "too many presence.get in flight: at most \(SessionPresence.maxGets) per connection; wait for their presence.state",
                details: .object(["topic": .string(topic.name)]), id: requestId))
        }
        presence.gets += 1
        let presence = node.presence
        // A quarter of what the connection may have queued: one answer never closes it with 4008.
        let budget = node.configuration.maxPendingBytes / 4
        // Found again by id: the connection may close meanwhile.
        let (loop, registry, id) = (registry.loop, registry, self.id)
        Task {
            let frame: [UInt8]
            do {
                let page = try await presence.store.members(
                    of: topic, after: after, limit: PresencePage.maxMembers, maxBytes: budget)
                frame = PresenceFrames.state(topic: topic, page: page, scope: nil, requestId: requestId, budget: budget)
            } catch {
                let page = presence.localPage(of: topic, after: after)
                frame = PresenceFrames.state(topic: topic, page: page, scope: "node", requestId: requestId, budget: budget)
            }
            loop.execute {
                registry.assumeIsolated {
                    guard let session = $0.session(id) else { return }
                    session.presence.gets -= 1
                    session.transport.send(text: frame)
                }
            }
        }
    }

    /// `typing`: relayed to the topic's other subscribers, for a client that may publish there.
    func typing(_ topic: Topic, start: Bool, requestId: JSONValue?) {
        if let problem = authorizationProblem(requestId) { return reply(problem) }
        guard let user else { return }
        if let denial = TopicAccess.publishDenial(topic, user: user) {
            return reply(.error(code: 403, message: denial, details: .object(["topic": .string(topic.name)]), id: requestId))
        }
        if start {
            let now = ContinuousClock.now
            if presence.typing[topic] == nil, presence.typing.count >= SessionPresence.maxTypingTopics {
                // Indicators not refreshed within TYPING_TIMEOUT have ended everywhere already.
                let timeout = node.configuration.typingTimeout
                presence.typing = presence.typing.filter { now - $0.value < timeout }
                guard presence.typing.count < SessionPresence.maxTypingTopics else {
                    return reply(.error(
                        code: 429,
                        message: "typing in at most \(SessionPresence.maxTypingTopics) topics at once: send a stop for one first",
                        details: .object(["topic": .string(topic.name)]), id: requestId))
                }
            }
            presence.typing[topic] = now
        } else if presence.typing.removeValue(forKey: topic) == nil {
            return  // this connection was not typing there: another of the user's may be
        }
        publishTyping(topic, userId: user.id, start: start)
    }

    private func publishTyping(_ topic: Topic, userId: String, start: Bool) {
        guard node.hub.typing.outgoing(topic: topic, userId: userId, session: id, start: start) else { return }
        var envelope = Envelope(
            id: node.ids.next(), origin: node.configuration.nodeId, topic: topic,
            data: PresenceFrames.typingData(userId: userId, state: start ? "start" : "stop"))
        envelope.kind = .typing
        node.broker.publish(envelope)
    }
}
