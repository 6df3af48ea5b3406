import Broker
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// The node's HTTP endpoints: health, readiness, stats, metrics and the server-side publish.
///
/// `/stats` and `/metrics` show client addresses and cluster internals: with `STATS_TOKEN` set
/// they answer only `Authorization: Bearer <STATS_TOKEN>` (401 otherwise). The cluster scope
/// reads every node's announcement from Redis, so its answer is cached for a second.
struct NodeRoutes {
    let node: NodeContext
    let collector: StatsCollector
    /// `/stats?scope=cluster`, computed at most once a second.
    let clusterStats: CachedValue<ClusterStats>
    let statsToken: SharedSecret?

    init(node: NodeContext, collector: StatsCollector) {
        self.node = node
        self.collector = collector
        self.clusterStats = CachedValue(maxAge: .seconds(1)) { await collector.clusterStats() }
        self.statsToken = node.configuration.statsToken.map(SharedSecret.init)
    }

    /// Nil when `request` may read operator data, else the 401 to answer.
    private func statsDenial(_ request: Request) -> Response? {
        guard let statsToken else { return nil }
        if let credential = BearerCredential.from(request.headers[.authorization]), statsToken.matches(credential) {
            return nil
        }
        var response = Self.error(401, "this endpoint needs Authorization: Bearer <STATS_TOKEN>")
        response.headers[.wwwAuthenticate] = "Bearer"
        return response
    }

    func register(on router: Router<NodeRequestContext>) {
        router.get("/health") { _, _ in
            Self.json(["status": "ok", "nodeId": node.configuration.nodeId])
        }
        router.get("/ready") { _, _ in
            let (status, ready) = node.readinessStatus
            return Self.json(["status": status, "nodeId": node.configuration.nodeId], status: ready ? .ok : .serviceUnavailable)
        }
        router.get("/stats") { request, _ in
            if let denial = statsDenial(request) { return denial }
            switch request.uri.queryParameters["scope"] {
            case nil, "node":
                return Self.json(encodable: await collector.stats())
            case "cluster":
                return Self.json(encodable: await clusterStats.get())
            case let other?:
                return Self.error(400, "unknown scope '\(EchoedText.cut(other))': expected node or cluster")
            }
        }
        router.get("/metrics") { request, _ in
            if let denial = statsDenial(request) { return denial }
            node.metrics.fromStats.update(
                from: await collector.stats(), ready: node.readinessStatus.ready, maxConnections: node.limiter.total)
            return Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
                body: .init(byteBuffer: ByteBuffer(bytes: node.metrics.exposition())))
        }
        if node.configuration.dashboardEnabled {
            router.get("/dashboard") { _, _ in
                Response(
                    status: .ok, headers: [.contentType: "text/html; charset=utf-8", .cacheControl: "no-store"],
                    body: .init(byteBuffer: ByteBuffer(string: DashboardPage.html)))
            }
        }
        router.post("/api/publish") { request, context in
            var request = request
            return await publish(&request, context: context)
        }
        let webSocketHere = node.configuration.websocketEnabled && node.configuration.websocketPort == node.configuration.httpPort
        router.get("/ws") { _, _ in
            // 426 asks the client to upgrade: only where an upgrade would be taken.
            if webSocketHere { return Self.error(426, "upgrade required: /ws speaks WebSocket only") }
            if node.configuration.websocketEnabled {
                return Self.error(404, "/ws is served on port \(node.configuration.websocketPort) (WEBSOCKET_PORT)")
            }
            return Self.error(404, "WebSocket is turned off on this node (WEBSOCKET_ENABLED=false)")
        }
    }

    // MARK: POST /api/publish

    /// Publishes `{topic | userId, data, metadata?, eventType?}` for a server holding `API_KEY`
    /// (`X-API-Key` or `Authorization: Bearer`) or a client with a valid token.
    private func publish(_ request: inout Request, context: NodeRequestContext) async -> Response {
        let caller: Caller
        do {
            caller = try Caller.identify(request, node: node, allowAPIKey: true)
        } catch {
            return Self.error(error.code, error.message)
        }
        let (sender, holder): (String, BodyBudget.Holder)
        switch caller {
        case .server: (sender, holder) = ("server", .application)
        case .user(let user): (sender, holder) = (user.id, node.bodyHolder(user: user.id, request, context))
        }
        do {
            if case .user(let user) = caller { try node.httpPublishes.admit(user.id) }
        } catch {
            return error.response
        }
        let body: ByteBuffer
        do {
            body = try await RequestBody.read(&request, limit: node.configuration.maxMessageSize, budget: node.bodies, holder: holder)
        } catch {
            return error.response
        }
        do {
            if case .user(let user) = caller { try node.httpPublishes.charge(user.id, bytes: body.readableBytes) }
        } catch {
            return error.response
        }
        // The same reader as a WebSocket frame (``ClientMessage``): `data` and `metadata` go on
        // as the caller's bytes.
        let input: RawJSONObject
        do {
            input = try RawJSONObject(parsing: body.readableBytesView)
        } catch {
            if error.problem == .notAnObject {
                return Self.error(400, "malformed JSON: expected {topic | userId, data, metadata?, eventType?}")
            }
            return Self.error(400, "malformed JSON: \(error)")
        }
        /// A string member; null counts as absent.
        func text(_ name: String) throws(APIError) -> String? {
            guard let value = input[name], !value.isNull else { return nil }
            guard let text = value.stringValue else { throw APIError(400, "'\(name)' must be a string") }
            return text
        }
        let topicName: String?, userId: String?, eventType: String?, messageId: String?
        do {
            topicName = try text("topic")
            userId = try text("userId")
            eventType = try text("eventType")
            messageId = try text("messageId")
        } catch {
            return error.response
        }
        if let messageId, messageId.isEmpty || messageId.utf8.count > HistoryRequest.maxMessageIdLength {
            return Self.error(400, "'messageId' must be a non-empty string of at most \(HistoryRequest.maxMessageIdLength) bytes")
        }
        guard let data = input["data"] else { return Self.error(400, "'data' is required") }
        guard topicName != nil || userId != nil else {
            return Self.error(400, "'topic' or 'userId' is required")
        }
        var topic: Topic?
        if let name = topicName {
            do {
                topic = try Topic(name)
            } catch {
                return Self.error(400, "illegal topic: \(error)")
            }
        }
        if case .user(let user) = caller, let topic, let denial = TopicAccess.publishDenial(topic, user: user) {
            return Self.error(403, denial)
        }
        if case .user = caller, userId != nil {
            return Self.error(403, "only the application (API_KEY) may address a message to a userId")
        }
        if case .user = caller, let denial = ReservedEventTypes.denial(eventType) {
            return Self.error(403, denial)
        }
        do {
            if case .user(let user) = caller, let topic {
                try node.historyTopics.admit(user.id, topic: topic, policy: node.broker.adapter.history)
            }
        } catch {
            return error.response
        }
        if let userId, let problem = UserID.problem(userId) {
            return Self.error(400, "'userId' \(problem)")
        }
        var metadata = RawJSON.emptyObject
        if let given = input["metadata"], !given.isNull {
            guard given.isObject else { return Self.error(400, "'metadata' must be an object") }
            metadata = given
        }
        metadata = metadata.settingMember("senderId", to: .string(sender))
        var envelope = Envelope(
            id: node.ids.next(), origin: node.configuration.nodeId, topic: topic, userId: userId,
            eventType: eventType, data: data, metadata: metadata)
        envelope.messageId = messageId
        node.counters.messagesIn.add(1, ordering: .relaxed)
        node.metrics.published()
        // The adapter's outcome: the history position, or a duplicate `messageId`.
        let outcome = await withCheckedContinuation { continuation in
            node.broker.publish(envelope) { continuation.resume(returning: $0) }
        }
        if let refusal = outcome.refusal {
            return Self.error(503, "message not accepted: \(refusal); publish it again")
        }
        return Self.json(
            encodable: PublishAccepted(
                id: envelope.id, timestamp: ISO8601.string(envelope.timestamp), messageId: messageId,
                offset: outcome.position?.offset, epoch: outcome.position?.epoch,
                duplicate: messageId == nil ? nil : outcome.duplicate, scope: outcome.nodeOnly ? "node" : nil,
                uncertain: outcome.uncertain ? true : nil),
            status: .accepted)
    }

    /// The answer to `POST /api/publish`.
    private struct PublishAccepted: Encodable {
        var id: String
        var timestamp: String
        var messageId: String?
        var offset: Int?
        var epoch: String?
        var duplicate: Bool?
        /// `node` when only this node's subscribers received it (its Redis server was unreachable).
        var scope: String?
        /// `true` with `scope`: Redis may have received it too (see ``PublishOutcome/uncertain``).
        var uncertain: Bool?
    }

    // MARK: JSON responses

    static func json(_ object: [String: String], status: HTTPResponse.Status = .ok) -> Response {
        json(encodable: object, status: status)
    }

    static func json(encodable value: some Encodable, status: HTTPResponse.Status = .ok) -> Response {
        let bytes = (try? ISO8601.encoder().encode(value)) ?? Data("{}".utf8)
        return Response(
            status: status, headers: [.contentType: "application/json"],
            body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
    }

    /// The seed's error shape with an HTTP status.
    static func error(_ status: Int, _ message: String) -> Response {
        APIError(status, message).response
    }
}
