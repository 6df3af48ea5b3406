/// When a link logs Redis's refusals of its publishes (error replies: out of memory,
/// `READONLY`, `NOPERM`): the first of each kind (the error's first word) at once, then at most
/// once per ``interval`` per kind while they go on, with how many of that kind came since its
/// last line. A long episode shows in the log without a line per publish, and a new kind of
/// refusal at once. A value on the link's event loop (``RedisPublisherState``).
struct RedisRefusalLog {
    static let interval = Duration.seconds(60)
    /// Kinds remembered at most: Redis has a handful; past this, the oldest line's kind goes.
    static let kindLimit = 16

    private struct Kind {
        var loggedAt: ContinuousClock.Instant
        var unlogged = 0
    }

    private var kinds: [Substring: Kind] = [:]

    /// Notes `count` messages refused with `error` at `now`: the number to log (those of its
    /// kind since that kind's last line), or nil to stay silent.
    mutating func refused(_ count: Int, error: String, now: ContinuousClock.Instant) -> Int? {
        let name = error.prefix { $0 != " " }
        if var kind = kinds[name], now - kind.loggedAt < Self.interval {
            kind.unlogged += count
            kinds[name] = kind
            return nil
        }
        let logged = (kinds[name]?.unlogged ?? 0) + count
        if kinds[name] == nil, kinds.count >= Self.kindLimit,
            let oldest = kinds.min(by: { $0.value.loggedAt < $1.value.loggedAt })?.key
        {
            kinds[oldest] = nil
        }
        kinds[name] = Kind(loggedAt: now)
        return logged
    }
}
