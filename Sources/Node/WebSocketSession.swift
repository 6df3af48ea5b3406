import Broker
import Foundation
import Logging
import NIOCore

/// One upgraded WebSocket connection: the seed's protocol on plain NIO, with no Swift task.
///
/// The session is the only handler of an upgraded channel: it reads frames from the socket's
/// bytes itself (``WebSocketFrameReader``) and writes pre-encoded ``OutboundFrame`` bytes, so
/// there is no frame decoder, aggregator or encoder in the pipeline. Everything here runs on
/// the channel's event loop, which is also the executor of its ``ConnectionRegistry``, so the
/// two call each other synchronously.
final class WebSocketSession: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let id: Int
    let remoteAddress: String
    private(set) var user: AuthenticatedUser? {
        didSet { updateTakesDeliveries() }
    }
    private(set) var subscriptions: Set<TopicPattern> = []
    /// Set while the session sits in its registry's flush list.
    var needsFlush = false
    /// Whether ``write(_:)`` queues a delivery: attached, authenticated, token valid, not
    /// closing. Kept up to date where those change, so a delivery tests one flag.
    private var takesDeliveries = false
    /// The channel's writability (below the pending-bytes watermark), kept from
    /// `channelWritabilityChanged` so that a delivery does not ask the channel each time.
    private var writable = true

    /// When the current token expires, if it does; the registry's expiry timer compares it
    /// with the deadline it was given, to skip tokens replaced since.
    private(set) var tokenDeadline: NIODeadline?

    private let node: NodeContext
    private let registry: ConnectionRegistry
    private var reader: WebSocketFrameReader
    private var context: ChannelHandlerContext? {
        didSet { updateTakesDeliveries() }
    }
    private var tokenExpired = false {
        didSet { updateTakesDeliveries() }
    }
    private var closeTimer: Scheduled<Void>?
    private var lastHeard = NIODeadline.now()
    private var closing = false {
        didSet { updateTakesDeliveries() }
    }
    /// Set when the client broke the protocol: its further bytes are not read.
    private var failed = false
    private var repliesPending = false
    private var rateLimiter: RateLimiter

    /// How long a closing connection may take to answer the close frame.
    static let closeTimeout = TimeAmount.seconds(5)

    init(
        id: Int, remoteAddress: String, node: NodeContext, registry: ConnectionRegistry
    ) {
        self.id = id
        self.reader = WebSocketFrameReader(maxMessageSize: node.configuration.maxMessageSize)
        self.remoteAddress = remoteAddress
        self.node = node
        self.registry = registry
        self.rateLimiter = RateLimiter(perSecond: node.configuration.maxMessagesPerSecond)
    }

    private func updateTakesDeliveries() {
        takesDeliveries = context != nil && user != nil && !tokenExpired && !closing
    }

    /// Logs with this connection's id, address and user. The metadata is built per message,
    /// and only when the level is enabled, rather than kept in a `Logger` per session: that
    /// costs every idle connection a dictionary, and connections log rarely.
    private func log(_ level: Logger.Level, _ message: @autoclosure () -> Logger.Message, _ extra: Logger.Metadata = [:]) {
        let logger = node.logger
        guard logger.logLevel <= level else { return }
        var metadata: Logger.Metadata = ["connection": "\(id)", "ip": .string(remoteAddress)]
        if let user { metadata["user"] = .string(user.id) }
        metadata.merge(extra) { _, given in given }
        logger.log(level: level, message(), metadata: metadata)
    }

    // MARK: Lifecycle

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        writable = context.channel.isWritable
        let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
        let id = self.id
        registry.assumeIsolated { $0.add(bound, id: id) }
        node.counters.connectionsAccepted.add(1, ordering: .relaxed)
        node.metrics.connectionOpened()
        log(.info, "WebSocket connected")
        if node.readiness.state == .draining {
            // The shutdown's quiesce event may have reached this channel before the upgrade
            // finished; such a connection gets the same 1001 as the others.
            return close(.goingAway, reason: "node shutting down")
        }
    }

    /// Authenticates with the token given at the upgrade; called right after the session is added.
    func authenticateAtUpgrade(_ user: AuthenticatedUser) {
        guard !closing else { return }
        authenticate(user, requestId: nil)
        flushReplies()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        closeTimer?.cancel()
        let id = self.id
        registry.assumeIsolated { $0.remove(id) }
        node.limiter.release(remoteAddress)
        node.metrics.connectionClosed()
        log(.info, "WebSocket disconnected")
        self.context = nil
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        switch event {
        case is ChannelShouldQuiesceEvent:
            close(.goingAway, reason: "node shutting down")
        case ChannelEvent.inputClosed:
            context.close(promise: nil)
        default:
            context.fireUserInboundEventTriggered(event)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        log(.debug, "channel error", ["error": "\(error)"])
        context.close(promise: nil)
    }

    // MARK: Inbound

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !failed else { return }
        lastHeard = .now()
        reader.receive(unwrapInboundIn(data))
        do {
            while !failed, let frame = try reader.next() {
                handle(frame, allocator: context.channel.allocator)
            }
        } catch {
            fail(error)
        }
        if failed {
            reader.reset()
        } else {
            reader.endOfRead()
        }
    }

    private func handle(_ frame: WebSocketFrameReader.Frame, allocator: ByteBufferAllocator) {
        switch frame.opcode {
        case .text:
            guard !closing else { return }
            handleText(frame.payload)
        case .binary:
            guard !closing else { return }
            reply(.error(code: 400, message: "binary frames are not supported: send JSON text", details: nil, id: nil))
        case .ping:
            write(raw: .pong(frame.payload, allocator: allocator))
            repliesPending = true
        case .pong, .continuation:
            break
        case .close:
            receivedClose(frame.payload)
        }
    }

    /// Fails the connection after a frame it cannot read past (RFC 6455 §7.1.7): see
    /// ``failConnection(_:reason:)``.
    private func fail(_ violation: WebSocketFrameReader.Violation) {
        let (code, reason): (CloseCode, String)
        switch violation {
        case .tooBig:
            log(.info, "message over WEBSOCKET_MAX_MESSAGE_SIZE")
            (code, reason) = (.messageTooBig, "message larger than \(node.configuration.maxMessageSize) bytes")
        case .protocolError(let why):
            log(.info, "WebSocket protocol error", ["reason": .string(why)])
            (code, reason) = (.protocolError, why)
        }
        failConnection(code, reason: reason)
    }

    /// Sends a close frame with `code`, then reads (and drops) whatever the client still sends
    /// until it closes or ``closeTimeout`` passes. The node's side of the TCP connection is
    /// shut down as soon as the close frame is out. Closing outright would make the kernel
    /// answer the client's further bytes with a reset, and a client that sees a reset may
    /// never read the close frame.
    private func failConnection(_ code: CloseCode, reason: String) {
        failed = true
        close(code, reason: reason, awaitingReply: false)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        writable = context.channel.isWritable
        context.fireChannelWritabilityChanged()
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        flushReplies()
        context.fireChannelReadComplete()
    }

    private func handleText(_ bytes: ByteBuffer) {
        guard rateLimiter.allow(now: .now()) else {
            if rateLimiter.shouldWarn() {
                reply(.error(
                    code: 429,
                    message: "rate limit exceeded: at most \(node.configuration.maxMessagesPerSecond) messages per second; messages over the limit are dropped",
                    details: nil, id: nil))
            }
            return
        }
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
            subscribe(pattern, requestId: message.id)
        case .unsubscribe(let pattern):
            if subscriptions.remove(pattern) != nil {
                let id = self.id
                registry.assumeIsolated { $0.unsubscribe(id, from: pattern) }
            }
            reply(.unsubscribed(topic: pattern.text, id: message.id))
        case .message(let topic, let data, let metadata, let eventType):
            publish(topic: topic, data: data, metadata: metadata, eventType: eventType, requestId: message.id)
        case .ping:
            reply(.pong(id: message.id))
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
        user = newUser
        tokenExpired = false
        if first {
            let (id, userId) = (self.id, newUser.id)
            registry.assumeIsolated { $0.authenticate(id, as: userId) }
            log(.info, "authenticated")
        }
        scheduleExpiry(newUser.expiresAt)
        reply(.authSuccess(userId: newUser.id, id: requestId))
        if !first { dropSubscriptionsNotAllowed(for: newUser) }
    }

    /// A new token may carry narrower grants than the last: subscriptions it does not allow
    /// end, each with a 403 `error` naming it.
    private func dropSubscriptionsNotAllowed(for user: AuthenticatedUser) {
        for pattern in subscriptions.sorted(by: { $0.text < $1.text }) {
            guard let denial = TopicAccess.subscribeDenial(pattern, user: user) else { continue }
            subscriptions.remove(pattern)
            let id = self.id
            registry.assumeIsolated { $0.unsubscribe(id, from: pattern) }
            reply(.error(
                code: 403, message: "subscription ended: \(denial)", details: .object(["topic": .string(pattern.text)]),
                id: nil))
        }
    }

    private func scheduleExpiry(_ expiresAt: Date?) {
        // A token valid for more than a year counts as not expiring while connected: a
        // far-future `exp` would overflow the deadline's nanoseconds.
        let seconds = max(0, expiresAt?.timeIntervalSinceNow ?? .infinity)
        guard seconds < 365 * 86_400 else {
            tokenDeadline = nil
            return
        }
        let deadline = NIODeadline.now() + .nanoseconds(Int64(seconds * 1e9))
        tokenDeadline = deadline
        let id = self.id
        registry.assumeIsolated { $0.expireToken(of: id, at: deadline) }
    }

    /// Called by the registry when ``tokenDeadline`` has passed.
    func tokenDidExpire() {
        guard !closing, !tokenExpired else { return }
        tokenDeadline = nil
        tokenExpired = true
        log(.info, "token expired; delivery paused until the client authenticates again")
        reply(.authExpired)
        flushReplies()
    }

    /// Why this session may not use topics yet, as an `error` reply; nil when it may.
    private func authorizationProblem(_ requestId: JSONValue?) -> ServerMessage? {
        guard user != nil else {
            return .error(code: 401, message: "not authenticated: send 'auth' with a token first", details: nil, id: requestId)
        }
        guard !tokenExpired else {
            return .error(code: 401, message: "token expired: send 'auth' with a fresh token", details: nil, id: requestId)
        }
        return nil
    }

    private func subscribe(_ pattern: TopicPattern, requestId: JSONValue?) {
        if let problem = authorizationProblem(requestId) { return reply(problem) }
        if let user, let denial = TopicAccess.subscribeDenial(pattern, user: user) {
            return reply(.error(code: 403, message: denial, details: .object(["topic": .string(pattern.text)]), id: requestId))
        }
        if !subscriptions.contains(pattern) {
            let limit = node.configuration.maxSubscriptionsPerConnection
            guard subscriptions.count < limit else {
                return reply(.error(
                    code: 429, message: "subscription limit reached: at most \(limit) per connection",
                    details: .object(["topic": .string(pattern.text)]), id: requestId))
            }
            subscriptions.insert(pattern)
            let id = self.id
            registry.assumeIsolated { $0.subscribe(id, to: pattern) }
        }
        reply(.subscribed(topic: pattern.text, id: requestId))
    }

    private func publish(topic: Topic, data: RawJSON, metadata: RawJSON?, eventType: String?, requestId: JSONValue?) {
        if let problem = authorizationProblem(requestId) { return reply(problem) }
        guard let user else { return }
        if let denial = TopicAccess.publishDenial(topic, user: user) {
            return reply(.error(code: 403, message: denial, details: .object(["topic": .string(topic.name)]), id: requestId))
        }
        // The client's bytes go on as sent; only `senderId` is the node's.
        let envelope = Envelope(
            id: node.ids.next(), origin: node.configuration.nodeId, topic: topic, eventType: eventType,
            data: data, metadata: (metadata ?? .emptyObject).settingMember("senderId", to: .string(user.id)))
        node.counters.messagesIn.add(1, ordering: .relaxed)
        node.metrics.published()
        node.broker.publish(envelope)
    }

    private func receivedClose(_ payload: ByteBuffer) {
        guard let context else { return }
        if closing {
            context.close(promise: nil)
            return
        }
        var data = payload
        var code = CloseCode.normal.rawValue
        if data.readableBytes > 0 {
            guard let given = data.readInteger(as: UInt16.self) else {
                return failConnection(.protocolError, reason: "a close frame with a 1-byte payload")
            }
            guard Self.mayBeSent(closeCode: given) else {
                return failConnection(.protocolError, reason: "close code \(given) may not be sent")
            }
            guard String(validating: data.readableBytesView, as: UTF8.self) != nil else {
                return failConnection(.invalidPayload, reason: "the close reason is not UTF-8")
            }
            code = given  // echoed, as RFC 6455 §5.5.1 suggests
        }
        closing = true
        let channel = context.channel
        guard let written = writeAndFlush(.close(code: code, reason: "", allocator: channel.allocator)) else {
            return channel.close(promise: nil)
        }
        written.whenComplete { _ in channel.close(promise: nil) }
    }

    /// Close codes a client may send (RFC 6455 §7.4 and the IANA registry): not 1004-1006 or
    /// 1015, which are reserved or never sent, and nothing outside 1000-1014 and 3000-4999.
    static func mayBeSent(closeCode code: UInt16) -> Bool {
        switch code {
        case 1000...1003, 1007...1014, 3000...4999: true
        default: false
        }
    }

    // MARK: Outbound

    /// Queues a delivered message; false when this session does not take deliveries now.
    /// Closes the session as a slow consumer when its unsent bytes pass the limit.
    ///
    /// The hot path of every delivery: one flag, the cached writability, and a write from the
    /// session's context, the next to the pipeline's head (no channel lookup, no reference
    /// counting of the channel).
    func write(_ frame: OutboundFrame) -> Bool {
        guard takesDeliveries else { return false }
        guard writable else {
            node.counters.slowConsumers.add(1, ordering: .relaxed)
            log(.warning, "slow consumer: over WEBSOCKET_MAX_PENDING_BYTES unsent, closing")
            close(.slowConsumer, reason: "slow consumer: too many unsent messages")
            return false
        }
        write(raw: frame)
        return true
    }

    func flush() {
        needsFlush = false
        context?.flush()
    }

    private func write(raw frame: OutboundFrame) {
        context?.write(wrapOutboundOut(frame.bytes), promise: nil)
    }

    private func writeAndFlush(_ frame: OutboundFrame) -> EventLoopFuture<Void>? {
        context?.writeAndFlush(wrapOutboundOut(frame.bytes))
    }

    private func reply(_ message: ServerMessage) {
        guard let context else { return }
        write(raw: .text(message.encoded(), allocator: context.channel.allocator))
        repliesPending = true
    }

    private func flushReplies() {
        guard repliesPending else { return }
        repliesPending = false
        context?.flush()
    }

    /// Called by the registry's sweep: pings, or closes a connection silent for too long.
    func keepAlive(now: NIODeadline, timeout: TimeAmount, ping: OutboundFrame) {
        guard !closing, context != nil else { return }
        if now - lastHeard > timeout {
            node.counters.pingTimeouts.add(1, ordering: .relaxed)
            log(.info, "ping timeout: nothing heard within WEBSOCKET_PING_TIMEOUT")
            close(.pingTimeout, reason: "ping timeout")
        } else {
            write(raw: ping)
            context?.flush()
        }
    }

    /// Completes when the connection's channel has closed; nil once the handler is removed.
    var closeFuture: EventLoopFuture<Void>? { context?.channel.closeFuture }

    /// Starts the closing handshake: sends a close frame, stops deliveries, and drops the
    /// connection if the client does not answer within ``closeTimeout``. Without
    /// `awaitingReply` (the client broke the protocol, so its further bytes cannot be read) the
    /// node's side is shut down as soon as the close frame is sent.
    func close(_ code: CloseCode, reason: String, awaitingReply: Bool = true) {
        guard !closing, let context else { return }
        closing = true
        log(.info, "closing WebSocket", ["code": "\(code.rawValue)", "reason": .string(reason)])
        let channel = context.channel
        let written = writeAndFlush(.close(code, reason: reason, allocator: channel.allocator))
        if !awaitingReply { written?.whenComplete { _ in channel.close(mode: .output, promise: nil) } }
        closeTimer = context.eventLoop.scheduleTask(in: Self.closeTimeout) { channel.close(promise: nil) }
    }
}

/// A token bucket for client messages: `perSecond` sustained, the same as a burst.
struct RateLimiter {
    private let perSecond: Int
    private var tokens: Double
    private var last: NIODeadline
    private var warnedAt: NIODeadline?

    init(perSecond: Int) {
        self.perSecond = perSecond
        self.tokens = Double(perSecond)
        self.last = .now()
    }

    mutating func allow(now: NIODeadline) -> Bool {
        let elapsed = Double((now - last).nanoseconds) / 1e9
        last = now
        tokens = min(Double(perSecond), tokens + elapsed * Double(perSecond))
        guard tokens >= 1 else { return false }
        tokens -= 1
        warnedAt = nil
        return true
    }

    /// True once per second of continued flooding, so refusals do not become a flood themselves.
    mutating func shouldWarn() -> Bool {
        let now = NIODeadline.now()
        if let warnedAt, now - warnedAt < .seconds(1) { return false }
        warnedAt = now
        return true
    }
}
