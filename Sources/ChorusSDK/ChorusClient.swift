import Foundation
import Synchronization

/// A connection to Chorus for applications: subscribe, publish, presence and typing, with
/// reconnection, recovery and token refresh handled for you.
///
/// ```swift
/// let client = try ChorusClient(url: "ws://localhost:3000/ws", getToken: { try await api.freshToken() })
/// let lobby = try await client.subscribe("chat.*")
/// Task { for await message in lobby { print(message.topic, message.data) } }
/// let receipt = try await client.publish("chat.lobby", ["text": "hello"])
/// ```
///
/// What it does for you:
/// - connects on the first call (or ``connect()``), sending the token as `Authorization: Bearer`;
/// - reconnects with capped exponential backoff and full jitter (reset after a stable
///   connection), at once when a node drains (close 1001), and not at all after a refused
///   token unless the token provider gives a new one (``ConnectionState/failed(_:)``);
/// - asks the token provider for a token before every reconnect and when the node says the
///   token expired (`auth_expired`), and authenticates again on the open connection;
/// - subscribes everything again after a reconnect, from the last offset and epoch seen per
///   topic when the node keeps history, and reports ``ClientEvent/recoveryFailed(topic:since:)``
///   when it could not recover;
/// - queues publishes while disconnected (at most ``Configuration/offlineQueueLimit``), each
///   with a `messageId` idempotency key, and sends them again after a reconnect until the
///   node acknowledges them (the node drops a repeated key).
///
/// All methods may be called from any task. The client owns its connection: ``close()`` ends
/// it, and so does releasing the client.
public final class ChorusClient: Sendable {
    private let engine: ClientEngine
    private let handles = Mutex(0)
    private let messageBufferLimit: Int

    /// A client that authenticates with `token` (it cannot refresh it: when it expires, the
    /// client reports ``ClientEvent/tokenExpired`` and waits for ``setToken(_:)``).
    /// - Parameter url: `ws://host[:port]/ws`.
    /// - Throws: ``ChorusError/invalidURL(_:)``.
    public init(url: String, token: String, configuration: Configuration = Configuration()) throws {
        engine = try ClientEngine(url: try ServerURL(url), token: token, tokenProvider: nil, configuration: configuration)
        messageBufferLimit = configuration.messageBufferLimit
    }

    /// A client that asks `getToken` for a token before it connects, before every reconnect,
    /// when the node says the token expired, and once more after a refused token.
    public init(
        url: String, configuration: Configuration = Configuration(),
        getToken: @escaping @Sendable () async throws -> String
    ) throws {
        engine = try ClientEngine(url: try ServerURL(url), token: nil, tokenProvider: getToken, configuration: configuration)
        messageBufferLimit = configuration.messageBufferLimit
    }

    deinit {
        let engine = self.engine
        Task { await engine.shutdown(released: true) }
    }

    // MARK: Connection

    /// Connects (unless connected or connecting) and returns once authenticated. Called while
    /// the client waits between reconnect attempts, it makes the next attempt at once (the
    /// network is back, the app is in the foreground again); queued publishes are kept.
    /// - Throws: ``ChorusError/authenticationFailed(code:message:)`` or
    ///   ``ChorusError/tokenUnavailable(message:)`` when the client gives up,
    ///   ``ChorusError/closed`` when ``close()`` is called meanwhile, `CancellationError` when
    ///   the calling task is cancelled (the client keeps connecting; ``close()`` stops it).
    public func connect() async throws {
        try await engine.connect()
    }

    /// Closes the connection (close code 1000) and stops reconnecting. Subscriptions and
    /// ``userMessages()`` finish, waiting calls throw ``ChorusError/closed``; ``states()`` and
    /// ``events()`` carry on (until the client is released). ``connect()`` starts again.
    public func close() async {
        await engine.shutdown()
    }

    /// Replaces the token: sent as `auth` on the open connection (the node accepts a new
    /// token of the same user), used for the next connections, and starts a client that had
    /// failed on a refused token.
    public func setToken(_ token: String) async {
        await engine.setToken(token)
    }

    /// The connection's state now.
    public var state: ConnectionState {
        get async { await engine.currentState() }
    }

    /// The connection's states from now on: the current one first, then every change. It
    /// finishes when the client is released.
    public func states() async -> AsyncStream<ConnectionState> {
        await engine.stateStream()
    }

    /// Recovery, token and subscription events from now on (see ``ClientEvent``). It finishes
    /// when the client is released.
    public func events() async -> AsyncStream<ClientEvent> {
        await engine.eventStream()
    }

    /// Messages the application addressed to this user (`POST /api/publish` with `userId`)
    /// from now on, whatever the client subscribed: they have no topic (``ChorusMessage/topic``
    /// is empty) and no position, and are not recovered after a reconnect. A watcher that
    /// falls ``Configuration/messageBufferLimit`` messages behind is finished, with
    /// ``ClientEvent/error(_:)`` carrying ``ChorusError/bufferOverflow(limit:)``; every watcher
    /// finishes on ``close()``, as subscriptions do.
    public func userMessages() async -> AsyncStream<ChorusMessage> {
        await engine.userMessageStream()
    }

    /// The last position seen on `topic` (topics with history only).
    public func position(of topic: String) async -> StreamPosition? {
        await engine.position(of: topic)
    }

    /// Publishes waiting for a connection or an acknowledgement.
    public var queuedPublishes: Int {
        get async { await engine.queuedPublishes }
    }

    // MARK: Subscribing

    /// Subscribes to a topic or a pattern (`chat.*`, `chat.**`) and returns once the node has
    /// confirmed it; iterate the result for its messages.
    ///
    /// ```swift
    /// for await message in try await client.subscribe("chat.*") { ... }
    /// ```
    /// - Parameters:
    ///   - replay: on a topic with history, the node first sends up to this many recent messages.
    ///   - since: on a topic with history, start after this position.
    /// - Throws: the node's refusal as ``ChorusError/server(code:message:details:)`` (403 for
    ///   a topic the token may not read, 400 for an illegal topic, 429 past the subscription
    ///   limit), ``ChorusError/closed``, `CancellationError`.
    public func subscribe(_ topic: String, replay: Int? = nil, since: StreamPosition? = nil) async throws -> Subscription {
        try await subscribe(topic, replay: replay, since: since, presenceData: nil, presenceEvents: false, feedsMessages: true)
    }

    /// Subscribes to `topic` and joins its presence with `data` (the node makes this
    /// connection's user a member until the subscription ends); with `events`, the
    /// subscription's ``Subscription/presenceEvents`` receives joins, leaves and updates.
    ///
    /// - Parameter messages: false for a join held only for presence (or typing): the topic's
    ///   messages are not kept for it, so it lasts however many arrive. A subscription
    ///   whose messages nobody reads ends after ``Configuration/messageBufferLimit`` of them
    ///   (``ClientEvent/subscriptionEnded(topic:error:)`` with
    ///   ``ChorusError/bufferOverflow(limit:)``), and a join that ends leaves the topic's presence.
    public func join(
        _ topic: String, data: JSONValue = .object([:]), events: Bool = true, messages: Bool = true
    ) async throws -> Subscription {
        try await subscribe(topic, replay: nil, since: nil, presenceData: data, presenceEvents: events, feedsMessages: messages)
    }

    /// Subscribers of `topic` the client holds, confirmed or not (for tests).
    func subscriberCount(of topic: String) async -> Int {
        await engine.subscriberCount(of: topic)
    }

    private func subscribe(
        _ topic: String, replay: Int?, since: StreamPosition?, presenceData: JSONValue?, presenceEvents: Bool,
        feedsMessages: Bool
    ) async throws -> Subscription {
        let handleId = handles.withLock { count in
            count += 1
            return count
        }
        let engine = self.engine
        let (messages, messageContinuation) = AsyncStream.makeStream(
            of: ChorusMessage.self, bufferingPolicy: .bufferingOldest(messageBufferLimit))
        let (presence, presenceContinuation) = AsyncStream.makeStream(
            of: PresenceEvent.self, bufferingPolicy: .bufferingNewest(1000))
        let (typing, typingContinuation) = AsyncStream.makeStream(of: TypingEvent.self, bufferingPolicy: .bufferingNewest(100))
        let ending: @Sendable () -> Void = { Task { await engine.removeHandle(handleId, of: topic) } }
        messageContinuation.onTermination = { _ in ending() }
        try await engine.subscribe(
            topic, handleId: handleId, messages: messageContinuation, presence: presenceContinuation,
            typing: typingContinuation, feedsMessages: feedsMessages, replay: replay, since: since,
            presenceData: presenceData, presenceEvents: presenceEvents)
        return Subscription(
            topic: topic, messages: messages, presenceEvents: presence, typingEvents: typing, ending: ending)
    }

    // MARK: Publishing

    /// Publishes `data` to `topic` and returns the node's acknowledgement.
    ///
    /// While the client is disconnected the publish waits in the offline queue; after a
    /// reconnect it is sent again with the same `messageId`, so the node delivers it once.
    /// - Parameters:
    ///   - messageId: the idempotency key; a new UUID unless given (give your own to retry a
    ///     publish safely across app restarts).
    /// - Throws: the node's refusal as ``ChorusError/server(code:message:details:)`` (403 on a
    ///   topic the token may not publish to), ``ChorusError/queueFull(limit:)``,
    ///   ``ChorusError/timeout``, ``ChorusError/closed``, `CancellationError` (the publish
    ///   leaves the queue; if it was sent, the node may still deliver it), `EncodingError` for
    ///   `data` or `metadata` JSON cannot hold (a NaN or infinite number), before anything is sent.
    @discardableResult
    public func publish(
        _ topic: String, _ data: JSONValue, eventType: String? = nil, metadata: [String: JSONValue]? = nil,
        messageId: String? = nil
    ) async throws -> PublishReceipt {
        try await publish(topic, json: try Self.text(of: data), eventType: eventType, metadata: metadata, messageId: messageId)
    }

    /// Publishes any `Encodable` value as `data`, encoded with a default `JSONEncoder` and
    /// sent as encoded (a `Decimal` or `UInt64` keeps every digit); see
    /// ``publish(_:_:eventType:metadata:messageId:)``.
    @discardableResult
    public func publish(
        _ topic: String, encoding value: some Encodable & Sendable, eventType: String? = nil,
        metadata: [String: JSONValue]? = nil, messageId: String? = nil
    ) async throws -> PublishReceipt {
        let json = String(decoding: try JSONEncoder().encode(value), as: UTF8.self)
        return try await publish(topic, json: json, eventType: eventType, metadata: metadata, messageId: messageId)
    }

    private func publish(
        _ topic: String, json data: String, eventType: String?, metadata: [String: JSONValue]?, messageId: String?
    ) async throws -> PublishReceipt {
        let messageId = messageId ?? UUID().uuidString.lowercased()
        var fields: [String: JSONValue] = ["type": "message", "topic": .string(topic), "messageId": .string(messageId)]
        if let eventType { fields["eventType"] = .string(eventType) }
        if let metadata { fields["metadata"] = .object(metadata) }
        return try await engine.publish(head: try Self.text(of: .object(fields)), data: data, topic: topic, messageId: messageId)
    }

    /// JSON text of `value`; throws `EncodingError` for what JSON cannot hold (NaN, infinity).
    private static func text(of value: JSONValue) throws -> String {
        String(decoding: try JSONEncoder().encode(value), as: UTF8.self)
    }

    // MARK: Presence, typing, read receipts

    /// Who is present on `topic` now (the node's `presence.get`): a page, by user id, of those
    /// after `after` (from the first when nil); see ``PresenceState/truncated``.
    public func members(_ topic: String, after: String? = nil) async throws -> PresenceState {
        var request: [String: JSONValue] = ["type": "presence.get", "topic": .string(topic)]
        if let after { request["after"] = .string(after) }
        let reply = try await engine.request(request)
        let members = reply["members"]?.arrayValue?.compactMap { PresenceMember($0) } ?? []
        return PresenceState(
            topic: reply["topic"]?.stringValue ?? topic, members: members, count: reply["count"]?.intValue ?? members.count,
            scope: reply["scope"]?.stringValue, truncated: reply["truncated"]?.boolValue ?? false)
    }

    /// Says the user is typing on `topic`: a `start` goes out at most once per
    /// ``Configuration/typingThrottle``, and a `stop` follows ``Configuration/typingTimeout``
    /// after the last call. Call it on every keystroke. Nothing is sent while disconnected.
    public func typing(_ topic: String) async {
        await engine.typing(topic)
    }

    /// Sends `stop` now (the message was sent or the field cleared), if `start` was sent.
    public func stopTyping(_ topic: String) async {
        await engine.stopTyping(topic)
    }

    /// Marks the stored message `messageId` read; returns the node's `read_recorded` answer.
    @discardableResult
    public func markRead(_ messageId: String) async throws -> ReadReceipt {
        let reply = try await engine.request(["type": "read", "messageId": .string(messageId)])
        return ReadReceipt(
            messageId: reply["messageId"]?.stringValue ?? messageId, readAt: reply["readAt"]?.stringValue ?? "",
            advanced: reply["advanced"]?.boolValue ?? true)
    }

    /// A round trip to the node (`ping` → `pong`).
    public func ping() async throws {
        _ = try await engine.request(["type": "ping"])
    }
}
