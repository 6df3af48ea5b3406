/// The messages of one subscription, in the order the node delivered them: iterate it with
/// `for await`. One consumer per sequence.
///
/// The subscription lasts while it is iterated or held: when the iterating task is cancelled,
/// or ``cancel()`` is called, or every copy is released, the client unsubscribes (once no
/// other subscription of the same topic or pattern remains). It survives reconnections: the
/// client subscribes again, from the last position seen on topics with history. It finishes
/// when the node ends it (see ``ClientEvent/subscriptionEnded(topic:error:)``) or the client
/// is closed.
public struct Subscription: AsyncSequence, Sendable {
    public typealias Element = ChorusMessage
    public typealias Failure = Never

    /// The topic or pattern subscribed to.
    public let topic: String
    let messages: AsyncStream<ChorusMessage>
    /// Presence events of the topic (when subscribed with presence events, e.g. by
    /// ``ChorusClient/join(_:data:events:)``).
    public let presenceEvents: AsyncStream<PresenceEvent>
    /// Other users' typing on the topic (or on topics the pattern covers).
    public let typingEvents: AsyncStream<TypingEvent>
    private let ending: @Sendable () -> Void

    init(
        topic: String, messages: AsyncStream<ChorusMessage>, presenceEvents: AsyncStream<PresenceEvent>,
        typingEvents: AsyncStream<TypingEvent>, ending: @escaping @Sendable () -> Void
    ) {
        self.topic = topic
        self.messages = messages
        self.presenceEvents = presenceEvents
        self.typingEvents = typingEvents
        self.ending = ending
    }

    public func makeAsyncIterator() -> AsyncStream<ChorusMessage>.Iterator {
        messages.makeAsyncIterator()
    }

    /// Ends the subscription: its sequences finish, and the client unsubscribes unless another
    /// subscription of the same topic remains.
    public func cancel() {
        ending()
    }
}
