import Foundation

/// One published message as it crosses the topic space (and Redis, encoded by ``EnvelopeCodec``).
///
/// A message goes to the subscribers of `topic`, or, when `userId` is set, to every
/// connection of that user (with `topic`, if any, as a label). At least one of the two is set.
public struct Envelope: Sendable, Equatable {
    /// Unique id of this message (origin node id + sequence), used to drop duplicates.
    public var id: String
    /// `NODE_ID` of the node the message was published on.
    public var origin: String
    public var topic: Topic?
    public var userId: String?
    public var eventType: String?
    /// The publisher's `data`, byte for byte.
    public var data: RawJSON
    /// The publisher's `metadata` (an object) with `senderId` set by the node, the other
    /// members byte for byte; nil when absent (an envelope from another writer may lack it).
    public var metadata: RawJSON?
    /// When the origin node accepted the message.
    public var timestamp: Date
    /// Nil for a published message; ``Kind/presence`` or ``Kind/typing`` for the node's own
    /// ephemeral signals, which travel on the topic's channel but reach clients in their own
    /// shapes (see ``Kind``). Set only by nodes and their Redis scripts, never by a client.
    public var kind: Kind? = nil

    /// The node's own signals on a topic's channel.
    public enum Kind: String, Sendable {
        /// A presence event: `data` holds the members of the client's `presence` message
        /// (`{"event":..,"member":..}` or `{"event":"batch","events":[..]}`).
        case presence
        /// A typing indicator: `data` is `{"userId":..,"state":"start"|"stop"}`.
        case typing
        /// The origin node published messages on this channel (`topic`, or `userId`'s) while it
        /// could not reach the channel's Redis server, so they reached no other node; sent once
        /// the server is back (``PeerGap``). `data` is `{"ago":<ms>}`, how long before the
        /// announcement the channel's last message was. Never delivered as a message.
        case gap
    }
    /// The publisher's idempotency key (`messageId`), unique per topic for the history's
    /// lifetime; nil when the publisher gave none. See ``HistoryPolicy``.
    public var messageId: String? = nil
    /// The message's position in its topic's history (1, 2, 3, ...), set by the history that
    /// stored it; nil for a topic without history.
    public var offset: Int? = nil
    /// The history stream `offset` counts in; changes whenever that history was lost or restarted.
    public var epoch: String? = nil

    public init(
        id: String,
        origin: String,
        topic: Topic?,
        userId: String? = nil,
        eventType: String? = nil,
        data: RawJSON,
        metadata: RawJSON? = nil,
        timestamp: Date = Date()
    ) {
        precondition(topic != nil || userId != nil, "an envelope needs a topic or a user id")
        self.id = id
        self.origin = origin
        self.topic = topic
        self.userId = userId
        self.eventType = eventType
        self.data = data
        self.metadata = metadata
        self.timestamp = timestamp
    }
}

extension Envelope {
    /// About what the message takes on the wire (its fields and a frame's framing): the measure
    /// of a memory history read's `maxBytes`, as Redis' reads count the stored envelope, and of
    /// the memory adapter's publish queue. Not the memory holding it (``MemoryHistory/cost(of:)``).
    var approximateBytes: Int {
        data.bytes.count + (metadata?.bytes.count ?? 0) + id.utf8.count + (topic?.name.utf8.count ?? 0)
            + (messageId?.utf8.count ?? 0) + 100
    }

    /// The message's place in its topic's history (``offset`` in ``epoch``); nil without history.
    public var historyPosition: HistoryPosition? {
        guard let offset, let epoch else { return nil }
        return HistoryPosition(offset: offset, epoch: epoch)
    }
}
