import Foundation

/// Findings in code this harness does not own, reported and awaiting a fix there.
///
/// Each is tolerated while open, so that the fuzzer keeps exploring past it and CI stays green;
/// its reproducer is `Fuzz/regressions/<target>/open-<name>`, which scripts/fuzz.sh replays with
/// `CHORUS_FUZZ_STRICT=1` (no tolerance) to report whether it is still open. Once fixed, delete
/// the case and rename the reproducer without `open-`, so that it guards the fix.
enum KnownFinding: String {
    /// WebSocketFrameReader: the "more than 1024 fragments" violation consumes its frame, so
    /// reading again does not repeat the violation (every other violation does). Harmless while
    /// the session calls `reset()` after any violation.
    case fragmentLimitNotSticky

    /// EnvelopeCodec: about half of all millisecond timestamps come back a millisecond earlier
    /// from `decode` then `encode` (`…00.132Z` becomes `…00.131Z`): `Date.ISO8601FormatStyle`
    /// truncates the fraction of a `Date` whose `Double` lies just below the millisecond. A message
    /// relayed through Redis reaches other nodes' clients a millisecond "earlier" than the origin's.
    case timestampLosesMillisecond

    /// Whether the harness lets it pass: yes, unless `CHORUS_FUZZ_STRICT=1`.
    var tolerated: Bool { !Self.strict }

    private static let strict = ProcessInfo.processInfo.environment["CHORUS_FUZZ_STRICT"] == "1"
}
