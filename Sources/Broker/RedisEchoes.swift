/// The node's own messages of the batch in flight that Redis has already published back to
/// the node's subscriber connection, although their replies have not arrived on the
/// publisher's. A connection lost at that moment (Redis killed between writing the pub/sub
/// message and the reply) leaves them unacknowledged, yet published: they must be neither
/// delivered locally nor sent again, or every subscriber would see them twice.
///
/// Filled by the subscriber while a batch is in flight, emptied when the batch is answered or
/// taken. (A message whose echo comes only after the failure was handled is caught by the
/// link's `returned` ids instead.) A value, kept in the link's mutex.
struct RedisEchoes: Sendable {
    /// Id → the history position Redis gave the message (nil without history).
    private var positions: [String: HistoryPosition?] = [:]

    var isEmpty: Bool { positions.isEmpty }

    mutating func record(_ envelope: Envelope) {
        positions[envelope.id] = envelope.historyPosition
    }

    mutating func removeAll() {
        if !positions.isEmpty { positions.removeAll(keepingCapacity: true) }
    }

    /// Splits `batch` into the messages Redis has not published (in order) and those it has,
    /// each with the outcome its publisher is owed; then forgets everything.
    ///
    /// Published: those seen back, and the plain `PUBLISH`es before the last one seen back.
    /// Redis runs a connection's commands in order, and a plain `PUBLISH` is sent once, in the
    /// pipeline's first pass, so one that came before a message Redis ran was run too, even if
    /// this node, with no subscriber for it, never sees it back. (A history message is not
    /// inferred: its script may have been refused with `NOSCRIPT` and sent again later.)
    mutating func split(_ batch: [RedisOutgoing]) -> (unpublished: [RedisOutgoing], published: [(RedisOutgoing, PublishOutcome)]) {
        guard !positions.isEmpty else { return (batch, []) }
        let lastSeen = batch.lastIndex { positions[$0.envelope.id] != nil } ?? -1
        var unpublished: [RedisOutgoing] = []
        var published: [(RedisOutgoing, PublishOutcome)] = []
        for (index, message) in batch.enumerated() {
            if let position = positions[message.envelope.id] {
                published.append((message, PublishOutcome(position: position)))
            } else if index < lastSeen, message.historyTopic == nil {
                published.append((message, .accepted))
            } else {
                unpublished.append(message)
            }
        }
        removeAll()
        return (unpublished, published)
    }
}
