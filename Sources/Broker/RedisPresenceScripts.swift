/// The Lua scripts of ``RedisPresenceStore``. Each runs atomically on the server that holds
/// the topic's channel (see ``RedisChannels``), so the decision "first connection anywhere" or
/// "last connection anywhere" and the event it causes are one step: exactly one `join` and one
/// `leave` per user and topic, whatever the number of nodes.
///
/// Keys, with `P` = `PUBSUB_REDIS_PREFIX` + `@presence:` (topics and user ids use the topic
/// alphabet, so `\n` separates them safely):
/// - `P m:<topic>`: hash user id -> member document `{"userId":..,"data":..}`;
/// - `P z:<topic>`: the same user ids in a sorted set, all with score 0, so in user id order:
///   the index a member list pages through (``page``); none for a user's online topic
///   `presence.user.<id>`, whose one member needs no index (one key less per online user);
/// - `P zr:<topic>`: set for 10 s after the index was rebuilt (``page``);
/// - `P n:<topic>`: hash user id -> connections, cluster-wide;
/// - `P i:<instance>`: hash `<topic>\n<user>` -> connections held by one node instance
///   (`<NODE_ID>/<boot nonce>`) on this server; what the reaper takes back; and the field
///   `\n#`: how many changes the instance wrote there (``lease`` returns it, so that a node
///   notices a Redis that came back with older data: see ``RedisPresenceStore``);
/// - `P leases`: sorted set instance -> lease expiry (Redis `TIME`, ms);
/// - `P seen:<topic>`: when a `presence.user.<id>` topic last became empty (ISO 8601).
///
/// The scripts touch keys they compute (the reaper walks instances), so they need a single
/// Redis server per shard, not Redis Cluster.
///
/// A Redis that is full (`maxmemory` with `noeviction`) refuses every command that may add data,
/// a lease renewal's `ZADD` of an existing member included: every node's lease would then run
/// out and the reapers would take every member away while all of them are still connected.
/// ``lease`` and ``reap`` are therefore flagged `allow-oom` (Redis 7): a renewal only moves a
/// score, and a reap frees far more than it writes. Joins and leaves (``set``) stay refused,
/// resent once Redis takes writes again.
enum RedisPresenceScripts {
    /// KEYS: m, n, i, leases, seen, z. ARGV: topic, user, instance, connections, member,
    /// announce update ('1'/'0'), event id (JSON string), origin (JSON string), timestamp,
    /// channel. Returns the event published ('join', 'leave', 'update'), '' for none, or
    /// 'nolease' (nothing changed) when the instance holds no lease on this server.
    static let set = """
        if redis.call('ZSCORE', KEYS[4], ARGV[3]) == false then return 'nolease' end
        redis.call('HINCRBY', KEYS[3], '\\n#', 1)
        local field = ARGV[1] .. '\\n' .. ARGV[2]
        local count = tonumber(ARGV[4])
        local old = tonumber(redis.call('HGET', KEYS[3], field) or '0')
        if count > 0 then redis.call('HSET', KEYS[3], field, count) else redis.call('HDEL', KEYS[3], field) end
        local total = tonumber(redis.call('HGET', KEYS[2], ARGV[2]) or '0')
        local now = total - old + count
        local event = false
        local member = ARGV[5]
        if now <= 0 then
          if total > 0 then
            event = 'leave'
            member = redis.call('HGET', KEYS[1], ARGV[2]) or member
            if string.sub(ARGV[1], 1, 14) == 'presence.user.' then redis.call('SET', KEYS[5], ARGV[9]) end
          end
          redis.call('HDEL', KEYS[1], ARGV[2])
          redis.call('HDEL', KEYS[2], ARGV[2])
          redis.call('ZREM', KEYS[6], ARGV[2])
        else
          redis.call('HSET', KEYS[2], ARGV[2], now)
          if total <= 0 then
            event = 'join'
            redis.call('HSET', KEYS[1], ARGV[2], member)
            if string.sub(ARGV[1], 1, 14) ~= 'presence.user.' then redis.call('ZADD', KEYS[6], 0, ARGV[2]) end
          elseif ARGV[6] == '1' and redis.call('HGET', KEYS[1], ARGV[2]) ~= member then
            event = 'update'
            redis.call('HSET', KEYS[1], ARGV[2], member)
          end
        end
        if event then
          redis.call('PUBLISH', ARGV[10], '{"v":1,"id":' .. ARGV[7] .. ',"origin":' .. ARGV[8] .. ',"topic":"' .. ARGV[1]
            .. '","kind":"presence","data":{"event":"' .. event .. '","member":' .. member .. '},"timestamp":"' .. ARGV[9] .. '"}')
          return event
        end
        return ''
        """

    /// KEYS: leases, the instance's `i:` hash. ARGV: instance, ttl (ms). Sets the instance's
    /// lease to now + ttl; returns {1, changes written} when it held one already, {0, changes
    /// written} when the lease is new (first start, or reaped meanwhile: the node must then
    /// resend its whole share).
    static let lease = """
        #!lua flags=allow-oom
        local t = redis.call('TIME')
        local present = redis.call('ZSCORE', KEYS[1], ARGV[1])
        redis.call('ZADD', KEYS[1], t[1] * 1000 + math.floor(t[2] / 1000) + tonumber(ARGV[2]), ARGV[1])
        local written = tonumber(redis.call('HGET', KEYS[2], '\\n#') or '0')
        if present then return {1, written} end
        return {0, written}
        """

    /// KEYS: leases. ARGV: key prefix P, instance prefix to reap regardless of expiry ('' for
    /// none), instance to spare from that prefix ('' for none), origin (JSON string),
    /// timestamp, event id base (JSON-safe), channel prefix.
    ///
    /// Takes back every share of each instance whose lease expired (and of each instance
    /// matching the prefix: a node's earlier boots), publishing one `leave` for each member
    /// whose count reaches 0. Returns {leaves published, {instances reaped}}.
    static let reap = """
        #!lua flags=allow-oom
        local t = redis.call('TIME')
        local now = t[1] * 1000 + math.floor(t[2] / 1000)
        local victims = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)
        if ARGV[2] ~= '' then
          for _, instance in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
            if instance ~= ARGV[3] and string.sub(instance, 1, #ARGV[2]) == ARGV[2] then table.insert(victims, instance) end
          end
        end
        local events = 0
        local reaped = {}
        local done = {}
        for _, instance in ipairs(victims) do
          if not done[instance] then
            done[instance] = true
            local ikey = ARGV[1] .. 'i:' .. instance
            local entries = redis.call('HGETALL', ikey)
            for i = 1, #entries, 2 do
              local sep = string.find(entries[i], '\\n', 1, true)
              if sep ~= 1 then  -- not the '\\n#' count of changes
                local topic = string.sub(entries[i], 1, sep - 1)
                local user = string.sub(entries[i], sep + 1)
                local nkey = ARGV[1] .. 'n:' .. topic
                local mkey = ARGV[1] .. 'm:' .. topic
                local total = tonumber(redis.call('HGET', nkey, user) or '0')
                local left = total - tonumber(entries[i + 1])
                if left > 0 then
                  redis.call('HSET', nkey, user, left)
                else
                  local member = redis.call('HGET', mkey, user) or ('{"userId":"' .. user .. '","data":{}}')
                  redis.call('HDEL', mkey, user)
                  redis.call('HDEL', nkey, user)
                  redis.call('ZREM', ARGV[1] .. 'z:' .. topic, user)
                  if total > 0 then
                    events = events + 1
                    if string.sub(topic, 1, 14) == 'presence.user.' then redis.call('SET', ARGV[1] .. 'seen:' .. topic, ARGV[5]) end
                    redis.call('PUBLISH', ARGV[7] .. topic, '{"v":1,"id":"' .. ARGV[6] .. '-' .. events .. '","origin":' .. ARGV[4]
                      .. ',"topic":"' .. topic .. '","kind":"presence","data":{"event":"leave","member":' .. member
                      .. '},"timestamp":"' .. ARGV[5] .. '"}')
                  end
                end
              end
            end
            redis.call('DEL', ikey)
            redis.call('ZREM', KEYS[1], instance)
            table.insert(reaped, instance)
          end
        end
        return {events, reaped}
        """

    /// KEYS: m, n, z, rebuilt (a marker). ARGV: after ('' from the first), limit, bytes,
    /// '1' for a user's online topic (one member at most: read without an index) else '0'.
    /// Returns {count, user ids, their member documents, their connection counts, 1 when more
    /// follow else 0}: one page, read together, costing its length (and a logarithm), not the
    /// room's. The page stops at `limit` members or once their documents pass `bytes` (the
    /// first always goes in), so large member data does not make large reads.
    ///
    /// An index whose size differs from the hash's (members stored before the index existed,
    /// or by a node of an earlier version during a rolling upgrade) is rebuilt first, at most
    /// once per 10 s per topic (the marker), since a rebuild reads the whole room. Index entries
    /// without a member are dropped as they are met.
    static let page = """
        local count = redis.call('HLEN', KEYS[1])
        local users
        if ARGV[4] == '1' then
          -- Byte order, as ZRANGEBYLEX (Lua's < follows the server's locale).
          local function follows(a, b)
            for i = 1, math.min(#a, #b) do
              local x, y = string.byte(a, i), string.byte(b, i)
              if x ~= y then return x > y end
            end
            return #a > #b
          end
          users = {}
          for _, user in ipairs(redis.call('HKEYS', KEYS[1])) do
            if ARGV[1] == '' or follows(user, ARGV[1]) then users[#users + 1] = user end
          end
          table.sort(users, function(a, b) return follows(b, a) end)
        end
        if users == nil and redis.call('ZCARD', KEYS[3]) ~= count and redis.call('SET', KEYS[4], '1', 'NX', 'PX', 10000) then
          redis.call('DEL', KEYS[3])
          local users = redis.call('HKEYS', KEYS[1])
          for i = 1, #users, 500 do
            local scored = {}
            for j = i, math.min(i + 499, #users) do
              scored[#scored + 1] = 0
              scored[#scored + 1] = users[j]
            end
            redis.call('ZADD', KEYS[3], unpack(scored))
          end
        end
        local from = '-'
        if ARGV[1] ~= '' then from = '(' .. ARGV[1] end
        local limit = tonumber(ARGV[2])
        local budget = tonumber(ARGV[3])
        if users == nil then users = redis.call('ZRANGEBYLEX', KEYS[3], from, '+', 'LIMIT', 0, limit + 1) end
        local more = 0
        if #users > limit then
          more = 1
          users[#users] = nil
        end
        local listed, documents, stale = {}, {}, {}
        local bytes = 0
        local full = false
        -- Documents in chunks of 100, so a budget met early leaves the rest unread.
        for i = 1, #users, 100 do
          local chunk = {unpack(users, i, math.min(i + 99, #users))}
          local found = redis.call('HMGET', KEYS[1], unpack(chunk))
          for j, user in ipairs(chunk) do
            local document = found[j]
            if not document then
              stale[#stale + 1] = user
            elseif #listed > 0 and bytes + #document > budget then
              full = true
              break
            else
              bytes = bytes + #document
              listed[#listed + 1] = user
              documents[#documents + 1] = document
            end
          end
          if full then
            more = 1
            break
          end
        end
        if #stale > 0 then redis.call('ZREM', KEYS[3], unpack(stale)) end
        if #listed == 0 then return {count, {}, {}, {}, more} end
        return {count, listed, documents, redis.call('HMGET', KEYS[2], unpack(listed)), more}
        """
}
