import Broker
import Hummingbird
import NIOCore

/// `GET /api/history/{topic}?limit=&after=&before=`: a topic's position and messages from its
/// history, for clients that catch up over HTTP.
///
/// Same authorization as a WebSocket `subscribe` (``TopicAccess``) for a user token; the
/// `API_KEY` reads any topic. The answer:
/// `{"topic":"chat.lobby","epoch":"e","offset":42,"messages":[<message as delivered>...]}`, the
/// messages oldest first: with `after`, the oldest `limit` after it; otherwise the newest
/// `limit` (before `before`, if given). `limit` is 1 to `HISTORY_SIZE` (its default).
///
/// A page holds about ``pageBytes`` of messages at most (always at least one): the read itself
/// stops there (``HistoryQuery/maxBytes``), in Redis as in memory. A history of large messages
/// would otherwise make one response of up to `HISTORY_SIZE` × the message size, held whole for
/// a client that does not read it. A page cut short says `"truncated":true`; the client asks
/// again from the offset it reached.
///
/// `oldest` is the oldest offset still held. With `after`, `"gap":true` says that messages
/// after it are gone (trimmed past `HISTORY_SIZE`, or expired): the page starts later than
/// `after + 1`, and a client filling a gap must reload instead (as `recovered: false` tells a
/// `subscribe` with `since`).
///
/// A user and a client network have a few reads in flight at most (``StoreReadLimit``; the
/// `API_KEY` has no limit); more are answered 429 at once.
struct HistoryRoutes {
    let node: NodeContext
    let reads = StoreReadLimit(of: "history")

    /// About the most bytes of messages one page carries past its first message.
    static let pageBytes = 1 << 20

    func register(on router: Router<NodeRequestContext>) {
        router.get("/api/history/:topic") { request, context in
            try await read(request, context: context)
        }
    }

    /// Whether messages after `after` are no longer held (see the type's doc).
    static func missed(after: Int, page: HistoryPage) -> Bool {
        guard after < page.position.offset else { return false }
        return (page.oldestHeld ?? page.position.offset + 1) > after + 1
    }

    private func read(_ request: Request, context: NodeRequestContext) async throws -> Response {
        let caller = try Caller.identify(request, node: node, allowAPIKey: true)
        let name = context.parameters.get("topic") ?? ""
        let topic: Topic
        do {
            topic = try Topic(name)
        } catch {
            throw APIError(400, "illegal topic (history is per concrete topic, not a pattern): \(error)", field: "topic")
        }
        if case .user(let user) = caller, let denial = TopicAccess.subscribeDenial(TopicPattern(topic), user: user) {
            throw APIError(403, denial, field: "topic")
        }
        let adapter = node.broker.adapter
        guard adapter.history.covers(topic) else {
            throw APIError(404, "topic '\(topic.name)' keeps no history (HISTORY_SIZE, HISTORY_TOPICS)", field: "topic")
        }
        let parameters = request.uri.queryParameters
        func number(_ field: String, in range: ClosedRange<Int>) throws(APIError) -> Int? {
            guard let text = parameters[field[...]] else { return nil }
            guard let value = Int(String(text)), range.contains(value) else {
                throw APIError.invalid(field, "'\(field)' must be a whole number in \(range.lowerBound)...\(range.upperBound)")
            }
            return value
        }
        let limit = try number("limit", in: 1...adapter.history.size) ?? adapter.history.size
        let after = try number("after", in: 0...HistoryPosition.maxOffset)
        let before = try number("before", in: 1...HistoryPosition.maxOffset)
        let query = HistoryQuery(after: after, before: before, limit: limit, newest: after == nil, maxBytes: Self.pageBytes)
        if case .user(let user) = caller { try node.historyTopics.admit(user.id, topic: topic, policy: node.broker.adapter.history) }
        let page = try await reads.run(for: caller, from: node.clientNetwork(request, context)) {
            await withCheckedContinuation { continuation in
                adapter.readHistory(topic, query) { continuation.resume(returning: $0) }
            }
        }
        switch page {
        case .failure(let error):
            throw node.outages.error("history", reason: error)
        case .success(let page):
            var json = JSONWriter()
            json.raw("{\"topic\":")
            json.string(topic.name)
            json.raw(",\"epoch\":")
            json.string(page.position.epoch)
            json.raw(",\"offset\":\(page.position.offset),\"messages\":[")
            for (index, envelope) in page.messages.enumerated() {
                if index > 0 { json.raw(",") }
                json.append(bytes: ServerMessage.message(envelope).encoded())
            }
            json.raw("]")
            if let oldest = page.oldestHeld { json.raw(",\"oldest\":\(oldest)") }
            if let after, Self.missed(after: after, page: page) { json.raw(",\"gap\":true") }
            if page.truncated { json.raw(",\"truncated\":true") }
            if page.nodeOnly { json.raw(",\"scope\":\"node\"") }
            json.raw("}")
            return Response(
                status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: json.bytes)))
        }
    }
}
