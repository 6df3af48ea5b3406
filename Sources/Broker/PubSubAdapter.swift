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

    /// The first local holder of `interest` arrived.
    func addInterest(_ interest: Interest)

    /// The last local holder of `interest` left.
    func removeInterest(_ interest: Interest)

    /// A snapshot for `/stats`.
    func status() -> AdapterStatus

    /// Stops delivering and releases connections and threads.
    func shutdown() async
}
