/// Where a node's published messages go and where other nodes' messages come from.
///
/// ``MemoryAdapter`` keeps everything inside the process; the Redis adapter shares one topic
/// space between nodes. An adapter never blocks its callers: `publish`, `addInterest` and
/// `removeInterest` may be called from any thread, including NIO event loops, and return at once.
public protocol PubSubAdapter: AnyObject, Sendable {
    /// Starts the adapter. From now on every message matching an added interest (or addressed to
    /// a user interest) is handed to `deliver`, in batches, on a thread of the adapter's choosing.
    /// While connected to a shared backend the adapter delivers what the backend sends back,
    /// the node's own messages included; while falling back it delivers local publishes at once.
    func start(deliver: @escaping @Sendable ([Envelope]) -> Void)

    /// Publishes one message. Never blocks; a full outbound queue drops and counts.
    func publish(_ envelope: Envelope)

    /// Publishes one message and reports how it ended (its history position, or that its
    /// `messageId` was a duplicate) to `completion`, on a thread of the adapter's choosing.
    /// A dropped message never completes.
    func publish(_ envelope: Envelope, completion: PublishCompletion?)

    /// Reads `topic`'s history (see ``HistoryQuery``) and hands the page to `completion`, on a
    /// thread of the adapter's choosing. A read issued after this node's interest in `topic`
    /// was added sees every message that interest will not deliver: those before the
    /// subscription took effect are in the page, the rest arrive live.
    func readHistory(
        _ topic: Topic, _ query: HistoryQuery, completion: @escaping @Sendable (Result<HistoryPage, HistoryError>) -> Void)

    /// The history settings this adapter applies.
    var history: HistoryPolicy { get }

    /// History figures for `/stats`; nil when history is off.
    func historyStats() -> HistoryStats?

    /// The first local holder of `interest` arrived.
    func addInterest(_ interest: Interest)

    /// The last local holder of `interest` left.
    func removeInterest(_ interest: Interest)

    /// Runs `body` once every interest change requested before this call is in effect on the
    /// backend, so that a message published afterwards anywhere reaches this node: at once when
    /// there is nothing to wait for (no shared backend, interest already confirmed, or falling
    /// back to local delivery, which is live at once), else when the backend has confirmed it
    /// (Redis: the marker `PING` sent after the `SUBSCRIBE`s is answered, on every server).
    /// Never blocks; `body` runs exactly once, on the calling thread or an adapter thread; a
    /// fall back or a shutdown releases every waiter.
    func whenInterestSettled(_ body: @escaping @Sendable () -> Void)

    /// A snapshot for `/stats`.
    func status() -> AdapterStatus

    /// Runs `body` each time a backend server (its index in the adapter's list) is live again
    /// after falling back, or for the first time: its subscriptions are confirmed, so what it
    /// publishes from now on reaches this node, but what it published meanwhile did not (the
    /// subscribes answered before were answered without it). Set before ``start(deliver:)``;
    /// `body` runs on an adapter thread.
    func onReturnFromFallback(_ body: @escaping @Sendable (_ server: Int) -> Void)

    /// Runs `body` each time other nodes announce that they published, while they could not
    /// reach a backend server, messages that therefore never reached this node (``PeerGap``:
    /// the topics and users concerned). Set before ``start(deliver:)``; `body` runs on an
    /// adapter thread.
    func onPeerGap(_ body: @escaping @Sendable (PeerGap) -> Void)

    /// Whether the messages of `interest` travel through backend server `server` (a pattern
    /// travels through every server).
    func interest(_ interest: Interest, livesOn server: Int) -> Bool

    /// Stops delivering and releases connections and threads.
    func shutdown() async
}

extension PubSubAdapter {
    public func publish(_ envelope: Envelope, completion: PublishCompletion?) {
        publish(envelope)
        completion?(.accepted)
    }

    public func readHistory(
        _ topic: Topic, _ query: HistoryQuery, completion: @escaping @Sendable (Result<HistoryPage, HistoryError>) -> Void
    ) {
        completion(.failure(HistoryError("this adapter keeps no history")))
    }

    public var history: HistoryPolicy { .off }

    /// An adapter with no backend never falls back.
    public func onReturnFromFallback(_ body: @escaping @Sendable (_ server: Int) -> Void) {}

    /// An adapter with no backend has no other nodes.
    public func onPeerGap(_ body: @escaping @Sendable (PeerGap) -> Void) {}

    public func interest(_ interest: Interest, livesOn server: Int) -> Bool { true }

    public func historyStats() -> HistoryStats? { nil }
}
