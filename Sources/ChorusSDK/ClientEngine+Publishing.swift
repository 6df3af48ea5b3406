import Foundation

/// The publish queue: sending, acknowledging, cancelling.
extension ClientEngine {
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
                if canSend, publishPause == nil, let connection { sendPublish(key, on: connection) }
            }
        } onCancel: {
            Task { await self.cancelPublish(key) }
        }
    }

    func sendPublish(_ key: Int, on connection: WebSocketConnection) {
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
    func cancelPublish(_ key: Int) {
        guard let publish = publishes.removeValue(forKey: key) else { return }
        if let id = publish.requestId, case .publish(_, let timer)? = awaited.removeValue(forKey: id) { timer?.cancel() }
        publish.continuation.resume(throwing: CancellationError())
    }

    var queuedPublishes: Int { publishes.count }
}
