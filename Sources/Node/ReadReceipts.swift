import Broker
import Store

/// Marking messages read, for the HTTP route and the WebSocket `read` request alike: the
/// caller must be allowed to read the message (``MessageAccess``); the store moves the caller's
/// position forward; a position that moved is announced as `message.read` through the broker
/// (``MessageEvents/publishRead(_:)``), so subscribers on every node see it.
///
/// Sendable and stateless: any task may call it. It awaits the store, so an event loop must
/// never wait for it (the WebSocket session starts a task, see ``ReadRequests``).
struct ReadReceipts: Sendable {
    let node: NodeContext
    let store: any ChatStore

    var events: MessageEvents { MessageEvents(node: node) }

    /// Throws ``APIError`` 404 (no such message) or 403 (not the caller's to read, or a direct
    /// message between two other users), and
    /// ``StoreError`` from the store.
    func markRead(messageId: String, by user: AuthenticatedUser) async throws -> ReadRecord {
        guard let message = try await store.message(id: messageId) else { throw APIError(404, "no message '\(EchoedText.cut(messageId))'") }
        if let denial = MessageAccess.readDenial(message, by: user) { throw denial }
        // A token granted others' private topics (a support agent) may read a direct message,
        // but a read position there would make it a member of someone else's conversation.
        if message.topic == nil, message.authorId != user.id, message.recipientId != user.id {
            throw APIError(403, "only the two users of a direct conversation mark its messages read")
        }
        // Deleted in the meantime: as unknown as if it had gone before.
        guard let record = try await store.markRead(messageId: messageId, by: user.id) else {
            throw APIError(404, "no message '\(EchoedText.cut(messageId))'")
        }
        if record.advanced { events.publishRead(record) }
        return record
    }

    /// A page of the caller's conversations; those the caller's token may not read (a token
    /// whose grants do not cover the topic) are left out of the page.
    func conversations(of user: AuthenticatedUser, before cursor: String?, limit: Int) async throws -> ConversationPage {
        var page = try await store.conversations(of: user.id, before: cursor, limit: limit)
        page.filter { MessageAccess.mayRead($0.scope, user: user) }
        return page
    }
}
