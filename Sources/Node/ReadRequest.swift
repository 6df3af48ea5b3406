import Broker
import NIOCore
import Store

/// One WebSocket `{"type":"read","messageId":"...","id":9}` request, served off the event loop.
///
/// The session's event loop must not wait for the store, so ``start(replyingTo:on:)`` returns at
/// once: a task marks the message read through ``ReadReceipts`` (which publishes `message.read`)
/// and then hops back to the connection's event loop to send the reply, `read_recorded` or an
/// `error` in the usual shape (404 unknown message, 403 not the caller's to read, 503 store
/// unavailable, 501 a node without a store). The transport is touched on its loop only; a
/// connection closed meanwhile drops the reply.
struct ReadRequest: Sendable {
    let messageId: String
    let requestId: JSONValue?
    let user: AuthenticatedUser
    let node: NodeContext

    /// Call on `loop`, the transport's event loop.
    func start(replyingTo transport: WebSocketTransport, on loop: any EventLoop) {
        guard let store = node.store else {
            let reply = ServerMessage.error(
                code: 501, message: "read receipts need a store: this node runs with DATABASE_URL=none", details: nil,
                id: requestId)
            return transport.send(text: reply.encoded())
        }
        let bound = NIOLoopBound(transport, eventLoop: loop)
        let receipts = ReadReceipts(node: node, store: store)
        Task {
            let bytes = await reply(receipts).encoded()
            loop.execute { bound.value.send(text: bytes) }
        }
    }

    private func reply(_ receipts: ReadReceipts) async -> ServerMessage {
        do {
            let record = try await receipts.markRead(messageId: messageId, by: user)
            return .readRecorded(messageId: record.message.id, readAt: record.readAt, advanced: record.advanced, id: requestId)
        } catch let error as APIError {
            return .error(code: error.code, message: error.message, details: error.details, id: requestId)
        } catch let error as StoreError {
            return .error(code: 503, message: error.description, details: nil, id: requestId)
        } catch {
            return .error(code: 500, message: "could not record the read", details: nil, id: requestId)
        }
    }
}
