/// A message on its way out of a ``RedisServerLink``: to Redis (`PUBLISH channel payload`) or,
/// in fallback, to local delivery. The payload is encoded once, on the publishing thread, so
/// that its size is known where it is queued.
struct RedisOutgoing: Sendable {
    let channel: String
    let envelope: Envelope
    let payload: [UInt8]
    /// The topic whose history stores the message (sent with the history script rather than
    /// `PUBLISH`); nil for a message without history.
    var historyTopic: Topic? = nil
    /// Told the outcome once: by Redis' reply, or by local delivery in fallback.
    var completion: PublishCompletionOnce? = nil
    /// Delivered locally although Redis may have it: written to Redis, unanswered, when the
    /// link fell back (``PublishOutcome/uncertain``).
    var uncertain = false

    /// What the message counts against a queue's byte limit (payload plus bookkeeping).
    var cost: Int { payload.count + channel.utf8.count + Self.overhead }

    static let overhead = 64
}

/// A FIFO of ``RedisOutgoing`` bounded in messages *and* in bytes: a full queue refuses a
/// message (the caller counts it as dropped) rather than grow without limit. A value, kept in
/// the link's mutex.
struct RedisOutgoingQueue: Sendable {
    let messageLimit: Int
    let byteLimit: Int
    private(set) var messages: [RedisOutgoing] = []
    private(set) var bytes = 0

    init(messageLimit: Int, byteLimit: Int) {
        self.messageLimit = messageLimit
        self.byteLimit = byteLimit
    }

    var isEmpty: Bool { messages.isEmpty }
    var count: Int { messages.count }

    /// Appends `message` unless the queue is full; an empty queue takes any one message, so a
    /// single message larger than the byte limit still gets through.
    mutating func append(_ message: RedisOutgoing) -> Bool {
        guard messages.count < messageLimit, messages.isEmpty || bytes + message.cost <= byteLimit else { return false }
        messages.append(message)
        bytes += message.cost
        return true
    }

    /// Puts `batch` back in front (a batch Redis did not acknowledge), whatever the limits:
    /// those messages were admitted once already.
    mutating func prepend(_ batch: some Collection<RedisOutgoing>) {
        messages.insert(contentsOf: batch, at: 0)
        bytes += batch.reduce(0) { $0 + $1.cost }
    }

    /// Appends `batch` at the back whatever the limits: messages admitted once already (by the
    /// publish queue, moved to the local outbox by a fall back).
    mutating func append(admitted batch: some Collection<RedisOutgoing>) {
        messages.append(contentsOf: batch)
        bytes += batch.reduce(0) { $0 + $1.cost }
    }

    /// Removes the message with envelope id `id` (a message put back that Redis turns out to
    /// have published). Linear, from the front, where put-back messages are.
    mutating func remove(id: String) -> RedisOutgoing? {
        guard let index = messages.firstIndex(where: { $0.envelope.id == id }) else { return nil }
        let message = messages.remove(at: index)
        bytes -= message.cost
        return message
    }

    /// Takes every message, oldest first.
    mutating func takeAll() -> [RedisOutgoing] {
        defer {
            messages = []
            bytes = 0
        }
        return messages
    }
}
