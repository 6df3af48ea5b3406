import Broker
import NIOCore
import Store

/// The WebSocket `{"type":"read","messageId":"...","id":9}` requests of one connection, served
/// off its event loop.
///
/// The event loop must not wait for the store, so ``start(messageId:requestId:user:replyingTo:)``
/// returns at once: a task marks the message read through ``ReadReceipts`` (which publishes
/// `message.read`) and then hops back to the connection's event loop to send the reply,
/// `read_recorded` or an `error` in the usual shape (404 unknown message, 403 not the caller's to
/// read, 503 store unavailable, 501 a node without a store). At most ``limit`` reads of one
/// connection are in flight; past that a request gets 429 at once. A connection closed
/// meanwhile drops the reply.
///
/// Owned by the connection's ``WebSocketSession`` and used on its event loop only, like the
/// transport it replies through (held strongly by each task until it has replied).
final class ReadRequests {
    /// The most reads of one connection waiting for the store.
    static let limit = 16

    private let node: NodeContext
    private let loop: any EventLoop
    private var inFlight = 0

    init(node: NodeContext, loop: any EventLoop) {
        self.node = node
        self.loop = loop
    }

    /// Call on the connection's event loop.
    func start(messageId: String, requestId: JSONValue?, user: AuthenticatedUser, replyingTo transport: WebSocketTransport) {
        guard let store = node.store else {
            return transport.send(text: ServerMessage.error(
                code: 501, message: "read receipts need a store: this node runs with DATABASE_URL=none", details: nil,
                id: requestId
            ).encoded())
        }
        guard inFlight < Self.limit else {
            return transport.send(text: ServerMessage.error(
                code: 429, message: "too many reads in flight: at most \(Self.limit) per connection; wait for their read_recorded",
                details: nil, id: requestId
            ).encoded())
        }
        inFlight += 1
        let receipts = ReadReceipts(node: node, store: store)
        let requests = NIOLoopBound(self, eventLoop: loop)
        let connection = NIOLoopBound(transport, eventLoop: loop)
        let (loop, outages) = (self.loop, node.outages)
        Task {
            let bytes = await ReadRequests.reply(
                receipts, messageId: messageId, requestId: requestId, user: user, outages: outages
            ).encoded()
            loop.execute {
                requests.value.inFlight -= 1
                connection.value.send(text: bytes)
            }
        }
    }

    private static func reply(
        _ receipts: ReadReceipts, messageId: String, requestId: JSONValue?, user: AuthenticatedUser, outages: BackendOutage
    ) async -> ServerMessage {
        do {
            let record = try await receipts.markRead(messageId: messageId, by: user)
            return .readRecorded(messageId: record.message.id, readAt: record.readAt, advanced: record.advanced, id: requestId)
        } catch let error as APIError {
            return .error(code: error.code, message: error.message, details: error.details, id: requestId)
        } catch let error as StoreError {
            return .error(code: 503, message: outages.error("store", reason: error).message, details: nil, id: requestId)
        } catch {
            return .error(code: 500, message: "could not record the read", details: nil, id: requestId)
        }
    }
}
