/// Capped exponential backoff with jitter, for reconnecting to a server that went away.
///
/// The n-th delay (from 0) is drawn uniformly from the upper half of `min(initial * 2^n, maximum)`:
/// with the defaults 50-100 ms, 100-200 ms, 200-400 ms, ... and at most 2.5-5 s. The jitter
/// keeps the nodes of a cluster from reconnecting in lockstep after a shared outage.
struct Backoff {
    let initial: Duration
    let maximum: Duration
    private var attempt = 0

    init(initial: Duration = .milliseconds(100), maximum: Duration = .seconds(5)) {
        precondition(initial > .zero && maximum >= initial, "backoff needs 0 < initial <= maximum")
        self.initial = initial
        self.maximum = maximum
    }

    /// The delay before the next attempt; each call doubles the next one, up to `maximum`.
    mutating func next() -> Duration {
        var generator = SystemRandomNumberGenerator()
        return next(using: &generator)
    }

    mutating func next(using generator: inout some RandomNumberGenerator) -> Duration {
        var ceiling = initial
        for _ in 0..<attempt where ceiling < maximum {
            ceiling *= 2
        }
        ceiling = min(ceiling, maximum)
        attempt = min(attempt + 1, 64)
        return ceiling * Double.random(in: 0.5...1.0, using: &generator)
    }

    /// Starts again from `initial`, after a connection held.
    mutating func reset() {
        attempt = 0
    }
}
