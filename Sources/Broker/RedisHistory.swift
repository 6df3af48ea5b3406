import Synchronization

/// Topic histories in Redis: one stream per topic, written by the same Lua script that
/// publishes the message, so that history and live delivery can never disagree about order.
///
/// **Keys** (on the server that holds the topic's channel, see ``RedisChannels``), with the
/// default prefix and topic `chat.lobby`:
/// - `pubsub:@history:chat.lobby`: a stream of the last `HISTORY_SIZE` messages (`XADD MAXLEN`,
///   exact), entry id `<offset>-0`, one field `e` holding the envelope as published;
/// - `pubsub:@history-meta:chat.lobby`: a hash with `epoch` and `offset` (the last assigned);
/// - `pubsub:@history-id:chat.lobby:<messageId>`: the offset a `messageId` was stored at.
///
/// All three expire `HISTORY_TTL` after the topic's last publish (`PEXPIRE`, refreshed by each
/// publish). A topic whose meta hash is gone (expired, flushed, a Redis restarted without
/// persistence) starts a new stream under a new epoch (random, drawn by the node), so a client's
/// `since` from the old stream is answered `recovered: false`.
enum RedisHistory {
    static func streamKey(_ channels: RedisChannels, _ topic: Topic) -> String { channels.prefix + "@history:" + topic.name }
    static func metaKey(_ channels: RedisChannels, _ topic: Topic) -> String { channels.prefix + "@history-meta:" + topic.name }
    static func idKey(_ channels: RedisChannels, _ topic: Topic, _ messageId: String) -> String {
        channels.prefix + "@history-id:" + topic.name + ":" + messageId
    }

    /// KEYS: meta, stream, [id key]. ARGV: channel, envelope JSON (without offset and epoch),
    /// size, ttl (ms), an epoch for a new stream. Returns `{stored (1) or duplicate (0), offset, epoch}`.
    /// The envelope goes into the stream and to `PUBLISH` with `"offset":N,"epoch":"E",` spliced
    /// in after its opening brace.
    static let publishScript = """
        local epoch = redis.call('HGET', KEYS[1], 'epoch')
        if KEYS[3] then
          local earlier = redis.call('GET', KEYS[3])
          if earlier and epoch then return {0, tonumber(earlier), epoch} end
        end
        if not epoch then
          epoch = ARGV[5]
          redis.call('DEL', KEYS[2])
          redis.call('HSET', KEYS[1], 'epoch', epoch, 'offset', 0)
        end
        local offset = redis.call('HINCRBY', KEYS[1], 'offset', 1)
        local payload = '{"offset":' .. offset .. ',"epoch":"' .. epoch .. '",' .. string.sub(ARGV[2], 2)
        redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[3], offset .. '-0', 'e', payload)
        redis.call('PEXPIRE', KEYS[2], ARGV[4])
        redis.call('PEXPIRE', KEYS[1], ARGV[4])
        if KEYS[3] then redis.call('SET', KEYS[3], offset, 'PX', ARGV[4]) end
        redis.call('PUBLISH', ARGV[1], payload)
        return {1, offset, epoch}
        """

    /// KEYS: meta, stream. ARGV: after (-1: none), before (0: none), limit, newest (1/0), an
    /// epoch for a new stream, ttl (ms). Returns `{epoch, offset, oldest held (0: none),
    /// payloads oldest first...}`. A topic without a stream gets its meta (offset 0) here, so
    /// the epoch a subscriber is told is the one its next messages carry.
    static let readScript = """
        local epoch = redis.call('HGET', KEYS[1], 'epoch')
        if not epoch then
          epoch = ARGV[5]
          redis.call('DEL', KEYS[2])
          redis.call('HSET', KEYS[1], 'epoch', epoch, 'offset', 0)
          redis.call('PEXPIRE', KEYS[1], ARGV[6])
        end
        local result = {epoch, tonumber(redis.call('HGET', KEYS[1], 'offset')), 0}
        local first = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)
        if #first > 0 then result[3] = tonumber(string.match(first[1][1], '^(%d+)')) end
        local limit = tonumber(ARGV[3])
        if limit <= 0 then return result end
        local low = '-'
        local after = tonumber(ARGV[1])
        if after >= 0 then low = (after + 1) .. '-0' end
        local high = '+'
        local before = tonumber(ARGV[2])
        if before > 0 then
          if before <= 1 then return result end
          high = (before - 1) .. '-0'
        end
        if ARGV[4] == '1' then
          local entries = redis.call('XREVRANGE', KEYS[2], high, low, 'COUNT', limit)
          for i = #entries, 1, -1 do result[#result + 1] = entries[i][2][2] end
        else
          local entries = redis.call('XRANGE', KEYS[2], low, high, 'COUNT', limit)
          for i = 1, #entries do result[#result + 1] = entries[i][2][2] end
        end
        return result
        """

    /// The `EVALSHA` arguments after the digest for publishing `outgoing` on `topic`.
    static func publishArguments(
        _ channels: RedisChannels, topic: Topic, outgoing: RedisOutgoing, policy: HistoryPolicy, newEpoch: String
    ) -> [[UInt8]] {
        var keys = [metaKey(channels, topic), streamKey(channels, topic)]
        if let messageId = outgoing.envelope.messageId { keys.append(idKey(channels, topic, messageId)) }
        var arguments = [Array(String(keys.count).utf8)]
        arguments += keys.map { Array($0.utf8) }
        arguments.append(Array(outgoing.channel.utf8))
        arguments.append(outgoing.payload)
        arguments += [String(policy.size), String(policy.ttlMilliseconds), newEpoch].map { Array($0.utf8) }
        return arguments
    }

    /// The outcome in a publish script's reply.
    static func outcome(_ reply: RedisReply) -> PublishOutcome? {
        guard case .array(let parts) = reply, parts.count == 3, case .integer(let stored) = parts[0],
            case .integer(let offset) = parts[1], let epoch = parts[2].string
        else { return nil }
        return PublishOutcome(position: HistoryPosition(offset: offset, epoch: epoch), duplicate: stored == 0)
    }

    static func readArguments(_ query: HistoryQuery, policy: HistoryPolicy, newEpoch: String) -> [[UInt8]] {
        [
            String(query.after ?? -1), String(query.before ?? 0), String(min(query.limit, policy.size)),
            query.newest ? "1" : "0", newEpoch, String(policy.ttlMilliseconds),
        ].map { Array($0.utf8) }
    }

    /// The page in a read script's reply.
    static func page(_ reply: RedisReply) throws(HistoryError) -> HistoryPage {
        guard case .array(let parts) = reply, parts.count >= 3, let epoch = parts[0].string,
            case .integer(let offset) = parts[1], case .integer(let oldest) = parts[2]
        else { throw HistoryError("unexpected reply from the history script") }
        var messages: [Envelope] = []
        for part in parts.dropFirst(3) {
            guard case .bulk(let bytes) = part, let envelope = try? EnvelopeCodec.decode(bytes) else {
                throw HistoryError("a stored message is not an envelope")
            }
            messages.append(envelope)
        }
        return HistoryPage(position: HistoryPosition(offset: offset, epoch: epoch), messages: messages, oldestHeld: oldest > 0 ? oldest : nil)
    }
}

/// A completion that runs at most once: a message in flight when a server failed may be both
/// acknowledged by Redis and delivered locally.
final class PublishCompletionOnce: Sendable {
    private let completion: PublishCompletion
    private let done = Atomic<Bool>(false)

    init(_ completion: @escaping PublishCompletion) {
        self.completion = completion
    }

    func callAsFunction(_ outcome: PublishOutcome) {
        guard !done.exchange(true, ordering: .relaxed) else { return }
        completion(outcome)
    }
}
