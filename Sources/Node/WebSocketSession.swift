import Broker
import Foundation
import Logging
import NIOCore

/// The Chorus protocol of one WebSocket connection: auth, subscribe, unsubscribe, publish and
/// ping requests, token expiry, and the connection's place in its ``ConnectionRegistry``.
///
/// It sits above a ``WebSocketTransport`` (RFC 6455, backpressure, the byte- and frame-level
/// limits), which hands it whole, valid UTF-8 text messages within the message rate through
/// ``WebSocketTransportDelegate``, and takes its replies (``WebSocketTransport/send(text:)``).
/// Deliveries do not pass through here: the registry writes them to the transport directly.
/// Everything runs on the channel's event loop, which is also the executor of its registry, so
/// the two call each other synchronously.
final class WebSocketSession: WebSocketTransportDelegate {
    let id: Int
    let remoteAddress: String
    /// The connection's transport, which holds this session (as its delegate) for as long as
    /// its channel is open.
    unowned let transport: WebSocketTransport
    private(set) var user: AuthenticatedUser? {
        didSet { updateDeliveriesWanted() }
    }
    let node: NodeContext
    let registry: ConnectionRegistry
    /// The connection's `read` requests, made at the first.
    private lazy var reads = ReadRequests(node: node, loop: registry.loop)
    /// When the current token expires, if it does; the registry's expiry timer compares it
    /// with the deadline it was given, to skip tokens replaced since.
    private(set) var tokenDeadline: NIODeadline?
    /// Presence memberships, watched topics and typing state (see WebSocketSession+Presence).
    var presence = SessionPresence()
    // The small fields last, packed into what the ones above leave: every idle connection
    // has a session.
    private var tokenExpired = false {
        didSet { updateDeliveriesWanted() }
    }
    private(set) var subscriptions = SessionSubscriptions()

    init(
        id: Int, remoteAddress: String, transport: WebSocketTransport, node: NodeContext, registry: ConnectionRegistry
    ) {
        self.id = id
        self.remoteAddress = remoteAddress
        self.transport = transport
        self.node = node
        self.registry = registry
    }

    private func updateDeliveriesWanted() {
        transport.deliveriesWanted = user != nil && !tokenExpired
    }

    /// Logs with this connection's id, address and user. The metadata is built per message,
    /// and only when the level is enabled, rather than kept in a `Logger` per session: that
    /// costs every idle connection a dictionary, and connections log rarely.
    func log(_ level: Logger.Level, _ message: @autoclosure () -> Logger.Message, _ extra: Logger.Metadata = [:]) {
        let logger = node.logger
        guard logger.logLevel <= level else { return }
        var metadata: Logger.Metadata = ["connection": "\(id)", "ip": .string(remoteAddress)]
        if let user { metadata["user"] = .string(user.id) }
        metadata.merge(extra) { _, given in given }
        logger.log(level: level, message(), metadata: metadata)
    }

    // MARK: Lifecycle (from the transport)

    func transportDidOpen(_ transport: WebSocketTransport) {
        let (id, bound) = (self.id, NIOLoopBound(self, eventLoop: registry.loop))
        registry.assumeIsolated { $0.add(bound, id: id) }
        node.counters.connectionsAccepted.add(1, ordering: .relaxed)
        node.metrics.connectionOpened()
        log(.info, "WebSocket connected")
        if node.readiness.state == .draining {
            // The shutdown's quiesce event may have reached this channel before the upgrade
            // finished; such a connection gets the same 1001 as the others.
            transport.close(.goingAway, reason: "node shutting down")
        }
    }

    func transportDidClose(_ transport: WebSocketTransport) {
        presenceDidClose()
        let id = self.id
        registry.assumeIsolated { $0.remove(id) }
        node.limiter.release(remoteAddress)
        node.metrics.connectionClosed()
        log(.info, "WebSocket disconnected")
    }

    func transport(_ transport: WebSocketTransport, willCloseWith code: UInt16, reason: String) {
        // A client that does not read or that floods is worth an operator's look.
        let misbehaved = code == CloseCode.slowConsumer.rawValue || code == CloseCode.policyViolation.rawValue
        log(misbehaved ? .warning : .info, "closing WebSocket", ["code": "\(code)", "reason": .string(reason)])
    }

    /// Authenticates with the token given at the upgrade; called right after the session is added.
    func authenticateAtUpgrade(_ user: AuthenticatedUser) {
        guard !transport.isClosing else { return }
        authenticate(user, requestId: nil)
    }

    // MARK: Messages (from the transport)

    func transport(_ transport: WebSocketTransport, didReceiveBinary message: ByteBuffer) {
        reply(.error(code: 400, message: "binary frames are not supported: send JSON text", details: nil, id: nil))
    }

    /// A dropped request that has an `id` is answered, so that its sender can send it again
    /// after `retryAfter` (pacing itself to `limit` a second) rather than wait for a reply that
    /// will not come. The replies stay bounded: they come at most at the rate the client sends
    /// past the limit, a client far past it is closed with 1008, one that does not read them
    /// with 4008.
    func transport(_ transport: WebSocketTransport, answeredDropped text: ByteBuffer) -> Bool {
        guard let id = ClientMessage.requestId(in: text.readableBytesView) else { return false }
        replyRateRefusal(id: id)
        return true
    }

    func transportIsDroppingMessages(_ transport: WebSocketTransport) {
        replyRateRefusal(id: nil)
    }

    private func replyRateRefusal(id: JSONValue?) {
        reply(.error(
            code: 429,
            message: "rate limit exceeded: at most \(node.configuration.maxMessagesPerSecond) messages per second; messages over the limit are dropped (send again after details.retryAfter ms), and a connection that keeps sending past it is closed (1008)",
            details: .object([
                "retryAfter": .number(JSONNumber(Self.rateRetryAfterMilliseconds)),
                "limit": .number(JSONNumber(node.configuration.maxMessagesPerSecond)),
            ]), id: id))
    }

    /// `retryAfter` of a rate refusal: in a second the bucket holds a second's worth again.
    static let rateRetryAfterMilliseconds = 1_000

    func transport(_ transport: WebSocketTransport, didReceiveText bytes: ByteBuffer) {
        let message: ClientMessage
        do {
            message = try ClientMessage.decode(bytes.readableBytesView)
        } catch {
            reply(.error(code: 400, message: error.message, details: error.details, id: error.id))
            return
        }
        switch message.kind {
        case .auth(let token):
            do {
                authenticate(try node.verifier.verify(token), requestId: message.id)
            } catch {
                log(.info, "authentication refused", ["reason": "\(error)"])
                reply(.authError(message: error.description, code: 401, id: message.id))
            }
        case .subscribe(let pattern):
            subscribe(pattern, history: message.history, requestId: message.id, presence: message.presence)
        case .unsubscribe(let pattern):
            if subscriptions.remove(pattern) != nil {
                let id = self.id
                registry.assumeIsolated { $0.unsubscribe(id, from: pattern) }
                presenceDidUnsubscribe(pattern)
            }
            // After a `subscribed` still waiting for the backend to settle (a pattern's
            // PSUBSCRIBE): answers go out in the order of their requests.
            let id = self.id
            registry.assumeIsolated { $0.replyInOrder(id, .unsubscribed(topic: pattern.text, id: message.id)) }
        case .message(let topic, let data, let metadata, let eventType):
            publish(
                topic: topic, data: data, metadata: metadata, eventType: eventType, messageId: message.messageId,
                requestId: message.id)
        case .ping:
            reply(.pong(id: message.id))
        case .presenceGet(let topic, let after):
            presenceGet(topic, after: after, requestId: message.id)
        case .typing(let topic, let start):
            typing(topic, start: start, requestId: message.id)
        case .read(let messageId):
            if let problem = authorizationProblem(message.id) { return reply(problem) }
            guard let user else { return }
            reads.start(messageId: messageId, requestId: message.id, user: user, replyingTo: transport)
        }
    }

    private func authenticate(_ newUser: AuthenticatedUser, requestId: JSONValue?) {
        if let user, user.id != newUser.id {
            reply(.authError(
                message: "already authenticated as '\(user.id)': open a new connection for another user",
                code: 409, id: requestId))
            return
        }
        let first = user == nil
        let wasExpired = tokenExpired
        user = newUser
        tokenExpired = false
        if first {
            let (id, userId) = (self.id, newUser.id)
            registry.assumeIsolated { $0.authenticate(id, as: userId) }
            log(.info, "authenticated")
            presenceDidAuthenticate(userId)
        }
        scheduleExpiry(newUser.expiresAt)
        // The user's own channel (direct messages) is interest too: answered once it is live.
        let success = ServerMessage.authSuccess(
            userId: newUser.id, expiresAt: newUser.expiresAt, maxMessageSize: node.configuration.maxMessageSize, id: requestId)
        if first {
            replyWhenSettled(success)
        } else {
            reply(success)
        }
        if !first { dropSubscriptionsNotAllowed(for: newUser) }
        // Nothing was delivered while the token was expired, presence events included.
        if wasExpired { presenceResyncWatched() }
    }

    /// A new token may carry narrower grants than the last: subscriptions it does not allow
    /// end, each with a 403 `error` naming it and saying so (`subscriptionEnded`): other 403s
    /// naming a topic (a typing or publish refused there) leave the subscription as it is.
    private func dropSubscriptionsNotAllowed(for user: AuthenticatedUser) {
        for pattern in subscriptions.sorted(by: { $0.text < $1.text }) {
            guard let denial = TopicAccess.subscribeDenial(pattern, user: user) else { continue }
            subscriptions.remove(pattern)
            let id = self.id
            let ended = ServerMessage.error(
                code: 403, message: "subscription ended: \(denial)",
                details: .object(["topic": .string(pattern.text), "subscriptionEnded": .bool(true)]), id: nil)
            registry.assumeIsolated { registry in
                registry.unsubscribe(id, from: pattern)
                registry.replyInOrder(id, ended)
            }
            presenceDidUnsubscribe(pattern)
        }
    }

    private func scheduleExpiry(_ expiresAt: Date?) {
        let seconds = max(0, expiresAt?.timeIntervalSinceNow ?? .infinity)
        guard seconds < AuthenticatedUser.longestExpiry else {
            tokenDeadline = nil
            return
        }
        let deadline = NIODeadline.now() + .nanoseconds(Int64(seconds * 1e9))
        tokenDeadline = deadline
        let id = self.id
        registry.assumeIsolated { $0.expireToken(of: id, at: deadline) }
    }

    /// Called by the registry when ``tokenDeadline`` has passed: first the token's expiry,
    /// which pauses delivery and starts the `JWT_RENEWAL_GRACE`; then, unless a fresh `auth`
    /// came meanwhile, the grace's end, which closes the connection. A client that never renews
    /// cannot hold a connection (and its presence) open forever.
    func tokenDidExpire() {
        guard !transport.isClosing else { return }
        if tokenExpired {
            tokenDeadline = nil
            log(.info, "no fresh token within JWT_RENEWAL_GRACE; closing")
            node.counters.closedTokenExpired.add(1, ordering: .relaxed)
            transport.close(.tokenExpired, reason: "token expired")
            return
        }
        tokenExpired = true
        node.counters.tokensExpired.add(1, ordering: .relaxed)
        log(.info, "token expired; delivery paused until the client authenticates again")
        reply(.authExpired)
        let deadline = NIODeadline.now() + .nanoseconds(Int64(node.configuration.tokenRenewalGrace / .nanoseconds(1)))
        tokenDeadline = deadline
        let id = self.id
        registry.assumeIsolated { $0.expireToken(of: id, at: deadline) }
    }

    /// Why this session may not use topics yet, as an `error` reply; nil when it may.
    func authorizationProblem(_ requestId: JSONValue?) -> ServerMessage? {
        guard user != nil else {
            return .error(code: 401, message: "not authenticated: send 'auth' with a token first", details: nil, id: requestId)
        }
        guard !tokenExpired else {
            return .error(code: 401, message: "token expired: send 'auth' with a fresh token", details: nil, id: requestId)
        }
        return nil
    }

    private func subscribe(
        _ pattern: TopicPattern, history: HistoryRequest?, requestId: JSONValue?, presence: PresenceRequest? = nil
    ) {
        if let problem = authorizationProblem(requestId) { return reply(problem) }
        if let user, let denial = TopicAccess.subscribeDenial(pattern, user: user) {
            return reply(.error(code: 403, message: denial, details: .object(["topic": .string(pattern.text)]), id: requestId))
        }
        if let presence, presence.joinsOrWatches, let problem = presenceProblem(presence, pattern: pattern, requestId: requestId) {
            return reply(problem)
        }
        let historyTopic = pattern.topic.flatMap { node.broker.adapter.history.covers($0) ? $0 : nil }
        if history != nil, historyTopic == nil {
            return reply(.error(
                code: 400,
                message: "'\(history!.field)' needs a topic with history: '\(pattern.text)' keeps none (HISTORY_SIZE, HISTORY_TOPICS)",
                details: .object(["topic": .string(pattern.text), "field": .string(history!.field)]), id: requestId))
        }
        let limit = node.configuration.maxSubscriptionsPerConnection
        if !subscriptions.contains(pattern), subscriptions.count >= limit {
            return reply(.error(
                code: 429, message: "subscription limit reached: at most \(limit) per connection",
                details: .object(["topic": .string(pattern.text)]), id: requestId))
        }
        if let presence, let topic = pattern.topic, let refusal = presenceChangeRefusal(presence, topic: topic, requestId: requestId) {
            return reply(refusal)
        }
        if let historyTopic, let refusal = historyTopicRefusal(historyTopic, requestId: requestId) { return reply(refusal) }
        // Messages of the topic reach this connection already (this subscription, or a pattern):
        // a history read for this subscribe must not hold back and drop any of them.
        let wasLive = historyTopic.map { topic in subscriptions.contains { $0.matches(topic) } } ?? false
        if !subscriptions.contains(pattern) {
            subscriptions.insert(pattern)
            let id = self.id
            registry.assumeIsolated { $0.subscribe(id, to: pattern) }
        }
        if let historyTopic {
            // The recovery answers `subscribed` itself, once the subscription is live on the
            // backend and the history read is done.
            let (id, adapter) = (self.id, node.broker.adapter)
            let started = registry.assumeIsolated {
                $0.recover(id, topic: historyTopic, request: history, requestId: requestId, wasLive: wasLive, adapter: adapter)
            }
            if !started {
                return reply(.error(
                    code: 409, message: "a subscribe to '\(pattern.text)' is still reading its history: wait for its 'subscribed'",
                    details: .object(["topic": .string(pattern.text)]), id: requestId))
            }
        } else {
            replyWhenSettled(.subscribed(topic: pattern.text, id: requestId))
        }
        if let presence, let topic = pattern.topic { presenceDidSubscribe(topic, presence) }
    }

    /// Sends `message` (a `subscribed`, or the first `auth_success`) once the broker's backend
    /// has every interest change made so far: then nothing published afterwards anywhere in the
    /// cluster is missed. At once (on this loop) in the common case; else from the adapter's
    /// thread, hopping back to this loop. Messages for the topic may arrive before the reply; a
    /// closed connection gets nothing.
    ///
    /// The session is found again by its id rather than held weakly: a weak reference gives the
    /// session a side table for the rest of its life (32 bytes per connection).
    private func replyWhenSettled(_ message: ServerMessage) {
        let (loop, registry, id) = (registry.loop, registry, self.id)
        let ticket = registry.assumeIsolated { $0.reserveReply(id) }
        node.broker.whenInterestSettled {
            if loop.inEventLoop {
                registry.assumeIsolated { $0.settled(id, ticket, with: message) }
            } else {
                loop.execute { registry.assumeIsolated { $0.settled(id, ticket, with: message) } }
            }
        }
    }

    private func publish(
        topic: Topic, data: RawJSON, metadata: RawJSON?, eventType: String?, messageId: String?, requestId: JSONValue?
    ) {
        if let problem = authorizationProblem(requestId) { return reply(problem) }
        guard let user else { return }
        if let denial = TopicAccess.publishDenial(topic, user: user) {
            return reply(.error(code: 403, message: denial, details: .object(["topic": .string(topic.name)]), id: requestId))
        }
        if let denial = ReservedEventTypes.denial(eventType) {
            return reply(.error(
                code: 403, message: denial, details: .object(["topic": .string(topic.name), "field": .string("eventType")]),
                id: requestId))
        }
        if let refusal = historyTopicRefusal(topic, requestId: requestId) { return reply(refusal) }
        // The client's bytes go on as sent; only `senderId` is the node's.
        var envelope = Envelope(
            id: node.ids.next(), origin: node.configuration.nodeId, topic: topic, eventType: eventType,
            data: data, metadata: (metadata ?? .emptyObject).settingMember("senderId", to: .string(user.id)))
        envelope.messageId = messageId
        node.counters.messagesIn.add(1, ordering: .relaxed)
        node.metrics.published()
        node.broker.publish(envelope, completion: requestId.map { publishedReply(topic: topic, messageId: messageId, requestId: $0) })
    }

    /// The refusal of `topic`, a topic with history, past the user's allowance of such topics
    /// a minute (``HistoryTopicBudget``); nil when it may be used.
    private func historyTopicRefusal(_ topic: Topic, requestId: JSONValue?) -> ServerMessage? {
        guard let user, node.broker.adapter.history.covers(topic), let wait = node.historyTopics.admit(user.id, topic: topic)
        else { return nil }
        return .error(
            code: 429,
            message: "more than \(node.historyTopics.perMinute) topics with history a minute for this user (HISTORY_USER_TOPICS_PER_MINUTE): a new one is allowed in details.availableIn ms",
            // Not `retryAfter`: that names a request dropped past the message rate, which the
            // SDKs send again after pausing every other one; this refuses only this topic.
            details: .object([
                "topic": .string(topic.name), "limit": .number(JSONNumber(node.historyTopics.perMinute)),
                "availableIn": .number(JSONNumber(Int((wait / .milliseconds(1)).rounded(.up)))),
            ]), id: requestId)
    }

    /// Answers `published` on this session's loop once the adapter has the outcome; nothing
    /// when the connection has closed meanwhile. The session is found again by its id: holding
    /// it would outlive its transport (held unowned), and a weak reference would cost it a side
    /// table for the rest of its life.
    private func publishedReply(topic: Topic, messageId: String?, requestId: JSONValue) -> PublishCompletion {
        let (loop, registry, id) = (registry.loop, registry, self.id)
        return { outcome in
            loop.execute {
                let answer: ServerMessage
                if let refusal = outcome.refusal {
                    answer = .error(
                        code: 503, message: "message not accepted: \(refusal); publish it again",
                        details: .object(["topic": .string(topic.name)]), id: requestId)
                } else {
                    answer = .published(topic: topic.name, id: requestId, messageId: messageId, outcome: outcome)
                }
                registry.assumeIsolated { $0.session(id)?.reply(answer) }
            }
        }
    }

    func reply(_ message: ServerMessage) {
        transport.send(text: message.encoded())
    }
}
