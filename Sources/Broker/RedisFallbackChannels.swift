import Foundation

/// The channels this node published messages on while its Redis server was unreachable: those
/// messages were delivered to this node's subscribers only, so once the server is back the node
/// announces a ``Envelope/Kind/gap`` on each channel and the other nodes tell their subscribers
/// (``PeerGap``). A value, kept in the link's mutex.
///
/// Bounded: past ``limit`` channels the rest are only counted (`unannounced`), so a node that
/// published on a million topics during an outage keeps a bounded set and a bounded burst of
/// announcements.
struct RedisFallbackChannels: Sendable {
    let limit: Int
    /// Channel name to the announcement's address (a topic, or a user id) and the time of the
    /// last message published there.
    private(set) var channels: [String: (topic: Topic?, userId: String?, last: Date)] = [:]
    /// Messages on channels past `limit`: those channels are not announced.
    private(set) var unannounced = 0

    static let defaultLimit = 10_000

    init(limit: Int = Self.defaultLimit) {
        self.limit = limit
    }

    var isEmpty: Bool { channels.isEmpty && unannounced == 0 }

    /// Records `message`'s channel when it carries a message (or an announcement that did not
    /// reach Redis): presence and typing signals have their own recovery (`resync`), or none.
    mutating func record(_ message: RedisOutgoing) {
        let envelope = message.envelope
        guard envelope.kind == nil || envelope.kind == .gap else { return }
        if let known = channels[message.channel] {
            if envelope.timestamp > known.last { channels[message.channel]?.last = envelope.timestamp }
            return
        }
        guard channels.count < limit else {
            unannounced += 1
            return
        }
        channels[message.channel] = envelope.userId.map { (nil, $0, envelope.timestamp) } ?? (envelope.topic, nil, envelope.timestamp)
    }

    /// The announcements to publish, one per channel, and how many messages went unannounced;
    /// forgets them all. Each announcement's `data` is `{"ago":<ms>}`: how long before `now` the
    /// channel's last message was published. A duration, not a time, so that a receiving node
    /// places it on its own clock (``RedisServerLink/coveredByOwnNotice(_:receivedAt:returnedAt:)``):
    /// the nodes' clocks need not agree.
    mutating func takeAnnouncements(origin: String, now: Date = Date()) -> (announcements: [RedisOutgoing], unannounced: Int) {
        defer {
            channels = [:]
            unannounced = 0
        }
        let batch = UUID().uuidString
        var announcements: [RedisOutgoing] = []
        announcements.reserveCapacity(channels.count)
        for (index, (channel, address)) in channels.enumerated() {
            let ago = max(0, Int(now.timeIntervalSince(address.last) * 1000))
            var envelope = Envelope(
                id: "\(origin)-gap-\(batch)-\(index)", origin: origin, topic: address.topic, userId: address.userId,
                data: RawJSON(.object(["ago": .number(JSONNumber(ago))])), timestamp: now)
            envelope.kind = .gap
            announcements.append(RedisOutgoing(channel: channel, envelope: envelope, payload: EnvelopeCodec.encode(envelope)))
        }
        return (announcements, unannounced)
    }
}
