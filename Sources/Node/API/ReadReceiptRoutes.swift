import Broker
import Hummingbird
import Store

/// `POST /api/messages/{id}/read` and `GET /api/conversations`: read receipts over HTTP (the
/// WebSocket's `read` request does the same as the first, see ``ReadRequests``). Both need a
/// user token.
struct ReadReceiptRoutes {
    let receipts: ReadReceipts
    /// One listing per user at a time: each costs a probe per conversation of the user.
    let listings = InFlightLimit(perKey: 1)

    static let defaultPageSize = 20

    private var node: NodeContext { receipts.node }

    func register(on router: Router<NodeRequestContext>) {
        router.post("/api/messages/:id/read") { request, context in
            let user = try Caller.user(request, node: node)
            // It may publish `message.read`: counted as the user's HTTP publishes are.
            try node.httpPublishes.admit(user.id)
            let record = try await receipts.markRead(messageId: context.parameters.get("id") ?? "", by: user)
            return Response.json(record.json)
        }
        router.get("/api/conversations") { request, _ in try await list(request) }
    }

    private func list(_ request: Request) async throws -> Response {
        let user = try Caller.user(request, node: node)
        let pageRequest = try PageRequest(request, defaultLimit: Self.defaultPageSize)
        let read = try await listings.run(user.id) {
            try await pageRequest.read { before, limit in
                try await receipts.conversations(of: user, before: before, limit: limit)
            }
        }
        guard let page = read else {
            var error = APIError(429, "a conversation listing of this user is still running: wait for it")
            error.retryAfter = 1
            throw error
        }
        var writer = JSONWriter()
        writer.raw("{\"conversations\":[")
        let written = PageRequest.write(page.conversations, to: &writer) { $0.json(for: user.id) }
        PageRequest.close(&writer, nextCursor: page.prefix(written).nextCursor)
        return .json(bytes: writer.bytes)
    }
}
