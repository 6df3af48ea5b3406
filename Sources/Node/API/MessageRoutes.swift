import Broker
import Foundation
import Hummingbird
import Store

/// `/api/messages`: messages to a topic or directly to a user, stored in the node's
/// ``ChatStore`` and announced to WebSocket subscribers through ``MessageEvents``.
///
/// Every route needs a user token, and follows the WebSocket's rules (``TopicAccess``): a
/// message is readable by whoever may subscribe to a topic its events go to (its topic; for a
/// direct message, the private topic of its author or recipient), so by default a direct
/// message is readable by those two only, and a grant can open it to a support agent. Posting
/// to a topic needs the right to publish there; a token with grants needs a publish grant for
/// `messages.user.<recipient>` to send a direct message. Only the author edits or deletes, and
/// only while still allowed to post there.
struct MessageRoutes {
    let node: NodeContext
    let store: any ChatStore
    let events: MessageEvents

    /// Longest `content`, in Unicode scalars (JSON Schema's `maxLength` characters): at most
    /// 40 KB of UTF-8. Not `String.count`, whose grapheme clusters have no byte bound (one
    /// letter with 450,000 combining marks is one).
    static let maxContent = 10_000
    /// Largest `metadata`, in bytes of JSON: with ``maxContent`` it bounds a stored message,
    /// and so a page of them.
    static let maxMetadataBytes = 16 << 10
    /// Deepest `metadata`: its events carry it two levels down (`data.metadata` of the frame,
    /// and of the envelope on Redis), where every node reads at most ``JSONParser/maxDepth``.
    static let maxMetadataDepth = JSONParser.maxDepth - 2
    static let defaultPageSize = 50

    func register(on router: Router<NodeRequestContext>) {
        router.post("/api/messages") { request, context in
            var request = request
            return try await create(&request, context: context)
        }
        router.get("/api/messages") { request, _ in try await list(request) }
        router.get("/api/messages/:id") { request, context in
            let user = try Caller.user(request, node: node)
            let message = try await existing(context)
            try checkRead(message, by: user)
            return Response.json(message.json)
        }
        router.patch("/api/messages/:id") { request, context in
            var request = request
            return try await edit(&request, context: context)
        }
        router.delete("/api/messages/:id") { request, context in
            let user = try Caller.user(request, node: node)
            // It publishes `message.deleted`, and keeps the id taken for good.
            try node.httpPublishes.admit(user.id)
            let message = try await existing(context)
            try checkAuthor(message, user)
            guard try await store.deleteMessage(id: message.id) else { throw APIError(404, "no message '\(message.id)'") }
            events.publish(.deleted, message)
            return Response(status: .noContent)
        }
    }

    private func create(_ request: inout Request, context: NodeRequestContext) async throws -> Response {
        let user = try Caller.user(request, node: node)
        try node.httpPublishes.admit(user.id)
        let body = try await RequestBody(&request, limit: node.configuration.maxMessageSize, budget: node.bodies, holder: node.bodyHolder(user: user.id, request, context))
        try node.httpPublishes.charge(user.id, bytes: body.size)
        let topicName = try body.optionalString("topic")
        let recipientId = try body.optionalString("recipientId")
        let content = try Self.content(body)
        let metadata = try Self.metadata(body)
        let id = try Self.clientId(body)
        switch (topicName, recipientId) {
        case (let name?, nil):
            let topic = try Self.topic(name)
            if let denial = TopicAccess.publishDenial(topic, user: user) {
                throw APIError(403, denial, field: "topic")
            }
            try node.historyTopics.admit(user.id, topic: topic, policy: node.broker.adapter.history)
        case (nil, let recipient?):
            if let problem = UserID.problem(recipient) {
                throw APIError(400, "recipientId '\(EchoedText.cut(recipient))' \(problem)", field: "recipientId")
            }
            guard try await store.user(id: recipient) != nil else {
                throw APIError(404, "no user with id '\(recipient)'", field: "recipientId")
            }
            try checkDirect(to: recipient, by: user)
        default:
            throw APIError.invalid("topic", "give exactly one of 'topic' and 'recipientId'")
        }
        let new = NewMessage(
            id: id, authorId: user.id, topic: topicName, recipientId: recipientId, content: content, metadata: metadata)
        let message: StoredMessage
        do {
            message = try await store.createMessage(new)
        } catch StoreError.duplicateMessageId {
            // A retry (the first answer was lost): answered as the first was, with 200 for 201.
            // It is announced again under its id, which a topic's history drops as a duplicate
            // if the first announcement got out (a node may have died between the two steps).
            guard let id, let existing = try await store.message(id: id), Self.isRetry(of: existing, new) else {
                throw APIError(409, "id '\(id ?? "")' is taken by another message, or a deleted one", field: "id")
            }
            events.publish(.sent, existing)
            return .json(existing.json)
        }
        events.publish(.sent, message)
        return .json(message.json, status: .created)
    }

    /// `id`, when given: a UUID the client made, so that it can post again after a failure
    /// without storing the message twice. Kept lowercase, as the store makes its own.
    private static func clientId(_ body: RequestBody) throws(APIError) -> String? {
        guard let text = try body.optionalString("id") else { return nil }
        guard let uuid = UUID(uuidString: text) else {
            throw APIError.invalid("id", "'id' must be a UUID (8-4-4-4-12 hexadecimal digits)")
        }
        return uuid.uuidString.lowercased()
    }

    /// Whether `new` is `stored` posted again: same author, conversation, content and metadata,
    /// byte for byte (`String` equality is canonical equivalence: text composed differently is
    /// a different post).
    private static func isRetry(of stored: StoredMessage, _ new: NewMessage) -> Bool {
        stored.authorId == new.authorId && stored.topic == new.topic && stored.recipientId == new.recipientId
            && sameBytes(stored.content, new.content) && sameBytes(stored.metadata, new.metadata)
    }

    private static func sameBytes(_ one: String?, _ other: String?) -> Bool {
        switch (one, other) {
        case (nil, nil): true
        case (let one?, let other?): one.utf8.elementsEqual(other.utf8)
        default: false
        }
    }

    private func list(_ request: Request) async throws -> Response {
        let user = try Caller.user(request, node: node)
        let query = request.uri.queryParameters
        let scope: MessageScope
        switch (query["topic"].map(String.init), query["with"].map(String.init)) {
        case (let name?, nil):
            if let denial = TopicAccess.subscribeDenial(TopicPattern(try Self.topic(name)), user: user) {
                throw APIError(403, denial, field: "topic")
            }
            scope = .topic(name)
        case (nil, let other?):
            if let own = TopicAccess.privateTopic(of: user.id), let denial = TopicAccess.subscribeDenial(TopicPattern(own), user: user) {
                throw APIError(403, denial, field: "with")
            }
            scope = .conversation(user.id, other)
        default:
            throw APIError.invalid("topic", "give exactly one of the query parameters 'topic' and 'with'")
        }
        let pageRequest = try PageRequest(request, defaultLimit: Self.defaultPageSize)
        let page = try await pageRequest.read { before, limit in
            try await store.messages(in: scope, before: before, limit: limit, maxBytes: PageRequest.pageBytes)
        }
        var writer = JSONWriter()
        writer.raw("{\"messages\":[")
        let written = PageRequest.write(page.messages, to: &writer) { $0.json }
        PageRequest.close(&writer, nextCursor: page.prefix(written).nextCursor)
        return .json(bytes: writer.bytes)
    }

    private func edit(_ request: inout Request, context: NodeRequestContext) async throws -> Response {
        let user = try Caller.user(request, node: node)
        try node.httpPublishes.admit(user.id)
        let body = try await RequestBody(&request, limit: node.configuration.maxMessageSize, budget: node.bodies, holder: node.bodyHolder(user: user.id, request, context))
        try node.httpPublishes.charge(user.id, bytes: body.size)
        let content = try Self.content(body)
        let metadata = try Self.metadata(body)
        let message = try await existing(context)
        try checkAuthor(message, user)
        // Absent metadata is kept as stored when the update runs, not as read above.
        guard let updated = try await store.updateMessage(id: message.id, content: content, metadata: metadata.map { .set($0) } ?? .keep)
        else { throw APIError(404, "no message '\(message.id)'") }
        events.publish(.updated, updated)
        return .json(updated.json)
    }

    private func existing(_ context: NodeRequestContext) async throws -> StoredMessage {
        let id = context.parameters.get("id") ?? ""
        guard let message = try await store.message(id: id) else { throw APIError(404, "no message '\(EchoedText.cut(id))'") }
        return message
    }

    private func checkRead(_ message: StoredMessage, by user: AuthenticatedUser) throws(APIError) {
        if let denial = MessageAccess.readDenial(message, by: user) { throw denial }
    }

    /// The author, still allowed to post where the message went.
    private func checkAuthor(_ message: StoredMessage, _ user: AuthenticatedUser) throws(APIError) {
        guard message.authorId == user.id else { throw APIError(403, "only the author may change or delete a message") }
        if let name = message.topic, let topic = try? Topic(name), let denial = TopicAccess.publishDenial(topic, user: user) {
            throw APIError(403, denial)
        }
        if let recipient = message.recipientId { try checkDirect(to: recipient, by: user) }
    }

    /// A token with grants sends direct messages only where a publish grant covers the
    /// recipient's private topic; a token without grants may message anyone.
    private func checkDirect(to recipient: String, by user: AuthenticatedUser) throws(APIError) {
        guard let grants = user.grants else { return }
        guard let inbox = TopicAccess.privateTopic(of: recipient), grants.publish.contains(where: { $0.matches(inbox) }) else {
            throw APIError(403, "the token's grants do not cover messages.user.\(recipient)", field: "recipientId")
        }
    }


    private static func topic(_ name: String) throws(APIError) -> Topic {
        do {
            return try Topic(name)
        } catch {
            throw APIError.invalid("topic", "illegal topic: \(error)")
        }
    }

    private static func content(_ body: RequestBody) throws(APIError) -> String {
        let content = try body.string("content")
        guard !content.isEmpty, content.unicodeScalars.count <= maxContent else {
            throw APIError.invalid("content", "'content' must be 1 to \(maxContent) characters (Unicode scalars)")
        }
        // PostgreSQL's text cannot hold it, and SQLite's would read back cut short there.
        guard !content.unicodeScalars.contains("\u{0}") else {
            throw APIError.invalid("content", "'content' may not contain U+0000 (NUL)")
        }
        return content
    }

    private static func metadata(_ body: RequestBody) throws(APIError) -> String? {
        guard let metadata = try body.optionalObject("metadata") else { return nil }
        if metadata.bytes.count > maxMetadataBytes {
            throw APIError.invalid("metadata", "'metadata' must be at most \(maxMetadataBytes) bytes of JSON")
        }
        if metadata.nestingDepth > maxMetadataDepth {
            throw APIError.invalid("metadata", "'metadata' may nest at most \(maxMetadataDepth) levels of objects and arrays")
        }
        return metadata.description
    }
}
