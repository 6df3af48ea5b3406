import Synchronization

/// Topic histories in Redis: one stream per topic, written by the same Lua script that
/// publishes the message, so that history and live delivery can never disagree about order.
///
/// **Keys** (on the server that holds the topic's channel, see ``RedisChannels``), with the
/// default prefix and topic `chat.lobby`:
/// - `pubsub:@history:chat.lobby`: a stream of the last `HISTORY_SIZE` messages (`XADD MAXLEN`,
///   exact), entry id `<offset>-0`, one field `e` holding the envelope as published;
/// - `pubsub:@history-meta:chat.lobby`: a hash with `epoch` and `offset` (the last assigned);
/// - `pubsub:@history-id:chat.lobby/<messageId>`: the offset and epoch a `messageId` was stored
///   at, `<offset>\0<epoch>`. Lua's `tonumber` stops at the NUL, so a node from before the
///   epoch was added reads the offset as it always did; a bare offset, which such a node
///   writes, counts as the current epoch's. The
///   `/` ends the topic: no topic has one, while a `:` (allowed in topics) would let topic
///   `rooms` with id `lobby:K` and topic `rooms:lobby` with id `K` share a key.
///
/// All three expire `HISTORY_TTL` after the topic's last publish (`PEXPIRE`, refreshed by each
/// publish). A topic whose meta hash is gone (expired, flushed, a Redis restarted without
/// persistence) starts a new stream under a new epoch (random, drawn by the node), so a client's
/// `since` from the old stream is answered `recovered: false`.
enum RedisHistory {
    static func streamKey(_ channels: RedisChannels, _ topic: Topic) -> String { channels.prefix + "@history:" + topic.name }
    static func metaKey(_ channels: RedisChannels, _ topic: Topic) -> String { channels.prefix + "@history-meta:" + topic.name }
    static func idKey(_ channels: RedisChannels, _ topic: Topic, _ messageId: String) -> String {
        channels.prefix + "@history-id:" + topic.name + "/" + messageId
    }

    /// Publishes a run of consecutive messages with history, in order, in one call (see
    /// ``publishBatchLimit``).
    ///
    /// KEYS, per message: meta, stream, and its id key when it has a `messageId`. ARGV: size, ttl
    /// (ms), an epoch for a new stream, then per message: channel, envelope JSON (without offset
    /// and epoch), `1` when it has an id key else `0`. Returns per message, flat, three values:
    /// `1` (stored), offset, epoch; `0` (a duplicate), the first one's offset, epoch; or `-1`
    /// (refused), `0`, Redis' error. Each stored envelope goes into its stream and to `PUBLISH`
    /// with `"offset":N,"epoch":"E",` spliced in after its opening brace.
    ///
    /// Each topic's meta hash is read once per call, its offsets counted in Lua, and the hash
    /// written back and both keys' TTLs refreshed once at the end: a script runs atomically, so
    /// no reader sees the hash between. Per message there remain the `XADD` (with `MAXLEN`), the
    /// `PUBLISH` and, with a `messageId`, a `GET` and a `SET` of its id key. A `messageId` seen
    /// earlier in the same call is a duplicate like one seen in an earlier call. An id key of
    /// another epoch (left from a stream that was lost or reset) is not a duplicate.
    ///
    /// A command that fails (Redis refuses a script's first write under `maxmemory`, or on a
    /// replica; for a new topic that is its meta's `HSET`, before anything else) refuses that
    /// message and every later one of the call; the earlier ones stay stored and published, and
    /// their topics' meta is still written, so offsets go on without a gap. `NOSCRIPT`, or an error reply to the whole call, means nothing was done.
    static let publishScript = """
        local size, ttl, newEpoch = ARGV[1], ARGV[2], ARGV[3]
        local topics, order, seen, result = {}, {}, {}, {}
        local k, a = 1, 4
        -- Lua's own number format (%.14g) would write offsets past 10^14 as 1e+14.
        local function digits(n) return string.format('%d', n) end
        local function publish()
          while a <= #ARGV do
            local meta, stream, idkey, nextk = KEYS[k], KEYS[k + 1], nil, k + 2
            if ARGV[a + 2] == '1' then
              idkey = KEYS[k + 2]
              nextk = k + 3
            end
            local t = topics[meta]
            if not t then
              local epoch, offset = unpack(redis.call('HMGET', meta, 'epoch', 'offset'))
              if epoch then
                offset = tonumber(offset)
                t = {epoch = epoch, offset = offset, start = offset, stream = stream, old = true}
              else
                -- A write Redis refuses under maxmemory comes first (a DEL is allowed, and
                -- after one write a script may write on): a new topic is refused like any.
                redis.call('HSET', meta, 'epoch', newEpoch, 'offset', 0)
                redis.call('PEXPIRE', meta, ttl)
                redis.call('DEL', stream)
                t = {epoch = newEpoch, offset = 0, start = 0, stream = stream, old = false}
              end
              topics[meta] = t
              order[#order + 1] = meta
            end
            local earlier = nil
            if idkey then
              earlier = seen[idkey]
              if not earlier and t.old then
                local stored = redis.call('GET', idkey)
                if stored then
                  -- An id stored under another epoch (the topic's history was reset since) is
                  -- not a duplicate of anything in this one.
                  local at, epoch = string.match(stored, '^(%d+)%z(.+)$')
                  if not at then
                    earlier = stored
                  elseif epoch == t.epoch then
                    earlier = at
                  end
                end
              end
            end
            if earlier then
              result[#result + 1] = 0
              result[#result + 1] = tonumber(earlier)
            else
              local offset = t.offset + 1
              local payload = '{"offset":' .. digits(offset) .. ',"epoch":"' .. t.epoch .. '",' .. string.sub(ARGV[a + 1], 2)
              redis.call('XADD', stream, 'MAXLEN', size, digits(offset) .. '-0', 'e', payload)
              t.offset = offset
              if idkey then
                redis.call('SET', idkey, digits(offset) .. '\\0' .. t.epoch, 'PX', ttl)
                seen[idkey] = offset
              end
              redis.call('PUBLISH', ARGV[a], payload)
              result[#result + 1] = 1
              result[#result + 1] = offset
            end
            result[#result + 1] = t.epoch
            k = nextk
            a = a + 3
          end
        end
        local ok, failure = pcall(publish)
        if not ok then
          if type(failure) == 'table' then failure = failure.err end
          failure = tostring(failure)
          while #result % 3 ~= 0 do result[#result] = nil end
          while a <= #ARGV do
            result[#result + 1] = -1
            result[#result + 1] = 0
            result[#result + 1] = failure
            a = a + 3
          end
        end
        for _, meta in ipairs(order) do
          local t = topics[meta]
          if t.offset ~= t.start then
            redis.call('HSET', meta, 'epoch', t.epoch, 'offset', digits(t.offset))
            redis.call('PEXPIRE', meta, ttl)
            redis.call('PEXPIRE', t.stream, ttl)
          end
        end
        return result
        """

    /// KEYS, per topic: meta, stream. ARGV, per topic: the epoch and the offset a node read last
    /// (``RedisStreamPositions``). A topic still in that epoch whose offset is behind it lost
    /// writes (Redis came back with older data): its meta and stream are deleted, so that its
    /// next message starts a new epoch instead of giving out offsets clients have seen. Returns
    /// how many topics it reset. `DEL` is allowed under `maxmemory`.
    static let rewindScript = """
        local reset = 0
        for i = 1, #KEYS, 2 do
          local epoch, offset = unpack(redis.call('HMGET', KEYS[i], 'epoch', 'offset'))
          if epoch == ARGV[i] and offset and tonumber(offset) < tonumber(ARGV[i + 1]) then
            redis.call('DEL', KEYS[i], KEYS[i + 1])
            reset = reset + 1
          end
        end
        return reset
        """

    /// What one call of ``rewindScript`` answered: the topics it reset, or the error when the
    /// user may not run it (an ACL without `EVAL`: the check is skipped). Any other error
    /// (`READONLY`, `BUSY`, `LOADING`) throws: the connection fails and is tried again.
    static func rewindOutcome(_ reply: RedisReply, server: String) throws(RedisConnectionError) -> (reset: Int, denied: String?) {
        switch reply {
        case .integer(let reset): return (reset, nil)
        case .error(let message) where RedisPublisherSession.deniesCommand(message): return (0, message)
        default: throw RedisConnectionError("the check for lost history on \(server) failed: \(reply)")
        }
    }

    /// Messages in one call of ``publishScript`` at most: enough to spread the call's own cost
    /// and each topic's meta reads and writes, few enough that one call holds Redis for well
    /// under a millisecond.
    static let publishBatchLimit = 64

    /// KEYS: meta, stream. ARGV: after (-1: none), before (0: none), limit, newest (1/0), an
    /// epoch for a new stream, ttl (ms), most bytes of payloads (0: no bound). Returns `{epoch,
    /// offset, oldest held (0: none), truncated (1/0), payloads oldest first...}`. A topic
    /// without a stream gets its meta (offset 0) here, so the epoch a subscriber is told is the
    /// one its next messages carry; unless Redis refuses the write (`maxmemory`): then nothing
    /// is stored, and the first publish draws the epoch (a `since` from this read then finds
    /// another epoch and answers `recovered: false`).
    ///
    /// The range is read in steps of ``readStep`` entries from the end asked for, so that a
    /// read with a byte bound stops near it: Redis never copies more than a step past the
    /// bound, however large the messages or the range. The first message is always taken.
    static let readScript = """
        local epoch = redis.call('HGET', KEYS[1], 'epoch')
        if not epoch then
          epoch = ARGV[5]
          -- The HSET first: under maxmemory Redis refuses it, and a read then stores nothing
          -- (its epoch is not kept, and the first publish draws its own).
          if not pcall(redis.call, 'HSET', KEYS[1], 'epoch', epoch, 'offset', 0) then
            return {epoch, 0, 0, 0}  -- a stream left without its meta is not read either
          end
          redis.call('PEXPIRE', KEYS[1], ARGV[6])
          redis.call('DEL', KEYS[2])
        end
        local result = {epoch, tonumber(redis.call('HGET', KEYS[1], 'offset')) or 0, 0, 0}
        local first = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)
        if #first > 0 then result[3] = tonumber(string.match(first[1][1], '^(%d+)')) end
        local limit = tonumber(ARGV[3])
        if limit <= 0 then return result end
        local low = '-'
        local after = tonumber(ARGV[1])
        -- '%d', not '..': Lua writes a number of 15 digits or more as 1e+14, not a stream ID.
        if after >= 0 then low = string.format('%d-0', after + 1) end
        local high = '+'
        local before = tonumber(ARGV[2])
        if before > 0 then
          if before <= 1 then return result end
          high = string.format('%d-0', before - 1)
        end
        local newest = ARGV[4] == '1'
        local budget = tonumber(ARGV[7])
        local taken, bytes = {}, 0
        while #taken < limit do
          local count = math.min(limit - #taken, \(readStep))
          local entries
          if newest then
            entries = redis.call('XREVRANGE', KEYS[2], high, low, 'COUNT', count)
          else
            entries = redis.call('XRANGE', KEYS[2], low, high, 'COUNT', count)
          end
          for i = 1, #entries do
            local payload = entries[i][2][2]
            if budget > 0 and #taken > 0 and bytes + #payload > budget then
              result[4] = 1
              break
            end
            bytes = bytes + #payload
            taken[#taken + 1] = payload
          end
          if result[4] == 1 or #entries < count then break end
          if newest then high = '(' .. entries[#entries][1] else low = '(' .. entries[#entries][1] end
        end
        if newest then
          for i = #taken, 1, -1 do result[#result + 1] = taken[i] end
        else
          for i = 1, #taken do result[#result + 1] = taken[i] end
        end
        return result
        """

    /// Entries one step of ``readScript`` reads.
    static let readStep = 16

    /// The `EVALSHA` arguments after the digest for publishing `batch` (every message with a
    /// `historyTopic`) with ``publishScript``.
    static func publishArguments(
        _ channels: RedisChannels, batch: some Collection<RedisOutgoing>, policy: HistoryPolicy, newEpoch: String
    ) -> [[UInt8]] {
        var keys: [[UInt8]] = []
        var arguments: [[UInt8]] = [String(policy.size), String(policy.ttlMilliseconds), newEpoch].map { Array($0.utf8) }
        keys.reserveCapacity(batch.count * 2)
        arguments.reserveCapacity(3 + batch.count * 3)
        for outgoing in batch {
            guard let topic = outgoing.historyTopic else { preconditionFailure("a message without history in a history batch") }
            keys.append(Array(metaKey(channels, topic).utf8))
            keys.append(Array(streamKey(channels, topic).utf8))
            let messageId = outgoing.envelope.messageId
            if let messageId { keys.append(Array(idKey(channels, topic, messageId).utf8)) }
            arguments.append(Array(outgoing.channel.utf8))
            arguments.append(outgoing.payload)
            arguments.append(messageId == nil ? zero : one)
        }
        return [Array(String(keys.count).utf8)] + keys + arguments
    }

    private static let zero = Array("0".utf8)
    private static let one = Array("1".utf8)

    /// The outcomes, one per message in order, in a publish script's reply for `count` messages
    /// (a refused one with Redis' error as its refusal); nil when the reply is not one.
    static func outcomes(_ reply: RedisReply, count: Int) -> [PublishOutcome]? {
        guard case .array(let parts) = reply, parts.count == 3 * count else { return nil }
        var outcomes: [PublishOutcome] = []
        outcomes.reserveCapacity(count)
        for index in stride(from: 0, to: parts.count, by: 3) {
            guard case .integer(let stored) = parts[index], case .integer(let offset) = parts[index + 1],
                let epoch = parts[index + 2].string
            else { return nil }
            guard stored >= 0 else {
                outcomes.append(.refused(epoch))  // the error, in the epoch's place
                continue
            }
            outcomes.append(PublishOutcome(position: HistoryPosition(offset: offset, epoch: epoch), duplicate: stored == 0))
        }
        return outcomes
    }

    /// `batch` cut into the commands of one pipeline, in order: each run of consecutive
    /// messages with history in calls of at most `limit` messages, each other message alone (a
    /// `PUBLISH`). Keeping the order keeps each channel's order, also for a topic's signals,
    /// which are published without history between its messages.
    static func publishGroups(_ batch: [RedisOutgoing], limit: Int = publishBatchLimit) -> [Range<Int>] {
        var groups: [Range<Int>] = []
        var start = batch.startIndex
        while start < batch.endIndex {
            var end = start + 1
            if batch[start].historyTopic != nil {
                while end < batch.endIndex, end - start < limit, batch[end].historyTopic != nil { end += 1 }
            }
            groups.append(start..<end)
            start = end
        }
        return groups
    }

    static func readArguments(_ query: HistoryQuery, policy: HistoryPolicy, newEpoch: String) -> [[UInt8]] {
        [
            String(query.after ?? -1), String(query.before ?? 0), String(min(query.limit, policy.size)),
            query.newest ? "1" : "0", newEpoch, String(policy.ttlMilliseconds), String(query.maxBytes ?? 0),
        ].map { Array($0.utf8) }
    }

    /// The page in a read script's reply.
    static func page(_ reply: RedisReply) throws(HistoryError) -> HistoryPage {
        guard case .array(let parts) = reply, parts.count >= 4, let epoch = parts[0].string,
            case .integer(let offset) = parts[1], case .integer(let oldest) = parts[2], case .integer(let truncated) = parts[3]
        else { throw HistoryError("unexpected reply from the history script") }
        var messages: [Envelope] = []
        for part in parts.dropFirst(4) {
            guard case .bulk(let bytes) = part, let envelope = try? EnvelopeCodec.decode(bytes) else {
                throw HistoryError("a stored message is not an envelope")
            }
            messages.append(envelope)
        }
        return HistoryPage(
            position: HistoryPosition(offset: offset, epoch: epoch), messages: messages, oldestHeld: oldest > 0 ? oldest : nil,
            truncated: truncated == 1)
    }
}

/// A completion that runs at most once: a message in flight when a server failed may be both
/// acknowledged by Redis and delivered locally.
final class PublishCompletionOnce: Sendable {
    private let completion: PublishCompletion
    private let done = Atomic<Bool>(false)
    private let refused = Atomic<Bool>(false)

    init(_ completion: @escaping PublishCompletion) {
        self.completion = completion
    }

    func callAsFunction(_ outcome: PublishOutcome) {
        guard !done.exchange(true, ordering: .relaxed) else { return }
        if outcome.refusal != nil { refused.store(true, ordering: .releasing) }
        completion(outcome)
    }

    /// The publisher was told the message was refused: it must not be delivered after all.
    var wasRefused: Bool { refused.load(ordering: .acquiring) }
}
