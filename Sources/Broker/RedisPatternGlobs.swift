/// The node's wildcard patterns on one Redis server, and the `PSUBSCRIBE` globs that bring
/// their messages: each pattern's own glob (`a.*` under `pubsub:a.*`) or, past `limit` distinct
/// globs, one catch-all glob (`pubsub:*`) for all of them.
///
/// Redis checks every `PUBLISH` against every pattern of every client: 10,000 distinct patterns
/// from one node's clients took a server from 12,000-26,000 publishes a second to 532, for the
/// whole cluster. Past the limit, the node instead receives every topic message of the server
/// and keeps those its patterns match (``RedisSubscriptionReader``, through ``index``): Redis
/// pays one more delivery a message rather than a scan of thousands of patterns. Back at half
/// the limit or below, the patterns return to their own globs.
///
/// A value owned by its link's state (under the link's lock).
struct RedisPatternGlobs: Sendable {
    /// The glob matching every topic channel of the server.
    let catchAll: String
    /// The most distinct globs subscribed one by one (`PUBSUB_REDIS_MAX_PATTERNS`).
    let limit: Int
    /// Each pattern under its own glob (several patterns may share one).
    private(set) var own: [String: Set<TopicPattern>] = [:]
    /// Whether the catch-all glob stands in for `own`'s globs.
    private(set) var collapsed = false
    /// Every pattern, to match a topic brought by any glob.
    private(set) var index = SubscriptionIndex<TopicPattern>()

    init(catchAll: String, limit: Int) {
        precondition(limit > 0, "the pattern glob limit must be positive")
        self.catchAll = catchAll
        self.limit = limit
    }

    /// The globs to hold subscribed now.
    var globs: Set<String> {
        collapsed ? (own.isEmpty ? [] : [catchAll]) : Set(own.keys)
    }

    /// Whether `glob` should be subscribed now.
    func wants(_ glob: String) -> Bool {
        collapsed ? glob == catchAll && !own.isEmpty : own[glob] != nil
    }

    /// Adds `pattern`, whose own glob is `glob`; returns the globs whose subscription may have
    /// changed (none when the pattern was held already).
    mutating func add(_ pattern: TopicPattern, glob: String) -> [String] {
        guard own[glob, default: []].insert(pattern).inserted else { return [] }
        index.insert(pattern, pattern)
        if !collapsed, own.count > limit {
            collapsed = true
            return Array(own.keys) + [catchAll]
        }
        return [collapsed ? catchAll : glob]
    }

    /// Removes `pattern`, whose own glob is `glob`; returns the globs whose subscription may
    /// have changed (none when the pattern was not held).
    mutating func remove(_ pattern: TopicPattern, glob: String) -> [String] {
        guard own[glob]?.remove(pattern) != nil else { return [] }
        if own[glob]?.isEmpty == true { own[glob] = nil }
        index.remove(pattern, pattern)
        if collapsed, own.count <= limit / 2 {
            collapsed = false
            return Array(own.keys) + [catchAll, glob]
        }
        return [collapsed ? catchAll : glob]
    }
}
