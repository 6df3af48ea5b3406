/// When a link logs Redis's refusals of its publishes (error replies: out of memory,
/// `READONLY`, `NOPERM`): the first of each kind (the error's first word), then at most once
/// per ``interval`` while they go on, with how many came since the last line. A long episode
/// shows in the log without a line per publish, and a new kind of refusal at once. A value on
/// the link's event loop (``RedisPublisherState``).
struct RedisRefusalLog {
    static let interval = Duration.seconds(60)

    private var lastKind: Substring?
    private var loggedAt: ContinuousClock.Instant?
    private var unlogged = 0

    /// Notes `count` messages refused with `error` at `now`: the number to log (those since the
    /// last line), or nil to stay silent.
    mutating func refused(_ count: Int, error: String, now: ContinuousClock.Instant) -> Int? {
        unlogged += count
        let kind = error.prefix { $0 != " " }
        if kind == lastKind, let loggedAt, now - loggedAt < Self.interval { return nil }
        defer { unlogged = 0 }
        lastKind = kind
        loggedAt = now
        return unlogged
    }
}
