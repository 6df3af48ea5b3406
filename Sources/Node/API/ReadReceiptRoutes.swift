import Broker
import Hummingbird
import Store

/// `POST /api/messages/{id}/read` and `GET /api/conversations`: read receipts over HTTP (the
/// WebSocket's `read` request does the same as the first, see ``ReadRequests``). Both need a
/// user token.
struct ReadReceiptRoutes {
    let receipts: ReadReceipts

    static let pageSizes = 1...100
    static let defaultPageSize = 20

    private var node: NodeContext { receipts.node }

    func register(on router: Router<NodeRequestContext>) {
        router.post("/api/messages/:id/read") { request, context in
            let user = try Caller.user(request, node: node)
            let record = try await receipts.markRead(messageId: context.parameters.get("id") ?? "", by: user)
            return Response.json(record.json)
        }
        router.get("/api/conversations") { request, _ in try await list(request) }
    }

    private func list(_ request: Request) async throws -> Response {
        let user = try Caller.user(request, node: node)
        let query = request.uri.queryParameters
        var limit = Self.defaultPageSize
        if let text = query["limit"] {
            guard let value = Int(text), Self.pageSizes.contains(value) else {
                throw APIError.invalid("limit", "'limit' must be a whole number in 1...100")
            }
            limit = value
        }
        let page: ConversationPage
        do {
            page = try await receipts.conversations(of: user, before: query["before"].map(String.init), limit: limit)
        } catch StoreError.invalidCursor {
            throw APIError.invalid("before", "'before' is not a cursor this API returned")
        }
        var writer = JSONWriter()
        writer.raw("{\"conversations\":[")
        for (index, conversation) in page.conversations.enumerated() {
            if index > 0 { writer.raw(",") }
            writer.raw(conversation.json(for: user.id))
        }
        writer.raw("],\"nextCursor\":")
        if let cursor = page.nextCursor { writer.string(cursor) } else { writer.raw("null") }
        writer.raw("}")
        return .json((try? RawJSON(validating: writer.bytes)) ?? .emptyObject)
    }
}
