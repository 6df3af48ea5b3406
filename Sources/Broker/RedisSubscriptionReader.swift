/// Turns the replies read on a subscriber connection into the envelopes to deliver.
///
/// A value owned by the subscriber of a ``RedisServerLink`` (its event loop), one per connection.
/// What it does with each push:
/// - `message`: decoded; delivered when the envelope belongs on that channel (a ``Envelope/Kind/gap``
///   announcement is handed over apart).
/// - `pmessage`: first filtered by channel name: only topic channels whose topic one of the
///   node's patterns really matches (Redis `*` crosses dots, so `a.*` also brings `a.b.c`;
///   and past ``RedisPatternGlobs/limit`` one catch-all glob brings every topic), whichever
///   glob brought it, then decoded like a `message`.
/// - A payload byte-identical to the last one handled is dropped: when a node holds a topic
///   and a matching pattern (or two patterns matching one topic), Redis sends the same PUBLISH
///   once per subscription, consecutively on this connection. Envelope ids are unique, so two
///   genuine messages never have the same bytes; a malformed payload is counted once.
/// - A payload that is not an envelope, or an envelope on a channel it is not addressed to,
///   is counted as malformed and skipped.
struct RedisSubscriptionReader {
    let channels: RedisChannels
    /// The node's patterns (as the subscriber last sent them).
    var patterns: SubscriptionIndex<TopicPattern>

    struct Outcome {
        var envelopes: [Envelope] = []
        /// ``Envelope/Kind/gap`` announcements: not messages, never delivered as one.
        var gaps: [Envelope] = []
        var malformed = 0
        var lastProblem: String?
        /// Answers to `PING` seen (readiness markers and keepalives), in the order they were sent.
        var pongs = 0
    }

    private var outcome = Outcome()
    /// The last payload delivered or counted as malformed.
    private var lastHandled: [UInt8] = []

    init(channels: RedisChannels, patterns: SubscriptionIndex<TopicPattern>) {
        self.channels = channels
        self.patterns = patterns
    }

    /// What the replies handled since the last call amount to.
    mutating func takeOutcome() -> Outcome {
        defer { outcome = Outcome() }
        return outcome
    }

    /// Handles one reply; an error reply (for example a subscription refused by an ACL) throws.
    mutating func handle(_ reply: RedisReply) throws(RedisConnectionError) {
        switch reply {
        case .array(let items):
            guard case .bulk(let kind)? = items.first else { return }
            if kind.elementsEqual("message".utf8) {
                guard items.count == 3, case .bulk(let channel) = items[1], case .bulk(let payload) = items[2] else { return }
                receive(payload, channel: channel, isPatternMessage: false)
            } else if kind.elementsEqual("pmessage".utf8) {
                guard items.count == 4, case .bulk(let channel) = items[2], case .bulk(let payload) = items[3] else { return }
                receive(payload, channel: channel, isPatternMessage: true)
            } else if kind.elementsEqual("pong".utf8) {
                outcome.pongs += 1
            }
        // Anything else ((p)(un)subscribe confirmations) needs no answer: the marker `PING`
        // after them says they are all done.
        case .status(let text) where text == "PONG":
            // A `PING` on a connection with no subscription at all.
            outcome.pongs += 1
        case .error(let message):
            throw RedisConnectionError("subscriber refused by Redis: \(message)")
        default:
            break
        }
    }

    private mutating func receive(_ payload: [UInt8], channel channelBytes: [UInt8], isPatternMessage: Bool) {
        if payload == lastHandled { return }
        let channel = String(decoding: channelBytes, as: UTF8.self)
        guard channel.hasPrefix(channels.prefix) else { return }
        let key = channel.dropFirst(channels.prefix.count)

        if isPatternMessage {
            // User channels are matched by a leading `*` glob but are never pattern messages.
            guard !key.hasPrefix(RedisChannels.userMarker), let topic = try? Topic(String(key)) else { return }
            var matched = false
            patterns.forEachMatch(topic) { _ in matched = true }
            guard matched else { return }
        }

        lastHandled = payload
        let envelope: Envelope
        do {
            envelope = try EnvelopeCodec.decode(payload)
        } catch {
            malformed("\(error) on channel \(channel)")
            return
        }
        guard channels.key(for: envelope) == key else {
            malformed("envelope for '\(channels.key(for: envelope))' arrived on channel \(channel)")
            return
        }
        if envelope.kind == .gap {
            outcome.gaps.append(envelope)
        } else {
            outcome.envelopes.append(envelope)
        }
    }

    private mutating func malformed(_ problem: String) {
        outcome.malformed += 1
        outcome.lastProblem = problem
    }
}
