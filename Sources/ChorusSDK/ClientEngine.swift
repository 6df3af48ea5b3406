import Foundation
import NIOSSL

/// The state behind a ``ChorusClient``: the connection, its run loop, subscriptions, awaited
/// replies and the publish queue. Everything here is isolated to this actor; the run loop
/// (``run()``) is one task the engine owns, cancelled by ``shutdown()``. Sends to the node are
/// queued synchronously on the connection, so the order of calls is the order on the wire.
actor ClientEngine {
    typealias TokenProvider = @Sendable () async throws -> String

    /// One subscriber of a topic: its three sequences.
    private struct Handle {
        var messages: AsyncStream<ChorusMessage>.Continuation
        var presence: AsyncStream<PresenceEvent>.Continuation
        var typing: AsyncStream<TypingEvent>.Continuation
        /// A `join`'s data: the user is a member of the topic while this handle lasts. Nil for
        /// a plain subscriber.
        var joinedWith: JSONValue?
        var joined: Bool { joinedWith != nil }

        func finish() {
            messages.finish()
            presence.finish()
            typing.finish()
        }
    }

    /// A topic or pattern as the node should see it: subscribed while any handle remains.
    private struct TopicState {
        var handles: [Int: Handle] = [:]
        /// Subscribers waiting for the first `subscribed` reply (or the error).
        var waiters: [Int: CheckedContinuation<Void, any Error>] = [:]
        /// Subscribed on the current connection.
        var confirmed = false
        /// A `subscribe` request is in flight on the current connection.
        var inFlight = false
        /// The `subscribe` in flight asked for history (`since` or `replay`): until its reply,
        /// this subscription takes no message of its topic with a position, which a pattern
        /// of this client may deliver meanwhile; the node sends each of them in the page, or
        /// after it.
        var awaitingPage = false
        /// The subscription changed while a `subscribe` was in flight: subscribe again once it
        /// is answered (the node refuses a second subscribe of a history topic with 409 while
        /// the first still reads its history), before the waiters resume.
        var resendWhenAnswered = false
        /// The last `join` ended while plain subscribers remain: unsubscribe before that
        /// subscribe, so that the node lets the membership go.
        var leaveFirst = false
        /// The subscription changed while the token was expired (the node would refuse a
        /// subscribe with 401): subscribe again once a fresh token is accepted.
        var resendWhenAuthenticated = false
        /// The node has confirmed it once: it was live, so a later refusal ends it for the app.
        var everConfirmed = false
        /// Confirmed on a connection that was lost, not yet on a later one: its next
        /// confirmation is a reconnect's (`resubscribed`). Not `everConfirmed`: a subscribe sent
        /// again on the same connection is no reconnect.
        var reconnecting = false
        /// Presence events may have been missed since the node last confirmed it: a connection
        /// that had it confirmed was lost, or it was unsubscribed to end its last membership.
        var missedPresence = false
        /// Presence data to join with, and whether presence events are wanted.
        var presence: JSONValue?
        var presenceEvents = false
        /// Asked of the first subscribe only.
        var replay: Int?
        var since: StreamPosition?
        /// The last position this subscription delivered, per topic. Each subscription keeps its
        /// own: a pattern that delivered a topic's newest message must not make the history page
        /// of that topic's own subscription look like repeats.
        var positions = StreamPositions()
        /// Messages without a position it delivered lately, to drop a repeated `messageId`.
        var recentIds = RecentMessageIds()
        /// Subscribes sent again on this connection (``retrySubscribe(_:after:)``), and the wait
        /// before the next.
        var retries = 0
        var retry: Task<Void, Never>?
    }

    /// A reply being waited for, by request id.
    private enum Awaited {
        case request(CheckedContinuation<[String: JSONValue], any Error>, timer: Task<Void, Never>?)
        /// With what the `subscribe` asked for: history after `since`, or the last `replay` messages.
        case subscribe(topic: String, since: StreamPosition?, replay: Int?, timer: Task<Void, Never>?)
        case publish(key: Int, timer: Task<Void, Never>?)
        /// A `subscribe` with `since` for a live topic after a token renewed late
        /// (``catchUp(on:)``); `attempt` counts its resends after rate refusals.
        case catchUp(topic: String, since: StreamPosition, attempt: Int, timer: Task<Void, Never>?)
        /// `ahead`: a renewal before the expiry, whose refusal leaves the connection as it is.
        case auth(ahead: Bool)
        /// A `ping` sent behind an unacknowledged publish (request `publishId`): the node
        /// answers in order, so its `pong` means the publish was not refused.
        case fence(publishId: Int)
    }

    /// A publish waiting for a connection or for its acknowledgement.
    private struct QueuedPublish {
        /// The `message` object's text without `id` and `data`.
        var head: String
        /// `data` as JSON text, sent as it is (what the app encoded, digits and all).
        var data: String
        var topic: String
        var messageId: String
        var continuation: CheckedContinuation<PublishReceipt, any Error>
        /// The request id it was sent with on the current connection; nil while unsent.
        var requestId: Int?
        /// Times the node dropped it past its message rate and it was sent again.
        var rateRetries = 0
    }

    /// Typing sent on one topic.
    private struct Typing {
        var lastStart: ContinuousClock.Instant
        var stopTimer: Task<Void, Never>?
    }

    private let url: ServerURL
    /// For `wss` URLs: made once from ``ChorusClient/Configuration/tls``.
    private let tlsContext: NIOSSLContext?
    private let configuration: ChorusClient.Configuration
    private var token: String?
    private let tokenProvider: TokenProvider?

    private var policy: ReconnectPolicy
    private var state: ConnectionState = .disconnected
    private var stateWatchers: [Int: AsyncStream<ConnectionState>.Continuation] = [:]
    private var eventWatchers: [Int: AsyncStream<ClientEvent>.Continuation] = [:]
    /// Watchers of messages addressed to the user, each bounded like a subscription.
    private var userMessageWatchers: [Int: AsyncStream<ChorusMessage>.Continuation] = [:]
    /// Callers parked until something happens (see ``Wait``).
    private var waiters: [Int: (wait: Wait, continuation: CheckedContinuation<Void, any Error>)] = [:]
    private var runner: Task<Void, Never>?
    /// Bumped by every start and stop, so that a stale run loop recognizes itself.
    private var generation = 0

    private var connection: WebSocketConnection?
    /// Authenticated on the current connection.
    private var authenticated = false
    /// The node said the token expired and no new one has been accepted yet: requests wait
    /// (the node would refuse them with 401) until it is.
    private var tokenExpired = false
    /// Asks the token provider ahead of the token's expiry (``scheduleRenewal(_:on:)``).
    private var renewal: Task<Void, Never>?
    /// When the current connection's token expires, from the node's `expiresIn`.
    private var tokenExpiresAt: ContinuousClock.Instant?
    /// The largest frame the current connection takes (UTF-8 bytes), from its `auth_success`.
    private var maxMessageSize: Int?
    /// What a node that does not announce `maxMessageSize` takes: its default.
    static let defaultMaxMessageSize = 1_048_576

    /// What a parked caller waits for.
    private enum Wait {
        /// `connect()`: the client connected (or failed, or was closed).
        case connected
        /// A request made while the token is expired: the `auth` with a fresh one, or the
        /// connection's end, after which it tries again on the next.
        case freshToken
    }
    /// Requests may go out: authenticated with a token that has not expired.
    private var canSend: Bool { authenticated && !tokenExpired }
    private var userId: String?
    private var connectedBefore = false

    private var nextId = 0
    private var awaited: [Int: Awaited] = [:]
    /// When the next request sent again after a rate refusal may go (``rateRetryDelay(_:attempt:atLeast:)``).
    private var rateNext = ContinuousClock.now
    /// The liveness check under way (``checkAlive(_:)``), with the connection it pings.
    private var liveness: (connection: WebSocketConnection, check: Task<Bool, Never>)?
    private var topics: [String: TopicState] = [:]
    private var publishes: [Int: QueuedPublish] = [:]
    private var typing: [String: Typing] = [:]

    init(url: ServerURL, token: String?, tokenProvider: TokenProvider?, configuration: ChorusClient.Configuration) throws {
        self.url = url
        tlsContext = url.tls ? try NIOSSLContext(configuration: configuration.tls) : nil
        self.token = token
        self.tokenProvider = tokenProvider
        self.configuration = configuration
        self.policy = ReconnectPolicy(
            minimumDelay: configuration.minimumReconnectDelay, maximumDelay: configuration.maximumReconnectDelay,
            factor: configuration.reconnectFactor, stableAfter: configuration.stableConnectionAfter)
    }

    private func newId() -> Int {
        nextId += 1
        return nextId
    }

    // MARK: Watching

    func currentState() -> ConnectionState { state }

    /// The topic's own subscription's position, else the furthest a pattern delivered.
    func position(of topic: String) -> StreamPosition? {
        topics[topic]?.positions[topic] ?? topics.values.compactMap { $0.positions[topic] }.max { $0.offset < $1.offset }
    }

    func stateStream() -> AsyncStream<ConnectionState> {
        let (stream, continuation) = AsyncStream.makeStream(of: ConnectionState.self)
        let id = newId()
        stateWatchers[id] = continuation
        continuation.yield(state)
        continuation.onTermination = { _ in Task { await self.dropStateWatcher(id) } }
        return stream
    }

    func eventStream() -> AsyncStream<ClientEvent> {
        let (stream, continuation) = AsyncStream.makeStream(of: ClientEvent.self)
        let id = newId()
        eventWatchers[id] = continuation
        continuation.onTermination = { _ in Task { await self.dropEventWatcher(id) } }
        return stream
    }

    func userMessageStream() -> AsyncStream<ChorusMessage> {
        let (stream, continuation) = AsyncStream.makeStream(
            of: ChorusMessage.self, bufferingPolicy: .bufferingOldest(configuration.messageBufferLimit))
        let id = newId()
        userMessageWatchers[id] = continuation
        continuation.onTermination = { _ in Task { await self.dropUserMessageWatcher(id) } }
        return stream
    }

    private func dropUserMessageWatcher(_ id: Int) { userMessageWatchers[id] = nil }
    private func dropStateWatcher(_ id: Int) { stateWatchers[id] = nil }
    private func dropEventWatcher(_ id: Int) { eventWatchers[id] = nil }

    private func setState(_ new: ConnectionState) {
        guard new != state else { return }
        state = new
        for watcher in stateWatchers.values { watcher.yield(new) }
        switch new {
        case .connected:
            resume(.connected, with: nil)
        case .failed(let error):
            resume(.connected, with: error)
        case .disconnected:
            resume(.connected, with: ChorusError.closed)
        case .connecting, .reconnecting:
            break
        }
    }

    private func emit(_ event: ClientEvent) {
        for watcher in eventWatchers.values { watcher.yield(event) }
    }

    /// Resumes the callers parked for `wait`: with `error` thrown, or returning.
    private func resume(_ wait: Wait, with error: (any Error)?) {
        let resumed = waiters.filter { $0.value.wait == wait }
        for id in resumed.keys { waiters[id] = nil }
        for (_, waiter) in resumed {
            if let error { waiter.continuation.resume(throwing: error) } else { waiter.continuation.resume() }
        }
    }

    /// Parks the caller until ``resume(_:with:)`` for `wait`; a cancelled caller stops waiting.
    private func park(until wait: Wait) async throws {
        let id = newId()
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                if Task.isCancelled {
                    continuation.resume(throwing: CancellationError())
                } else {
                    waiters[id] = (wait, continuation)
                }
            }
        } onCancel: {
            Task { await self.unpark(id) }
        }
    }

    private func unpark(_ id: Int) {
        waiters.removeValue(forKey: id)?.continuation.resume(throwing: CancellationError())
    }

    // MARK: Starting and stopping

    /// Starts the run loop unless it runs; with `restart`, also after a failure or a close.
    func start() {
        guard runner == nil else { return }
        generation += 1
        policy.reset()
        let generation = self.generation
        setState(connectedBefore ? .reconnecting(attempt: 0, delay: .zero) : .connecting)
        runner = Task { await self.run(generation) }
    }

    /// Starts if needed and waits until connected; throws when the client fails or is closed
    /// first. A cancelled caller stops waiting (the client carries on connecting).
    func connect() async throws {
        start()
        if state.isConnected { return }
        if case .failed(let error) = state { throw error }
        try await park(until: .connected)
    }

    /// Stops the run loop, closes the connection (1000), ends every subscription and fails
    /// every waiting call with ``ChorusError/closed``.
    /// Ends the connection and every subscription and ``userMessageStream()`` (``close()``);
    /// `released` (the client was released) ends the state and event streams as well, which
    /// otherwise carry on across `close()` and a later `connect()`.
    func shutdown(released: Bool = false) {
        generation += 1
        runner?.cancel()
        let connection = self.connection
        self.connection = nil
        stop(failingWith: .closed)
        if released {
            finish(&stateWatchers)
            finish(&eventWatchers)
        }
        connection?.close(code: 1000)
    }

    /// The client stops for good (``close()``, or the end of the connection without
    /// reconnects): waiting calls and queued publishes throw `error`, every subscription and
    /// ``userMessageStream()`` ends, and the state is ``ConnectionState/disconnected``.
    private func stop(failingWith error: ChorusError) {
        runner = nil
        resume(.freshToken, with: error)
        lostConnection(failingWith: error)
        for (key, publish) in publishes {
            publishes[key] = nil
            publish.continuation.resume(throwing: error)
        }
        for (topic, state) in topics {
            for waiter in state.waiters.values { waiter.resume(throwing: error) }
            for handle in state.handles.values { handle.finish() }
            topics[topic] = nil
        }
        finish(&userMessageWatchers)
        setState(.disconnected)
    }

    private func finish<Element>(_ watchers: inout [Int: AsyncStream<Element>.Continuation]) {
        let finished = watchers
        watchers = [:]
        for watcher in finished.values { watcher.finish() }
    }

    /// Gives up until the app acts (from the run loop): subscribes waiting for a confirmation
    /// and queued publishes fail with `error`; confirmed subscriptions stay, to be sent again
    /// once a new token starts the client again.
    private func fail(_ error: ChorusError) {
        runner = nil
        for (topic, state) in topics {
            guard state.everConfirmed else {
                for waiter in state.waiters.values { waiter.resume(throwing: error) }
                for handle in state.handles.values { handle.finish() }
                topics[topic] = nil
                continue
            }
            // A subscriber added to a live topic meanwhile: its call throws, and its handle
            // goes with the stream it never got.
            topics[topic]?.waiters = [:]
            for waiter in state.waiters.values { waiter.resume(throwing: error) }
        }
        for (key, publish) in publishes {
            publishes[key] = nil
            publish.continuation.resume(throwing: error)
        }
        setState(.failed(error))
    }

    func setToken(_ new: String) {
        token = new
        if authenticated, let connection {
            sendAuth(new, ahead: false, on: connection)
        } else if case .failed = state {
            start()
        }
    }

    // MARK: The run loop

    private func run(_ generation: Int) async {
        var refreshToken = false
        while !Task.isCancelled, generation == self.generation {
            let ending = await connectAndServe(refreshToken: refreshToken)
            guard !Task.isCancelled, generation == self.generation else { return }
            guard let ending else { return }  // failed or stopped inside
            guard configuration.reconnects else {
                stop(failingWith: .disconnected)
                return
            }
            switch policy.next(after: ending, now: .now, canRefreshToken: tokenProvider != nil, random: configuration.random()) {
            case .stop(let error):
                fail(error)
                return
            case .reconnect(let delay, let attempt, let refresh):
                refreshToken = refresh
                setState(.reconnecting(attempt: attempt, delay: delay))
                if delay > .zero {
                    do { try await Task.sleep(for: delay) } catch { return }
                }
            }
        }
    }

    /// One connection, from the token to its end; nil when the client stopped (failed or
    /// cancelled) meanwhile.
    private func connectAndServe(refreshToken: Bool) async -> ConnectionEnding? {
        let token: String
        do {
            token = try await currentToken(refresh: refreshToken)
        } catch is CancellationError {
            return nil
        } catch {
            let failure = (error as? ChorusError) ?? .tokenUnavailable(message: "\(error)")
            emit(.error(failure))
            // Without a provider nothing will bring a token; a provider that failed (its
            // server down, say) is asked again after the reconnect backoff.
            if tokenProvider == nil {
                fail(failure)
                return nil
            }
            return .connectFailed
        }
        let connection: WebSocketConnection
        do {
            connection = try await WebSocketConnection.connect(
                to: url, tls: tlsContext, headers: [("Authorization", "Bearer \(token)")],
                timeout: configuration.connectTimeout)
        } catch WebSocketConnection.Failure.upgradeRefused(let status, let body) {
            if status == 401 { return .authRefused(code: 401, message: Self.errorMessage(in: body)) }
            let refusal = ChorusError.upgradeRefused(status: status, body: Self.errorMessage(in: body))
            emit(.error(refusal))
            // No WebSocket at that path (404), a handshake or origin the node refuses (400,
            // 403): trying again cannot help. Past a limit (429), a node draining or full
            // (503), a proxy's 502: again after the backoff.
            if [400, 403, 404].contains(status) {
                fail(refusal)
                return nil
            }
            return .connectFailed
        } catch {
            return Task.isCancelled ? nil : .connectFailed
        }
        guard !Task.isCancelled else {
            connection.abort()
            return nil
        }
        self.connection = connection
        let pinger = startPinging(connection)
        var closeCode: UInt16?
        var refused: ConnectionEnding?
        for await event in connection.events {
            switch event {
            case .text(let text):
                if let ending = receive(text, on: connection) {
                    refused = ending
                    connection.abort()
                }
            case .closed(let code):
                closeCode = code
            }
        }
        pinger?.cancel()
        if self.connection === connection {
            self.connection = nil
            if closeCode == 1009 { rejectTooBig() }
            lostConnection(failingWith: .disconnected)
        }
        if authenticated { connectedBefore = true }
        authenticated = false
        return refused ?? .closed(code: closeCode)
    }

    private func currentToken(refresh: Bool) async throws -> String {
        if let tokenProvider, refresh || token == nil {
            let fresh = try await tokenProvider()
            token = fresh
            return fresh
        }
        if let token { return token }
        throw ChorusError.tokenUnavailable(message: "no token and no token provider")
    }

    private static func errorMessage(in body: String) -> String {
        (try? JSONValue(parsing: body))?["message"]?.stringValue ?? body
    }

    /// Checks the connection every ``ChorusClient/Configuration/pingInterval`` (``checkAlive(_:)``);
    /// one the node has not authenticated within `connectTimeout` + `pongTimeout` of the
    /// upgrade is dropped (the client reconnects).
    private func startPinging(_ connection: WebSocketConnection) -> Task<Void, Never>? {
        guard let interval = configuration.pingInterval else { return nil }
        let unauthenticatedUntil = ContinuousClock.now + configuration.connectTimeout + configuration.pongTimeout
        return Task {
            while !Task.isCancelled {
                do { try await Task.sleep(for: interval) } catch { return }
                guard self.connection === connection else { return }
                guard self.authenticated else {
                    if ContinuousClock.now >= unauthenticatedUntil { return connection.abort() }
                    continue
                }
                guard let check = self.checkAlive(connection), await check.value else { return }
            }
        }
    }

    /// Pings the node on `connection` now (unless a check of it is under way) and tells whether
    /// it answered within ``ChorusClient/Configuration/pongTimeout``. Any reply counts, a
    /// refusal past the node's message rate too. No answer: the connection is dead without a
    /// close, and only aborting it ends it (its unanswered publishes go back to the queue, and
    /// the client reconnects). Nil when `connection` is not the current one.
    private func checkAlive(_ connection: WebSocketConnection) -> Task<Bool, Never>? {
        guard self.connection === connection, authenticated else { return nil }
        if let liveness, liveness.connection === connection { return liveness.check }
        let pongTimeout = configuration.pongTimeout
        let check = Task<Bool, Never> {
            let alive = await withTaskGroup(of: Bool?.self) { group in
                group.addTask {
                    do {
                        // The node answers pings also while the token is expired.
                        _ = try await self.request(["type": "ping"], on: connection, needsToken: false)
                        return true
                    } catch ChorusError.server {
                        return true
                    } catch {
                        return false
                    }
                }
                group.addTask {
                    try? await Task.sleep(for: pongTimeout)
                    return nil
                }
                let first = await group.next() ?? nil
                group.cancelAll()
                return first ?? false
            }
            self.livenessChecked(connection, alive: alive)
            return alive
        }
        liveness = (connection, check)
        return check
    }

    private func livenessChecked(_ connection: WebSocketConnection, alive: Bool) {
        if liveness?.connection === connection { liveness = nil }
        if !alive, self.connection === connection { connection.abort() }
    }

    /// A publish got no reply within ``ChorusClient/Configuration/requestTimeout``: it throws
    /// ``ChorusError/timeout`` once the connection has answered a ping (alive: the node left
    /// it unanswered); a reply during that check still counts. On a dead connection it is not
    /// failed: the abort puts it back in the queue, sent again on the next connection.
    private func publishTimedOut(_ id: Int, key: Int) {
        guard let connection, let check = checkAlive(connection) else { return failUnanswered(id, key: key) }
        Task {
            guard await check.value else { return }
            self.failUnanswered(id, key: key)
        }
    }

    /// Throws ``ChorusError/timeout`` from publish `key` if its request `id` is still unanswered.
    private func failUnanswered(_ id: Int, key: Int) {
        guard case .publish(key, _)? = awaited[id] else { return }
        awaited[id] = nil
        publishes.removeValue(forKey: key)?.continuation.resume(throwing: ChorusError.timeout)
    }

    /// The node closed the connection with 1009: a frame was over its limit although under the
    /// one this client knew (a ``ChorusClient/Configuration/maxMessageSize`` set too high, a
    /// proxy's lower limit). Sent again, it would close every connection in turn: the largest
    /// publish sent on this connection and not acknowledged (the oldest of equals) is taken to
    /// be that frame and throws ``ChorusError/messageTooLarge(size:limit:)`` instead of going
    /// back to the queue. A subscribe or request over the limit is not recognised this way.
    private func rejectTooBig() {
        let sent = publishes.filter { $0.value.requestId != nil }.sorted { $0.key < $1.key }
        let size = { (publish: QueuedPublish) in publish.head.utf8.count + publish.data.utf8.count }
        guard let largest = sent.max(by: { size($0.value) < size($1.value) || (size($0.value) == size($1.value) && $0.key > $1.key) }),
            let publish = publishes.removeValue(forKey: largest.key)
        else { return }
        if let id = publish.requestId, case .publish(_, let timer)? = awaited.removeValue(forKey: id) { timer?.cancel() }
        publish.continuation.resume(throwing: ChorusError.messageTooLarge(
            size: size(publish), limit: maxMessageSize ?? Self.defaultMaxMessageSize))
    }

    /// The connection ended: replies still awaited fail (publishes stay queued, subscriptions
    /// are sent again on the next connection).
    private func lostConnection(failingWith error: ChorusError) {
        authenticated = false
        maxMessageSize = nil
        tokenExpired = false
        renewal?.cancel()
        renewal = nil
        resume(.freshToken, with: nil)
        let pending = awaited
        awaited = [:]
        for entry in pending.values {
            switch entry {
            case .request(let continuation, let timer):
                timer?.cancel()
                continuation.resume(throwing: error)
            case .publish(let key, let timer):
                timer?.cancel()
                publishes[key]?.requestId = nil
                publishes[key]?.rateRetries = 0
            case .subscribe(_, _, _, let timer), .catchUp(_, _, _, let timer):
                timer?.cancel()
            case .auth, .fence:
                break
            }
        }
        for topic in topics.keys {
            if topics[topic]?.confirmed == true {
                topics[topic]?.missedPresence = true
                topics[topic]?.reconnecting = true
            }
            topics[topic]?.confirmed = false
            topics[topic]?.inFlight = false
            topics[topic]?.awaitingPage = false
            topics[topic]?.retries = 0
            topics[topic]?.retry?.cancel()
            topics[topic]?.retry = nil
            // The next connection subscribes afresh with what the topic wants then.
            topics[topic]?.resendWhenAnswered = false
            topics[topic]?.resendWhenAuthenticated = false
            topics[topic]?.leaveFirst = false
        }
        for entry in typing.values { entry.stopTimer?.cancel() }
        typing = [:]
    }

    /// The connection authenticated: subscribe everything again, from the last positions,
    /// then send the queued publishes in order.
    private func didAuthenticate(as user: String, on connection: WebSocketConnection) {
        authenticated = true
        userId = user
        policy.connected(at: .now)
        sendWaiting(on: connection)
        setState(.connected(userId: user))
    }

    /// Sends the subscribes and publishes that wait for a usable connection, in order.
    private func sendWaiting(on connection: WebSocketConnection) {
        for (topic, state) in topics.sorted(by: { $0.key < $1.key })
        where (!state.confirmed || state.resendWhenAuthenticated) && !state.inFlight {
            sendSubscribe(topic, on: connection)
        }
        for (key, publish) in publishes.sorted(by: { $0.key < $1.key }) where publish.requestId == nil {
            sendPublish(key, on: connection)
        }
    }

    // MARK: What the node sends

    /// Handles one message of the node; a ``ConnectionEnding`` when the connection must end.
    private func receive(_ text: String, on connection: WebSocketConnection) -> ConnectionEnding? {
        guard let fields = (try? JSONValue(parsing: text))?.objectValue, let type = fields["type"]?.stringValue else {
            emit(.error(.protocolViolation(String(text.prefix(200)))))
            return nil
        }
        let id = fields["id"]?.intValue
        switch type {
        case "message":
            deliver(fields, text: text)
        case "presence":
            deliverPresence(PresenceEvent.events(in: fields))
        case "typing":
            if let event = TypingEvent(fields), event.userId != userId {
                forEachHandle(covering: event.topic) { $0.typing.yield(event) }
            }
        case "auth_success":
            let user = fields["userId"]?.stringValue ?? ""
            if !authenticated {
                // The node's limit (older nodes do not say: their default). The configuration's
                // may lower an announced one (a proxy's), and replaces the default.
                let announced = fields["maxMessageSize"]?.intValue.flatMap { $0 > 0 ? $0 : nil }
                if let own = configuration.maxMessageSize, own > 0 {
                    maxMessageSize = min(own, announced ?? own)
                } else {
                    maxMessageSize = announced ?? Self.defaultMaxMessageSize
                }
                didAuthenticate(as: user, on: connection)
                scheduleRenewal(fields["expiresIn"]?.intValue, on: connection)
            } else if let id, case .auth? = awaited.removeValue(forKey: id) {
                userId = user
                let wasExpired = tokenExpired
                tokenExpired = false
                resume(.freshToken, with: nil)
                emit(.reauthenticated(userId: user))
                if wasExpired {
                    sendWaiting(on: connection)
                    catchUp(on: connection)
                }
                scheduleRenewal(fields["expiresIn"]?.intValue, on: connection)
            }
        case "auth_error":
            let code = fields["code"]?.intValue ?? 401
            let message = fields["message"]?.stringValue ?? "token refused"
            if let id, code == 401, case .auth(ahead: true)? = awaited[id] {
                // A token asked for ahead of the expiry was refused: the connection goes on with
                // the one it has (the `auth_expired` path renews, or fails, at the expiry). A
                // token of another user (409) ends it, as before: it is not this user's any more.
                awaited[id] = nil
                emit(.error(.authenticationFailed(code: code, message: message)))
                return nil
            }
            if let id { awaited[id] = nil }
            return .authRefused(code: code, message: message)
        case "gap":
            // Sent once the Redis link is live again: reloading now misses nothing after it.
            emit(.gap(topic: fields["topic"]?.stringValue))
        case "auth_expired":
            tokenExpired = true
            emit(.tokenExpired)
            if tokenProvider != nil { Task { await self.refreshAuthentication(on: connection) } }
        case "subscribed":
            switch id.flatMap({ awaited[$0] }) {
            case .subscribe(let topic, let since, let replay, let timer)?:
                awaited[id!] = nil
                timer?.cancel()
                subscribed(topic, since: since, replay: replay, fields)
            case .catchUp(let topic, let since, _, let timer)?:
                awaited[id!] = nil
                timer?.cancel()
                subscribed(topic, since: since, replay: nil, fields)
            default:
                break
            }
        case "published":
            if let id, case .publish(let key, let timer)? = awaited.removeValue(forKey: id) {
                timer?.cancel()
                if let publish = publishes.removeValue(forKey: key) {
                    publish.continuation.resume(returning: PublishReceipt(
                        topic: publish.topic, messageId: fields["messageId"]?.stringValue ?? publish.messageId,
                        position: StreamPosition(fields), duplicate: fields["duplicate"]?.boolValue ?? false,
                        acknowledged: true))
                }
            }
        case "error":
            let error = ChorusError.server(
                code: fields["code"]?.intValue ?? 0, message: fields["message"]?.stringValue ?? "",
                details: fields["details"])
            if let id, let entry = awaited.removeValue(forKey: id) {
                failed(entry, with: error)
            } else if let topic = fields["details"]?["topic"]?.stringValue, fields["details"]?["subscriptionEnded"] == .bool(true),
                topics[topic] != nil
            {
                // The node ended it (a new token's grants do not cover it); other errors naming
                // a topic (a typing there refused) leave the subscription as it is.
                endTopic(topic, with: error)
            } else {
                emit(.error(error))
            }
        default:
            // Replies to requests (pong, presence.state, read_recorded, ...) by id.
            switch id.flatMap({ awaited.removeValue(forKey: $0) }) {
            case .request(let continuation, let timer)?:
                timer?.cancel()
                continuation.resume(returning: fields)
            case .fence(let publishId)?:
                // The publish was not refused: done, unacknowledged.
                if case .publish(let key, let timer)? = awaited.removeValue(forKey: publishId) {
                    timer?.cancel()
                    if let publish = publishes.removeValue(forKey: key) {
                        publish.continuation.resume(returning: PublishReceipt(
                            topic: publish.topic, messageId: publish.messageId, position: nil, duplicate: false,
                            acknowledged: false))
                    }
                }
            default:
                break
            }
        }
        return nil
    }

    private func failed(_ entry: Awaited, with error: ChorusError) {
        if case .server(code: 401, _, _) = error, authenticated, sendAfterRenewal(entry) { return }
        switch entry {
        case .request(let continuation, let timer):
            timer?.cancel()
            continuation.resume(throwing: error)
        case .publish(let key, let timer):
            timer?.cancel()
            if var publish = publishes[key], publish.rateRetries < Self.rateRetries, let connection,
                let delay = rateRetryDelay(error, attempt: publish.rateRetries + 1)
            {
                // Dropped past the node's message rate: sent again (same messageId) after the
                // delay it named, paced (``rateRetryDelay(_:attempt:atLeast:)``).
                publish.rateRetries += 1
                publish.requestId = nil
                publishes[key] = publish
                Task {
                    try? await Task.sleep(for: delay)
                    self.resendPublish(key, on: connection)
                }
                return
            }
            publishes.removeValue(forKey: key)?.continuation.resume(throwing: error)
        case .subscribe(let topic, _, _, let timer):
            timer?.cancel()
            // A resubscription over the subscription limit (429) may find room later on this
            // connection; a 409 means a history read of the topic still runs (a subscribe sent
            // again after a timeout); a subscribe dropped past the message rate (429 with
            // `retryAfter`) goes again after that. A first subscribe's limit 429 is the caller's.
            if case .server(code: let code, _, _) = error,
                code == 409 || (code == 429 && topics[topic]?.everConfirmed == true) || Self.retryAfter(of: error) != nil
            {
                retrySubscribe(topic, after: error)
            } else {
                endTopic(topic, with: error)
            }
        case .catchUp(let topic, let since, let attempt, let timer):
            timer?.cancel()
            if attempt < Self.rateRetries, let connection, topics[topic] != nil, let delay = rateRetryDelay(error, attempt: attempt + 1) {
                // Dropped past the node's message rate (many topics caught up at once): sent
                // again after the delay it named; the topic's live messages wait meanwhile. Kept
                // as the topic's retry, which its end (or the connection's) cancels.
                topics[topic]?.retry = Task {
                    do { try await Task.sleep(for: delay) } catch { return }
                    guard self.connection === connection, self.topics[topic]?.confirmed == true else { return }
                    self.topics[topic]?.retry = nil
                    // The token expired again meanwhile: the catch-up after that renewal asks.
                    guard self.canSend else { return self.catchUpFailed(topic, since: since) }
                    self.sendCatchUp(topic, since: since, attempt: attempt + 1, on: connection)
                }
                return
            }
            catchUpFailed(topic, since: since)
        case .auth:
            emit(.error(error))
        case .fence:
            break
        }
    }

    /// A publish or subscribe the node refused with 401 on an authenticated connection: it
    /// crossed the token's expiry (the node said `auth_expired` just before). Sent again once
    /// a fresh token is accepted (``sendWaiting(on:)``), at once if one already is: the guide
    /// promises that requests wait for the renewal; a catch-up likewise. False for other
    /// requests (``request(_:)`` sends those again itself).
    private func sendAfterRenewal(_ entry: Awaited) -> Bool {
        switch entry {
        case .publish(let key, let timer):
            timer?.cancel()
            publishes[key]?.requestId = nil
            if let connection { resendPublish(key, on: connection) }
            return true
        case .subscribe(let topic, _, _, let timer):
            timer?.cancel()
            topics[topic]?.inFlight = false
            subscribeAgain(topic)
            return true
        case .catchUp(let topic, let since, let attempt, let timer):
            // The fresh token expired too before the node read the catch-up. Nothing was
            // delivered meanwhile, so the catch-up after the next renewal (``catchUp(on:)``)
            // asks from the same position; at once if that renewal is done already.
            timer?.cancel()
            topics[topic]?.inFlight = false
            topics[topic]?.awaitingPage = false
            if canSend, let connection, topics[topic]?.confirmed == true {
                sendCatchUp(topic, since: since, attempt: attempt, on: connection)
            }
            return true
        case .request, .auth, .fence:
            return false
        }
    }

    private func deliver(_ fields: [String: JSONValue], text: String) {
        let data = RawJSON.member("data", in: text).map(String.init) ?? "null"
        guard fields["topic"] != nil else { return deliverToUser(ChorusMessage(addressedToUser: fields, data: data)) }
        guard let message = try? ChorusMessage(fields, data: data) else { return }
        var overflowed: [(topic: String, handleId: Int)] = []
        for pattern in topics.keys.filter({ TopicFilter.matches($0, message.topic) }) {
            if message.position != nil, pattern == message.topic, topics[pattern]?.awaitingPage == true { continue }
            if let position = message.position, topics[pattern]?.positions.advance(message.topic, to: position) == false { continue }
            if message.position == nil, let id = message.messageId,
                topics[pattern]?.recentIds.insert(id, on: message.topic) == false
            {
                continue
            }
            for (handleId, handle) in topics[pattern]?.handles ?? [:] {
                if case .dropped = handle.messages.yield(message) { overflowed.append((pattern, handleId)) }
            }
        }
        for (topic, handleId) in overflowed {
            emit(.subscriptionEnded(topic: topic, error: .bufferOverflow(limit: configuration.messageBufferLimit)))
            removeHandle(handleId, of: topic)
        }
    }

    /// A message the application addressed to this user (no topic): to every watcher of
    /// ``ChorusClient/userMessages()``; a watcher that fell `messageBufferLimit` behind is
    /// finished, as a subscription would be.
    private func deliverToUser(_ message: ChorusMessage) {
        for (id, watcher) in userMessageWatchers {
            if case .dropped = watcher.yield(message) {
                userMessageWatchers[id] = nil
                watcher.finish()
                emit(.error(.bufferOverflow(limit: configuration.messageBufferLimit)))
            }
        }
    }

    /// Presence events to every subscriber of their topics that asked for them. A subscriber
    /// whose buffer was full (a join storm in one batch, a slow consumer) lost the oldest: it
    /// hears `resync` for those topics after the batch, the node's own signal to read the list again.
    private func deliverPresence(_ events: [PresenceEvent]) {
        var lost: [String: (handle: Handle, topics: Set<String>)] = [:]
        for event in events {
            for (pattern, state) in topics where state.presenceEvents && TopicFilter.matches(pattern, event.topic) {
                for (handleId, handle) in state.handles {
                    guard case .dropped = handle.presence.yield(event) else { continue }
                    lost["\(handleId) \(pattern)", default: (handle, [])].topics.insert(event.topic)
                }
            }
        }
        for (handle, topics) in lost.values {
            for topic in topics.sorted() {
                handle.presence.yield(PresenceEvent(topic: topic, kind: .resync, member: nil, timestamp: PresenceEvent.now()))
            }
        }
    }

    private func forEachHandle(covering topic: String, _ body: (Handle) -> Void) {
        for (pattern, state) in topics where TopicFilter.matches(pattern, topic) {
            for handle in state.handles.values { body(handle) }
        }
    }

    private func subscribed(_ topic: String, since: StreamPosition?, replay: Int?, _ fields: [String: JSONValue]) {
        guard var state = topics[topic] else { return }
        // The first confirmation on a new connection is the reconnect's, even after a retry
        // (409, 429); later ones on this connection are not.
        let resubscribed = state.reconnecting
        state.reconnecting = false
        let missedPresence = state.missedPresence && state.presenceEvents
        state.missedPresence = false
        let recovered = fields["recovered"]?.boolValue
        let position = StreamPosition(fields)
        state.confirmed = true
        state.inFlight = false
        state.awaitingPage = false
        state.everConfirmed = true
        state.retries = 0
        state.replay = nil
        state.since = nil
        let resend = state.resendWhenAnswered
        state.resendWhenAnswered = false
        let waiters = resend ? [:] : state.waiters
        if !resend { state.waiters = [:] }
        if let position {
            let asked: StreamPositions.Asked = since.map { .since($0, recovered: recovered ?? false) } ?? replay.map { .replay($0) } ?? .live
            state.positions.subscribed(topic, at: position, asked: asked)
        }
        topics[topic] = state
        for waiter in waiters.values { waiter.resume() }
        if missedPresence {
            // Events sent while the client was away are lost: the same signal as the node's.
            let resync = PresenceEvent(topic: topic, kind: .resync, member: nil, timestamp: PresenceEvent.now())
            for handle in state.handles.values { handle.presence.yield(resync) }
        }
        emit(.subscribed(topic: topic, resubscribed: resubscribed, recovered: since == nil ? nil : recovered, position: position))
        if let since, recovered == false { emit(.recoveryFailed(topic: topic, since: since)) }
        if resend { subscribeAgain(topic) }
    }

    /// After a token renewed late (past `auth_expired`): the node delivered nothing in between.
    /// Each confirmed subscription of a topic with a position asks for what came after it (a
    /// `subscribe` with `since`, without presence fields: the membership stays as it is); what
    /// the node no longer has is a ``ClientEvent/recoveryFailed(topic:since:)``, as after a
    /// reconnect. Its live messages wait meanwhile (`awaitingPage`): the node sends them after
    /// the page.
    private func catchUp(on connection: WebSocketConnection) {
        for (topic, state) in topics.sorted(by: { $0.key < $1.key })
        where state.confirmed && !state.inFlight && !TopicFilter.isPattern(topic) {
            guard let position = state.positions[topic] else { continue }
            sendCatchUp(topic, since: position, attempt: 0, on: connection)
        }
    }

    private func sendCatchUp(_ topic: String, since position: StreamPosition, attempt: Int, on connection: WebSocketConnection) {
        let id = newId()
        topics[topic]?.inFlight = true
        topics[topic]?.awaitingPage = true
        awaited[id] = .catchUp(topic: topic, since: position, attempt: attempt, timer: timer(for: id))
        let since: JSONValue = ["offset": .integer(Int64(position.offset)), "epoch": .string(position.epoch)]
        send(["type": "subscribe", "topic": .string(topic), "since": since, "id": .integer(Int64(id))], on: connection)
    }

    /// A catch-up the node refused or left unanswered: what was published during the expiry
    /// will not come, which the application hears as ``ClientEvent/recoveryFailed(topic:since:)``;
    /// the subscription goes on live. Never ends the subscription: it was fine before.
    private func catchUpFailed(_ topic: String, since: StreamPosition) {
        guard var state = topics[topic] else { return }
        state.inFlight = false
        state.awaitingPage = false
        let resend = state.resendWhenAnswered
        state.resendWhenAnswered = false
        topics[topic] = state
        emit(.recoveryFailed(topic: topic, since: since))
        if resend { subscribeAgain(topic) }
    }

    /// The node refused or ended a subscription: every subscriber of it ends.
    private func endTopic(_ topic: String, with error: ChorusError) {
        guard let state = topics.removeValue(forKey: topic) else { return }
        state.retry?.cancel()
        dropAwaitedSubscribes(of: topic)
        for waiter in state.waiters.values { waiter.resume(throwing: error) }
        for handle in state.handles.values { handle.finish() }
        if state.everConfirmed { emit(.subscriptionEnded(topic: topic, error: error)) }
    }

    /// Asks the provider for a fresh token ``ChorusClient/Configuration/renewBefore`` before
    /// the one just accepted expires (`expiresIn`, milliseconds), so that the node never pauses
    /// delivery: the messages of that pause would not reach this connection.
    private func scheduleRenewal(_ expiresIn: Int?, on connection: WebSocketConnection) {
        renewal?.cancel()
        renewal = nil
        guard let expiresIn, tokenProvider != nil, let ahead = configuration.renewBefore, ahead > .zero else {
            tokenExpiresAt = nil
            return
        }
        let left = Duration.milliseconds(expiresIn)
        tokenExpiresAt = .now + left
        renew(after: left - min(ahead, left / 2), on: connection)
    }

    private func renew(after delay: Duration, on connection: WebSocketConnection) {
        renewal = Task {
            do { try await Task.sleep(for: delay) } catch { return }
            await self.renewAhead(on: connection)
        }
    }

    private func renewAhead(on connection: WebSocketConnection) async {
        guard let tokenProvider, self.connection === connection, canSend else { return }
        let current = token
        var fresh: String?
        do {
            fresh = try await tokenProvider()
        } catch {
            emit(.error(.tokenUnavailable(message: "\(error)")))
        }
        // Closed meanwhile (the next connection asks anyway), expired meanwhile (the
        // `auth_expired` path renews), or a `setToken(_:)` re-authenticated with its own token.
        guard self.connection === connection, canSend, token == current else { return }
        guard let fresh, fresh != current else {
            // The provider failed, or handed back the token in use (a cache that renews later):
            // asked again at half the time left, until 2 s before; then `auth_expired` renews.
            if let expiresAt = tokenExpiresAt, expiresAt - .now >= .seconds(2) {
                renew(after: (expiresAt - .now) / 2, on: connection)
            }
            return
        }
        token = fresh
        sendAuth(fresh, ahead: true, on: connection)
    }

    /// Authenticates again on the open `connection` with `token`.
    private func sendAuth(_ token: String, ahead: Bool, on connection: WebSocketConnection) {
        let id = newId()
        awaited[id] = .auth(ahead: ahead)
        send(["type": "auth", "token": .string(token), "id": .integer(Int64(id))], on: connection)
    }

    /// After `auth_expired`: a fresh token from the provider, sent on the open `connection`.
    /// A provider that fails is asked again after the reconnect backoff's delays (without
    /// jitter) while the connection waits for a token, so delivery resumes once it answers,
    /// not only at the node's 4001 close (`JWT_RENEWAL_GRACE`) and the reconnect after it.
    private func refreshAuthentication(on connection: WebSocketConnection, attempt: Int = 0) async {
        // Not when a `setToken(_:)` re-authenticated meanwhile, or the connection ended.
        guard let tokenProvider, self.connection === connection, tokenExpired else { return }
        do {
            let fresh = try await tokenProvider()
            token = fresh
            guard self.connection === connection, authenticated else { return }
            sendAuth(fresh, ahead: false, on: connection)
        } catch is CancellationError {
            return  // a renewal of its own, or the connection's end, took over
        } catch {
            emit(.error(.tokenUnavailable(message: "\(error)")))
            guard self.connection === connection, tokenExpired else { return }
            let delay = policy.delay(attempt: attempt, random: 1)
            renewal?.cancel()
            renewal = Task {
                do { try await Task.sleep(for: delay) } catch { return }
                await self.refreshAuthentication(on: connection, attempt: attempt + 1)
            }
        }
    }

    // MARK: Requests

    /// Sends `fields`, unless the frame is over the connection's limit: then nothing is sent
    /// (the node would close the connection with 1009, and again after each reconnect) and the
    /// error is returned.
    @discardableResult
    private func send(_ fields: [String: JSONValue], on connection: WebSocketConnection) -> ChorusError? {
        let text = JSONValue.object(fields).jsonText
        if let error = oversize(text) { return error }
        connection.send(text)
        return nil
    }

    /// ``ChorusError/messageTooLarge(size:limit:)`` when `text` is over the connection's limit.
    private func oversize(_ text: String) -> ChorusError? {
        guard let limit = maxMessageSize, text.utf8.count > limit else { return nil }
        return .messageTooLarge(size: text.utf8.count, limit: limit)
    }

    /// Sends `fields` with a new request id and returns the reply; throws the node's `error`,
    /// ``ChorusError/timeout`` or ``ChorusError/disconnected``.
    private func request(
        _ fields: [String: JSONValue], on connection: WebSocketConnection, needsToken: Bool = true
    ) async throws -> [String: JSONValue] {
        guard self.connection === connection, needsToken ? canSend : authenticated else { throw ChorusError.disconnected }
        let id = newId()
        var fields = fields
        fields["id"] = .integer(Int64(id))
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                guard !Task.isCancelled else {
                    continuation.resume(throwing: CancellationError())
                    return
                }
                if let error = send(fields, on: connection) { return continuation.resume(throwing: error) }
                awaited[id] = .request(continuation, timer: timer(for: id))
            }
        } onCancel: {
            Task { await self.abandon(id, with: CancellationError()) }
        }
    }

    /// A request on the current connection, waiting for it first when the client is connecting.
    /// The guide's promise: a request made while the token is renewed waits for the fresh one,
    /// and so does one the node refused (401) because it crossed the token's expiry.
    func request(_ fields: [String: JSONValue]) async throws -> [String: JSONValue] {
        try await connect()
        var expiries = 0
        while true {
            while tokenExpired { try await park(until: .freshToken) }
            guard let connection, canSend else {
                // The connection ended meanwhile: wait for the next one, unless the client stopped.
                if case .failed(let error) = state { throw error }
                guard runner != nil else { throw ChorusError.disconnected }
                try await park(until: .connected)
                continue
            }
            do {
                return try await request(fields, on: connection)
            } catch ChorusError.server(code: 401, _, _) where expiries < 2 {
                expiries += 1
            }
        }
    }

    private func timer(for id: Int) -> Task<Void, Never> {
        let timeout = configuration.requestTimeout
        return Task {
            do { try await Task.sleep(for: timeout) } catch { return }
            self.abandon(id, with: ChorusError.timeout)
        }
    }

    /// Stops waiting for request `id`'s reply (timeout or cancellation); a subscribe that timed
    /// out is sent again (``retrySubscribe(_:after:)``).
    private func abandon(_ id: Int, with error: any Error) {
        guard let entry = awaited.removeValue(forKey: id) else { return }
        switch entry {
        case .request(let continuation, let timer):
            timer?.cancel()
            continuation.resume(throwing: error)
        case .publish(let key, let timer):
            timer?.cancel()
            if case .timeout? = error as? ChorusError {
                awaited[id] = .publish(key: key, timer: nil)  // a late reply still settles it
                return publishTimedOut(id, key: key)
            }
            publishes.removeValue(forKey: key)?.continuation.resume(throwing: error)
        case .subscribe(let topic, _, _, _):
            // Only its timer abandons a subscribe (a subscriber's cancellation does not).
            retrySubscribe(topic, after: .timeout)
        case .catchUp(let topic, let since, _, _):
            catchUpFailed(topic, since: since)
        case .auth, .fence:
            awaited[id] = entry
        }
    }

    /// How many times a subscribe is sent again on one connection before its topic ends.
    static let subscribeRetries = 5
    /// How many times a publish the node dropped past its message rate is sent again.
    static let rateRetries = 4

    /// The wait a refusal names when the node dropped a request past its message rate (429
    /// with `details.retryAfter`, in ms); nil for any other error.
    static func retryAfter(of error: ChorusError) -> Duration? {
        guard case .server(code: 429, _, let details) = error, let milliseconds = details?["retryAfter"]?.intValue else { return nil }
        return .milliseconds(milliseconds)
    }

    /// How long to wait before sending again the `attempt`-th time a request the node dropped
    /// past its message rate (`error`): the wait it named, doubled per attempt and jittered (x1
    /// to x2), and no sooner than the slot after the last request sent again, spaced to two
    /// thirds of the node's `details.limit` a second. So a burst (a reconnect resubscribing
    /// hundreds of topics) drains instead of being dropped again until the node closes the
    /// connection for flooding. Nil when `error` is no rate refusal.
    private func rateRetryDelay(_ error: ChorusError, attempt: Int, atLeast floor: Duration = .zero) -> Duration? {
        guard let wait = Self.retryAfter(of: error), case .server(_, _, let details) = error else { return nil }
        let now = ContinuousClock.now
        let at = max(now + max(floor, wait * (1 << (max(1, attempt) - 1)) * Double.random(in: 1...2)), rateNext)
        if let limit = details?["limit"]?.intValue, limit > 0 { rateNext = at + .milliseconds(1500 / limit) } else { rateNext = at }
        return at - now
    }

    private func resendPublish(_ key: Int, on connection: WebSocketConnection) {
        guard self.connection === connection, canSend, publishes[key]?.requestId == nil else { return }
        sendPublish(key, on: connection)
    }

    /// A subscribe left unanswered for ``ClientConfiguration/requestTimeout`` (the node drops
    /// messages past `WEBSOCKET_MAX_MESSAGES_PER_SECOND` unanswered, e.g. a resubscription of
    /// many topics at once), or refused for now (``failed(_:with:)``): sent again on the same
    /// connection after the reconnect backoff's delays (without jitter), at most
    /// ``subscribeRetries`` times; then the topic ends with `error`.
    private func retrySubscribe(_ topic: String, after error: ChorusError) {
        guard var state = topics[topic] else { return }
        state.inFlight = false
        guard state.retries < Self.subscribeRetries, let connection else {
            topics[topic] = state
            endTopic(topic, with: error)
            // An earlier attempt may still succeed on the node (a slow history read): undone.
            if authenticated, let connection { send(["type": "unsubscribe", "topic": .string(topic)], on: connection) }
            return
        }
        state.retries += 1
        let backoff = min(configuration.maximumReconnectDelay, configuration.minimumReconnectDelay * (1 << (state.retries - 1)))
        // After a rate refusal: not before the wait it names, paced with the other requests
        // sent again.
        let delay = rateRetryDelay(error, attempt: 1, atLeast: backoff) ?? backoff
        state.retry = Task {
            do { try await Task.sleep(for: delay) } catch { return }
            // Cancelled by a newer subscribe after the sleep ended but before this ran.
            guard !Task.isCancelled else { return }
            self.resendSubscribe(topic, on: connection)
        }
        topics[topic] = state
    }

    /// A retry's subscribe. Not only for a topic still unconfirmed: a join (or new presence
    /// data) of a live topic refused past the rate must go again too, or its caller waits for
    /// ever. A subscribe sent since then cancelled this retry (``sendSubscribe(_:on:)``).
    private func resendSubscribe(_ topic: String, on connection: WebSocketConnection) {
        guard self.connection === connection, canSend, let state = topics[topic], !state.inFlight else { return }
        sendSubscribe(topic, on: connection)
    }

    // MARK: Subscriptions

    /// Adds a subscriber of `topic` and waits until the node has confirmed the subscription
    /// (at once when it already has); throws the node's refusal.
    func subscribe(
        _ topic: String, handleId: Int, messages: AsyncStream<ChorusMessage>.Continuation,
        presence: AsyncStream<PresenceEvent>.Continuation, typing: AsyncStream<TypingEvent>.Continuation,
        replay: Int?, since: StreamPosition?, presenceData: JSONValue?, presenceEvents: Bool
    ) async throws {
        if case .failed(let error) = state { throw error }
        if runner == nil, case .disconnected = state { start() }
        var state = topics[topic] ?? TopicState()
        let isNew = topics[topic] == nil
        state.handles[handleId] = Handle(messages: messages, presence: presence, typing: typing, joinedWith: presenceData)
        var changed = isNew
        if let presenceData, presenceData != state.presence {
            state.presence = presenceData
            changed = true
        }
        if presenceEvents, !state.presenceEvents {
            state.presenceEvents = true
            changed = true
        }
        if isNew {
            state.replay = replay
            state.since = since
        } else if let since, let position = state.positions[topic],
            since.epoch != position.epoch || since.offset < position.offset
        {
            // The topic is live for another subscriber of this client: this one starts live,
            // and what came between `since` and the topic's position is not replayed to it.
            emit(.recoveryFailed(topic: topic, since: since))
        }
        topics[topic] = state
        if state.confirmed, !changed { return }
        // A join whose data is over the size limit ends the topic: this caller hears why.
        if changed, let error = subscribeAgain(topic) { throw error }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                if Task.isCancelled || topics[topic]?.handles[handleId] == nil {
                    continuation.resume(throwing: Task.isCancelled ? CancellationError() : ChorusError.closed)
                } else if topics[topic]?.confirmed == true, !changed {
                    continuation.resume()
                } else {
                    topics[topic]?.waiters[handleId] = continuation
                }
            }
        } onCancel: {
            Task { await self.removeHandle(handleId, of: topic) }
        }
    }

    /// Sends `topic`'s subscribe as it stands now, once the one in flight is answered, or once
    /// a fresh token is accepted. Not connected, nothing is sent: the next connection
    /// subscribes everything afresh.
    /// The size limit's error when the subscribe was over it (the topic has ended).
    @discardableResult
    private func subscribeAgain(_ topic: String) -> ChorusError? {
        guard var state = topics[topic], authenticated, let connection else { return nil }
        if state.inFlight {
            state.resendWhenAnswered = true
        } else if !canSend {
            state.resendWhenAuthenticated = true
        } else {
            return sendSubscribe(topic, on: connection)
        }
        topics[topic] = state
        return nil
    }

    /// Returns the size limit's error when the subscribe was over it: the topic has ended, and a
    /// node that held it live is told to let it go.
    @discardableResult
    private func sendSubscribe(_ topic: String, on connection: WebSocketConnection) -> ChorusError? {
        guard var state = topics[topic] else { return nil }
        if state.leaveFirst {
            // Answered by `unsubscribed`, which nothing waits for; the subscribe follows in order.
            send(["type": "unsubscribe", "topic": .string(topic)], on: connection)
            state.leaveFirst = false
        }
        let id = newId()
        var fields: [String: JSONValue] = ["type": "subscribe", "topic": .string(topic), "id": .integer(Int64(id))]
        var since = state.since
        if state.everConfirmed, !TopicFilter.isPattern(topic), let position = state.positions[topic] { since = position }
        if let since { fields["since"] = ["offset": .integer(Int64(since.offset)), "epoch": .string(since.epoch)] }
        let replay = since == nil ? state.replay : nil
        if let replay { fields["replay"] = .integer(Int64(replay)) }
        if let presence = state.presence { fields["presence"] = ["data": presence] }
        if state.presenceEvents { fields["presenceEvents"] = true }
        if let error = oversize(JSONValue.object(fields).jsonText) {
            // Presence data over the limit: this subscription ends (its subscribers throw).
            if state.confirmed { send(["type": "unsubscribe", "topic": .string(topic)], on: connection) }
            topics[topic] = state
            endTopic(topic, with: error)
            return error
        }
        state.inFlight = true
        state.resendWhenAuthenticated = false
        state.awaitingPage = since != nil || replay != nil
        state.retry?.cancel()
        state.retry = nil
        topics[topic] = state
        awaited[id] = .subscribe(topic: topic, since: since, replay: replay, timer: timer(for: id))
        send(fields, on: connection)
        return nil
    }

    /// Forgets the subscribes of `topic` still waiting for a reply (their timers too): a later
    /// subscription of the topic must not take their answer, or their timeout, for its own.
    private func dropAwaitedSubscribes(of topic: String) {
        awaited = awaited.filter { _, entry in
            switch entry {
            case .subscribe(topic, _, _, let timer), .catchUp(topic, _, _, let timer):
                timer?.cancel()
                return false
            default:
                return true
            }
        }
    }

    /// One subscriber is gone (cancelled, released or ended): its sequences finish, and the
    /// node is told to unsubscribe once the topic has no subscriber left.
    func removeHandle(_ handleId: Int, of topic: String) {
        guard var state = topics[topic] else { return }
        state.waiters.removeValue(forKey: handleId)?.resume(throwing: CancellationError())
        guard let handle = state.handles.removeValue(forKey: handleId) else {
            topics[topic] = state
            return
        }
        handle.finish()
        guard state.handles.isEmpty else {
            // The member's data is the newest join's still here: when that one ends, an earlier
            // one's data goes back to the node (an `update`); none left, the membership ends.
            let newest = state.handles.filter { $0.value.joined }.max { $0.key < $1.key }?.value.joinedWith
            let lastJoinEnded = handle.joined && newest == nil
            let dataChanged = handle.joined && newest != state.presence
            if dataChanged { state.presence = newest }
            if lastJoinEnded, state.confirmed || state.inFlight {
                // Unsubscribed and subscribed again: presence events between are missed.
                state.leaveFirst = true
                state.missedPresence = true
            }
            topics[topic] = state
            if dataChanged { subscribeAgain(topic) }
            return
        }
        topics[topic] = nil
        state.retry?.cancel()
        // A node that cancels a history read for the unsubscribe never answers its subscribe.
        dropAwaitedSubscribes(of: topic)
        if authenticated, let connection {
            send(["type": "unsubscribe", "topic": .string(topic)], on: connection)
        }
    }

    // MARK: Publishing

    /// Queues and sends a publish: `head` is the `message` object's text without `id` and
    /// `data`, `data` the data's JSON text (both encoded by the caller, which reports what
    /// cannot be encoded).
    func publish(head: String, data: String, topic: String, messageId: String) async throws -> PublishReceipt {
        if runner == nil, case .disconnected = state { start() }
        if case .failed(let error) = state { throw error }
        guard publishes.count < configuration.offlineQueueLimit else {
            throw ChorusError.queueFull(limit: configuration.offlineQueueLimit)
        }
        let key = newId()
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                guard !Task.isCancelled else {
                    continuation.resume(throwing: CancellationError())
                    return
                }
                publishes[key] = QueuedPublish(
                    head: head, data: data, topic: topic, messageId: messageId, continuation: continuation, requestId: nil)
                if canSend, let connection { sendPublish(key, on: connection) }
            }
        } onCancel: {
            Task { await self.cancelPublish(key) }
        }
    }

    private func sendPublish(_ key: Int, on connection: WebSocketConnection) {
        guard var publish = publishes[key] else { return }
        let id = newId()
        // The request id and `data` (as the app encoded it) spliced into the object's text.
        let text = "\(publish.head.dropLast()),\"id\":\(id),\"data\":\(publish.data)}"
        if let error = oversize(text) {
            // Checked as it goes out (the limit is the connection's): thrown, never sent again;
            // the publishes behind it go on.
            publishes[key] = nil
            return publish.continuation.resume(throwing: error)
        }
        publish.requestId = id
        publishes[key] = publish
        awaited[id] = .publish(key: key, timer: timer(for: id))
        connection.send(text)
        if !configuration.publishAcknowledgements {
            // No `published` reply will come: a `ping` behind it tells a refusal from success.
            let fence = newId()
            awaited[fence] = .fence(publishId: id)
            send(["type": "ping", "id": .integer(Int64(fence))], on: connection)
        }
    }

    /// A cancelled publish leaves the queue (if it was sent, the node may still deliver it).
    private func cancelPublish(_ key: Int) {
        guard let publish = publishes.removeValue(forKey: key) else { return }
        if let id = publish.requestId, case .publish(_, let timer)? = awaited.removeValue(forKey: id) { timer?.cancel() }
        publish.continuation.resume(throwing: CancellationError())
    }

    var queuedPublishes: Int { publishes.count }

    // MARK: Typing

    /// Sends `start` unless one went out within the throttle, and (re)arms the automatic `stop`.
    func typing(_ topic: String) {
        guard authenticated, let connection else { return }
        let now = ContinuousClock.now
        var entry = typing[topic]
        if entry == nil || entry!.lastStart.duration(to: now) >= configuration.typingThrottle {
            send(["type": "typing", "topic": .string(topic), "state": "start"], on: connection)
            entry = Typing(lastStart: now, stopTimer: entry?.stopTimer)
        }
        entry!.stopTimer?.cancel()
        let timeout = configuration.typingTimeout
        entry!.stopTimer = Task {
            do { try await Task.sleep(for: timeout) } catch { return }
            self.stopTyping(topic)
        }
        typing[topic] = entry
    }

    func stopTyping(_ topic: String) {
        guard let entry = typing.removeValue(forKey: topic) else { return }
        entry.stopTimer?.cancel()
        guard authenticated, let connection else { return }
        send(["type": "typing", "topic": .string(topic), "state": "stop"], on: connection)
    }
}
